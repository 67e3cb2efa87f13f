"""zlib's own inflate coverage vectors (test/infcover.c) behave exactly as in C zlib.

Each vector in ../shared/vectors/infcover.json records what CPython's zlib
module (C zlib 1.2.13) does when the bytes are fed whole to
``decompressobj(wbits).decompress()``: the output, eof and unused_data, or the
exception type and exact message. spore.zlib must do the same; the reference
decoder must agree wherever it can express the case (whole-stream decoding).
"""

from __future__ import annotations

from typing import Any

import pytest
from zlib_harness import VECTORS, api_outcome, fast_outcome, load_infcover_vectors, spec_outcome

import spore.zlib as sz
from spore.zlib import spec

VECTOR_LIST = load_infcover_vectors()


def _observed(vector: dict[str, Any]) -> dict[str, Any]:
    data = bytes.fromhex(vector["hex"])
    try:
        d = sz.decompressobj(vector["wbits"])
        output = d.decompress(data)
    except sz.error as exc:
        return {"outcome": "zlib.error", "message": str(exc)}
    except ValueError as exc:
        return {"outcome": "ValueError", "message": str(exc)}
    return {
        "outcome": "ok",
        "eof": d.eof,
        "output_hex": output.hex(),
        "unused_data_hex": d.unused_data.hex(),
    }


def test_vectors_present() -> None:
    if not VECTORS.parent.is_dir():
        pytest.skip(f"shared vectors folder missing: {VECTORS.parent}")
    assert len(VECTOR_LIST) == 47


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=[f"{i:02d}-{v['id']}" for i, v in enumerate(VECTOR_LIST)])
def test_vector_behaves_as_c_zlib(vector: dict[str, Any]) -> None:
    assert _observed(vector) == vector["cpython"]


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=[f"{i:02d}-{v['id']}" for i, v in enumerate(VECTOR_LIST)])
def test_engine_and_reference_decoder_agree_on_vector(vector: dict[str, Any]) -> None:
    """The engine alone and the spec decoder reach the same verdict (ValueError vectors have no stream)."""
    if vector["cpython"]["outcome"] == "ValueError":
        with pytest.raises(ValueError):
            spec.decompress(b"", vector["wbits"])
        return
    data = bytes.fromhex(vector["hex"])
    expected = api_outcome(data, vector["wbits"])
    assert fast_outcome(data, vector["wbits"]) == expected
    assert spec_outcome(data, vector["wbits"]) == expected

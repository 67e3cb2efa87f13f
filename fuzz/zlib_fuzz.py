"""Coverage-guided fuzzing of spore.zlib's decoder (atheris). Not part of the test suite.

    pip install -e '.[fuzz]'                       # atheris
    python fuzz/zlib_fuzz.py -max_total_time=600   # libFuzzer options pass through
    python fuzz/zlib_fuzz.py --replay CRASH_FILE... # re-check saved inputs, no atheris needed

Each input's first two bytes choose the framing (wbits), an output limit and a
chunk size; the rest is the compressed data. Three properties are checked:

1. refinement: the fast decoder's outcome equals the reference decoder's
   (spore.zlib.spec): same output and unused data, or same error message;
2. parity: a chunked, max_length-limited session on spore.zlib is observably
   identical to the same session on CPython's C zlib;
3. hostility: nothing but zlib.error escapes (anything else is a finding).
"""

from __future__ import annotations

import sys
import zlib as c_zlib
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1] / "tests" / "zlib"),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from zlib_harness import fast_outcome, run_session, spec_outcome  # noqa: E402

import spore.zlib as sz  # noqa: E402

WBITS = (-15, -9, -8, 0, 8, 9, 12, 15, 24, 31, 40, 47)


def check(data: bytes) -> None:
    if len(data) < 2:
        return
    wbits = WBITS[data[0] % len(WBITS)]
    max_length = (0, 1, 7, 300)[data[1] >> 6]
    chunk = 1 + (data[1] & 63) * 16
    stream = data[2:]
    assert fast_outcome(stream, wbits) == spec_outcome(stream, wbits)
    ops = [("decompress", chunk, max_length, True)] * (len(stream) // chunk + 2) + [("flush",)]
    assert run_session(sz, stream, wbits, ops) == run_session(c_zlib, stream, wbits, ops)


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        for name in sys.argv[2:]:
            check(Path(name).read_bytes())
            print(f"ok: {name}")
        return
    try:
        import atheris
    except ImportError:
        raise SystemExit("atheris is not installed: pip install -e '.[fuzz]' (or use --replay FILES)") from None
    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""One store contract, two backends: a local folder and a real S3-protocol server."""

from __future__ import annotations

import threading
import time

import pytest

from spore.swarm.store import LocalStore, NotFound, TooLarge, check_key, open_store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    return open_store(request.getfixturevalue("s3_url"))


def test_put_then_get_returns_the_same_bytes(store):
    store.put("updates/00000001/abc.upd", b"\x00\x01payload")
    assert store.get("updates/00000001/abc.upd", 1024) == b"\x00\x01payload"


def test_empty_objects_round_trip(store):
    store.put("a/empty", b"")
    assert store.get("a/empty", 10) == b""
    assert store.head("a/empty").size == 0


def test_put_replaces_an_object_whole(store):
    store.put("k", b"first version")
    store.put("k", b"second")
    assert store.get("k", 100) == b"second"


def test_missing_objects_are_not_found(store):
    with pytest.raises(NotFound):
        store.get("nope/never", 10)
    assert store.head("nope/never") is None


def test_reads_are_bounded(store):
    store.put("big", b"x" * 5000)
    with pytest.raises(TooLarge):
        store.get("big", 4999)
    assert len(store.get("big", 5000)) == 5000


def test_list_by_prefix_is_sorted_with_sizes_and_store_times(store):
    before = time.time()
    for k in ["w/00000002/b", "w/00000002/a", "w/00000003/a", "x/other"]:
        store.put(k, k.encode())
    listed = store.list("w/00000002/")
    assert [o.key for o in listed] == ["w/00000002/a", "w/00000002/b"]
    assert [o.size for o in listed] == [12, 12]
    # S3 stamps whole seconds, rounded down.
    assert all(before - 1.0 <= o.modified <= time.time() for o in listed)
    assert [o.key for o in store.list("w/")] == ["w/00000002/a", "w/00000002/b", "w/00000003/a"]


def test_delete(store):
    store.put("d/x", b"1")
    store.delete("d/x")
    assert store.head("d/x") is None
    store.delete("d/x")  # deleting twice is fine


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a/../b", "a//b", "a/./b", "sp ace", "a\\b", "x" * 600])
def test_hostile_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.put(key, b"")


def test_local_writes_are_atomic(tmp_path):
    """A reader never sees a half-written object, and temporary files are never listed."""
    store = LocalStore(tmp_path)
    a, b = b"a" * 3_000_000, b"b" * 3_000_000
    store.put("obj", a)
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = store.get("obj", 10_000_000)
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())
            assert [o.key for o in store.list("")] == ["obj"]

    t = threading.Thread(target=reader)
    t.start()
    for i in range(20):
        store.put("obj", a if i % 2 else b)
    stop.set()
    t.join()
    assert seen <= {b"aa3000000", b"bb3000000"}


def test_store_urls(tmp_path):
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("ftp://host/x")
    with pytest.raises(ValueError, match="unknown s3 URL option"):
        open_store("s3://bucket/p?endpiont=http://x")
    assert check_key("updates/00000001/ab.upd")

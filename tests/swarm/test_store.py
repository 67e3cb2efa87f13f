"""One store contract, three backends: a local folder, the store service and a real S3-protocol server.

Then what each backend must refuse: non-regular files in a local folder (a FIFO
named like an update once blocked the validator forever, issue 9), and
failures, which surface as one-line StoreErrors.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from spore.swarm.identity import Identity
from spore.swarm.store import HttpStore, LocalStore, NotFound, StoreError, TooLarge, check_key, open_store
from spore.swarm.storeserver import start_store_server


@pytest.fixture(params=["local", "http", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    if request.param == "http":
        # The validator may write every key the contract uses (none names a peer).
        validator = Identity.generate()
        url, proc = start_store_server(tmp_path / "served", validator.hex)
        request.addfinalizer(lambda: (proc.kill(), proc.wait()))
        return open_store(url, identity=validator)
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
    assert isinstance(open_store("http://127.0.0.1:9"), HttpStore)
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("ftp://host/x")
    with pytest.raises(ValueError, match="not a store service URL"):
        open_store("http://127.0.0.1:9/some/path")
    with pytest.raises(ValueError, match="unknown s3 URL option"):
        open_store("s3://bucket/p?endpiont=http://x")
    assert check_key("updates/00000001/ab.upd")


# -- a local folder holds only regular files ------------------------------------------------

UPDATE = "updates/00000001/" + "ab" * 32 + ".upd"


def _get_in_thread(store: LocalStore, key: str) -> BaseException | bytes | None:
    """What store.get(key) raised or returned, or None if it was still blocked after 10 s."""
    out: list[BaseException | bytes] = []

    def attempt() -> None:
        try:
            out.append(store.get(key, 1 << 20))
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    return out[0] if out else None


def _plant(root, key: str, kind: str, outside) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (outside / "secret").write_bytes(b"not an object")
        os.symlink(outside / "secret", path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        os.mknod(path, stat.S_IFSOCK | 0o600)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "socket"])
def test_a_non_regular_file_named_like_an_update_is_refused_at_once_and_never_listed(tmp_path, kind):
    store = LocalStore(tmp_path / "store")
    (tmp_path / "outside").mkdir()
    store.put("updates/00000001/honest.upd", b"honest")
    _plant(store.root, UPDATE, kind, tmp_path / "outside")
    result = _get_in_thread(store, UPDATE)
    assert result is not None, "get blocked"
    assert isinstance(result, StoreError) and not isinstance(result, NotFound), result
    assert [o.key for o in store.list("updates/")] == ["updates/00000001/honest.upd"]
    assert store.head(UPDATE) is None


def test_a_folder_linked_out_of_the_store_is_neither_read_nor_listed(tmp_path):
    store = LocalStore(tmp_path / "store")
    outside = tmp_path / "outside"
    (outside / "00000001").mkdir(parents=True)
    (outside / "00000001" / ("ab" * 32 + ".upd")).write_bytes(b"planted")
    os.symlink(outside, store.root / "updates")
    with pytest.raises(StoreError, match="leads out of the store"):
        store.get(UPDATE, 100)
    assert store.list("updates/") == [] and store.list("") == []


def test_a_missing_folder_is_created_only_when_asked(tmp_path):
    with pytest.raises(StoreError, match="no such store directory"):
        open_store(str(tmp_path / "absent"), create=False)
    assert not (tmp_path / "absent").exists()
    open_store(str(tmp_path / "absent"))
    assert (tmp_path / "absent").is_dir()


def test_local_write_failures_are_store_errors(tmp_path):
    store = LocalStore(tmp_path)
    store.put("a", b"1")
    with pytest.raises(StoreError, match="cannot write"):
        store.put("a/b", b"2")  # "a" is an object, not a folder


# -- failures surface as one-line StoreErrors ------------------------------------------------


def test_an_unreachable_store_service_is_a_store_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens there
    store = HttpStore(f"http://127.0.0.1:{port}", Identity.generate(), timeout=5)
    for call in [lambda: store.get("k", 10), lambda: store.head("k"), lambda: store.list(""),
                 lambda: store.put("k", b"x"), lambda: store.delete("k")]:
        with pytest.raises(StoreError, match="ConnectionRefusedError"):
            call()


def test_a_silent_store_service_times_out_as_a_store_error():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # accepts connections, never answers
        store = HttpStore(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.5)
        with pytest.raises(StoreError, match="timed out"):
            store.head("k")


def test_a_read_only_service_client_refuses_writes_before_sending(tmp_path):
    store = open_store("http://127.0.0.1:9")
    with pytest.raises(StoreError, match="read-only"):
        store.put("k", b"x")
    with pytest.raises(StoreError, match="read-only"):
        store.delete("k")


def test_s3_without_credentials_is_a_store_error(s3_url, monkeypatch, tmp_path):
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_store(s3_url)
    for call in [lambda: store.get("k", 10), lambda: store.head("k"), lambda: store.list(""),
                 lambda: store.put("k", b"x"), lambda: store.delete("k")]:
        with pytest.raises(StoreError, match="NoCredentialsError"):
            call()


def test_s3_errors_name_the_code(s3_url):
    store = open_store(s3_url.replace("s3://", "s3://no-such-bucket-", 1))
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.put("k", b"x")

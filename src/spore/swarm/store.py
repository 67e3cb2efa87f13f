"""Object stores: where peers and validators exchange everything.

Three backends behind one small interface:

- a local directory: writes go to a temporary file that is then renamed, so a
  reader sees a whole object or none. Any writer with access to the folder can
  set a file's mtime (`os.utime`), so its timestamps are trusted only in
  single-operator runs and tests (issue 9);
- the store service (`spore.swarm.storeserver`) over such a directory, named
  by a URL `http://127.0.0.1:PORT`: it stamps each object's arrival itself and
  enforces who may write which key; `HttpStore` is its client;
- any S3-compatible service through boto3, named by a URL
  `s3://bucket/prefix?endpoint=http://host:port&region=us-east-1`
  (credentials from the usual AWS environment variables or config).

Every failure of a backend surfaces as a `StoreError` whose one-line message
names the problem; `NotFound` and `TooLarge` are the two callers act on.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, quote, urlparse

if TYPE_CHECKING:
    from spore.swarm.identity import Identity

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/\-]*$")
MAX_KEY = 512


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class TooLarge(StoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch, set by the store


def check_key(key: str) -> str:
    """Keys are relative paths of plain segments; no '..', no absolute paths."""
    if not isinstance(key, str) or len(key) > MAX_KEY or not _KEY.match(key):
        raise ValueError(f"invalid store key {key!r}")
    if any(seg in (".", "..") for seg in key.split("/")):
        raise ValueError(f"invalid store key {key!r}")
    return key


class Store(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes; TooLarge if it is bigger than `max_bytes` (nothing read past it)."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix`, sorted by key."""
        ...

    def delete(self, key: str) -> None: ...


def check_prefix(prefix: str) -> str:
    """A list prefix: the start of a key (may end inside a segment or with '/')."""
    if (
        not isinstance(prefix, str)
        or len(prefix) > MAX_KEY
        or not _PREFIX.match(prefix)
        or prefix.startswith("/")
        or any(seg in (".", "..") for seg in prefix.split("/"))
    ):
        raise ValueError(f"invalid store prefix {prefix!r}")
    return prefix


def open_regular(path: str | os.PathLike[str], key: str) -> int:
    """A read-only descriptor of the regular file at `path`; StoreError for anything else.

    O_NONBLOCK: opening a FIFO named like an update used to block the validator
    forever (issue 9); O_NOFOLLOW: a symbolic link is not an object.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(key) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"{key}: a symbolic link, not an object") from None
        raise StoreError(f"{key}: cannot open: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StoreError(f"{key}: not a regular file ({_file_kind(mode)}), refused")
    return fd


def _file_kind(mode: int) -> str:
    for test, name in [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")]:
        if test(mode):
            return name
    return "not a file"


def read_bounded(fd: int, key: str, max_bytes: int) -> bytes:
    """All of `fd`'s bytes; TooLarge past `max_bytes` (nothing read beyond max_bytes + 1)."""
    size = os.fstat(fd).st_size
    if size > max_bytes:
        raise TooLarge(f"{key}: {size} bytes exceeds the limit of {max_bytes}")
    parts, got = [], 0
    while got <= max_bytes:
        part = os.read(fd, min(1 << 20, max_bytes + 1 - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    if got > max_bytes:
        raise TooLarge(f"{key}: more than {max_bytes} bytes")
    return b"".join(parts)


class LocalStore:
    """A directory. Its timestamps are file mtimes, which any writer can set:
    trust them only when one operator runs every writer (docs/protocol.md section 2)."""

    def __init__(self, root: str | os.PathLike[str], create: bool = True) -> None:
        self.root = Path(root).resolve()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise StoreError(f"{self.root}: no such store directory; check --store (only `spore swarm run` "
                             "and a validator opening a new run create one)")
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        """The file that holds `key`; StoreError if a folder on the way leads out of the store."""
        path = self.root / check_key(key)
        # O_NOFOLLOW guards the last segment; a folder on the way may be a link too.
        parent = os.path.realpath(path.parent)
        if parent != str(self.root) and not parent.startswith(str(self.root) + os.sep):
            raise StoreError(f"{key}: its folder leads out of the store through a symbolic link")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        except OSError as e:
            raise StoreError(f"{key}: cannot write: {e.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: readers see the old object or the new one
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"{key}: cannot write: {e.strerror}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str, max_bytes: int) -> bytes:
        fd = open_regular(self.path(key), key)
        try:
            return read_bounded(fd, key, max_bytes)
        finally:
            os.close(fd)

    def head(self, key: str) -> ObjectInfo | None:
        """None unless a regular file: a FIFO, link or folder is no object."""
        try:
            st = os.lstat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StoreError(f"{key}: cannot stat: {e.strerror}") from None
        return ObjectInfo(key, st.st_size, st.st_mtime) if stat.S_ISREG(st.st_mode) else None

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Regular files only (lstat): links, FIFOs and the like are skipped, as are names that are no key."""
        check_prefix(prefix)
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        real = os.path.realpath(base)
        if base.is_symlink() or not base.is_dir() or not (real + os.sep).startswith(str(self.root) + os.sep):
            return []  # a folder reached through a link is not part of the store
        out = []
        for dirpath, dirs, files in os.walk(base):  # does not follow links to folders
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if not key.startswith(prefix) or not _KEY.match(key):
                    continue
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append(ObjectInfo(key, st.st_size, st.st_mtime))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as e:
            raise StoreError(f"{key}: cannot delete: {e.strerror}") from None


class S3Store:
    """Timestamps are the server's LastModified, which no writer sets."""

    def __init__(self, url: str) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ModuleNotFoundError:
            raise StoreError("s3:// stores need boto3, an optional dependency: pip install 'spore[s3]'") from None

        u = urlparse(url)
        if u.scheme != "s3" or not u.netloc:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        unknown = set(q) - {"endpoint", "region"}
        if unknown:
            raise ValueError(f"unknown s3 URL option(s) {sorted(unknown)}; known: endpoint, region")
        self.url = url
        self.bucket = u.netloc
        self.prefix = u.path.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=q.get("endpoint"),
            region_name=q.get("region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
            # A dead endpoint fails in seconds (3 tries of a 3 s connect), not minutes (issue 12).
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=30),
        )

    def _k(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unk(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    @contextlib.contextmanager
    def _failures(self, op: str, key: str) -> Iterator[None]:
        """botocore's exceptions as one-line StoreErrors that name the problem and the fix."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from botocore.exceptions import ConnectionError as EndpointDown

        where = f"s3 {op} {key!r} in bucket {self.bucket}"
        try:
            yield
        except ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code", "?"))
            fix = _S3_FIXES.get(code, "").format(bucket=self.bucket)
            raise StoreError(f"{where}: {code}: {err.get('Message', e)}" + (f"; {fix}" if fix else "")) from None
        except (NoCredentialsError, PartialCredentialsError) as e:
            raise StoreError(f"{where}: {type(e).__name__}: {e}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                             "(or AWS_PROFILE) for this S3 service") from None
        except EndpointDown as e:
            endpoint = self.client.meta.endpoint_url
            raise StoreError(f"{where}: cannot reach {endpoint} ({type(e).__name__}); is the S3 service up? "
                             "check endpoint= in the store URL") from None
        except (BotoCoreError, OSError) as e:
            raise StoreError(f"{where}: {type(e).__name__}: {e}") from None

    def put(self, key: str, data: bytes) -> None:
        k = self._k(key)
        with self._failures("put", key):
            self.client.put_object(Bucket=self.bucket, Key=k, Body=data)

    def get(self, key: str, max_bytes: int) -> bytes:
        from botocore.exceptions import ClientError

        k = self._k(key)
        with self._failures("get", key):
            try:
                # Ask for at most max_bytes + 1: a liar's object can't make us read more.
                r = self.client.get_object(Bucket=self.bucket, Key=k, Range=f"bytes=0-{max_bytes}")
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise NotFound(key) from None
                if e.response.get("Error", {}).get("Code") == "InvalidRange":  # empty object
                    return b""
                raise
            total = r.get("ContentRange", "")
            if total and total.rsplit("/", 1)[-1].isdigit() and int(total.rsplit("/", 1)[-1]) > max_bytes:
                raise TooLarge(f"{key}: {total.rsplit('/', 1)[-1]} bytes exceeds the limit of {max_bytes}")
            data = r["Body"].read(max_bytes + 1)
        if len(data) > max_bytes:
            raise TooLarge(f"{key}: more than {max_bytes} bytes")
        return data

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        k = self._k(key)
        with self._failures("head", key):
            try:
                r = self.client.head_object(Bucket=self.bucket, Key=k)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise
            return ObjectInfo(key, int(r["ContentLength"]), r["LastModified"].timestamp())

    def list(self, prefix: str) -> list[ObjectInfo]:
        if prefix:
            check_key(prefix.rstrip("/"))
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        out = []
        with self._failures("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for o in page.get("Contents", []):
                    out.append(ObjectInfo(self._unk(o["Key"]), int(o["Size"]), o["LastModified"].timestamp()))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        k = self._k(key)
        with self._failures("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=k)


# What to do about the S3 errors a user can fix (ClientError codes).
_S3_FIXES = {
    "NoSuchBucket": "create the bucket {bucket} first, or check the s3://BUCKET/ in the store URL",
    "AccessDenied": "check the credentials and the bucket's access policy",
    "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
    "403": "check the credentials and the bucket's access policy",
}


class HttpStore:
    """Client of the store service (spore.swarm.storeserver), URL `http://HOST:PORT`.

    Reads need no identity; writes are signed with `identity` (without one
    the store is read-only). Timestamps are the service's arrival stamps.
    """

    MAX_LIST_BYTES = 64 << 20

    def __init__(self, url: str, identity: Identity | None = None, timeout: float = 30.0) -> None:
        u = urlparse(url)
        if u.scheme != "http" or not u.hostname or u.path not in ("", "/") or u.query or u.username:
            raise ValueError(f"{url!r} is not a store service URL: use http://HOST:PORT")
        self.url = url.rstrip("/")
        self.host, self.port = u.hostname, u.port or 80
        self.identity = identity
        self.timeout = timeout

    def _call(self, method: str, key: str, target: str, body: bytes | None = None, sign: bool = False,
              max_bytes: int = 1 << 16) -> tuple[int, http.client.HTTPMessage, bytes]:
        """(status, headers, body) of one request; a 200 body over `max_bytes` is TooLarge, left unread."""
        headers = {}
        if sign:
            from spore.swarm.storeserver import sign_request

            if self.identity is None:
                raise StoreError(f"{self.url}: {method} {key}: read-only store (open_store(url, identity) to write)")
            headers = sign_request(self.identity, method, key, body or b"", time.time())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            # The service may refuse before reading the whole body; its reply is then waiting.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            if r.status != 200 or method == "HEAD":
                return r.status, r.headers, r.read(4096) if method != "HEAD" else b""
            length = r.getheader("Content-Length", "")
            if not length.isdigit():
                raise StoreError(f"{self.url}: {method} {key}: reply without a Content-Length")
            if int(length) > max_bytes:
                raise TooLarge(f"{key}: {length} bytes exceeds the limit of {max_bytes}")
            data = r.read(int(length))
            if len(data) != int(length):
                raise StoreError(f"{self.url}: {method} {key}: reply cut short ({len(data)} of {length} bytes)")
            return r.status, r.headers, data
        except ConnectionRefusedError:
            raise StoreError(f"{self.url}: {method} {key}: ConnectionRefusedError; is the store service "
                             "(`spore swarm store-server`) running there?") from None
        except (OSError, http.client.HTTPException) as e:
            raise StoreError(f"{self.url}: {method} {key}: {type(e).__name__}: {e}") from None
        finally:
            conn.close()

    def _refused(self, method: str, key: str, status: int, body: bytes) -> StoreError:
        try:
            reason = str(json.loads(body)["error"])[:300]
        except (ValueError, KeyError, TypeError):
            reason = body[:200].decode("utf-8", "replace")
        cls = TooLarge if status == 413 else NotFound if status == 404 else StoreError
        return cls(f"{self.url}: {method} {key}: refused ({status}): {reason}")

    @staticmethod
    def _target(key: str) -> str:
        return "/o/" + quote(check_key(key), safe="/")

    def put(self, key: str, data: bytes) -> None:
        status, _, body = self._call("PUT", key, self._target(key), bytes(data), sign=True)
        if status != 200:
            raise self._refused("PUT", key, status, body)

    def get(self, key: str, max_bytes: int) -> bytes:
        status, headers, data = self._call("GET", key, self._target(key), max_bytes=max_bytes)
        if status != 200:
            raise self._refused("GET", key, status, data)
        if hashlib.sha256(data).hexdigest() != headers.get("X-Spore-Sha256"):
            raise StoreError(f"{self.url}: GET {key}: body does not match the service's SHA-256")
        return data

    def head(self, key: str) -> ObjectInfo | None:
        status, headers, _ = self._call("HEAD", key, self._target(key))
        if status == 404:
            return None
        if status != 200:
            raise self._refused("HEAD", key, status, b"")
        return _info(key, headers.get("Content-Length"), headers.get("X-Spore-Modified"))

    def list(self, prefix: str) -> list[ObjectInfo]:
        target = "/list?prefix=" + quote(check_prefix(prefix), safe="")
        status, _, data = self._call("GET", prefix, target, max_bytes=self.MAX_LIST_BYTES)
        if status != 200:
            raise self._refused("LIST", prefix, status, data)
        try:
            rows = json.loads(data)["objects"]
            out = [_info(check_key(o["key"]), o["size"], o["modified"]) for o in rows]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{self.url}: LIST {prefix!r}: malformed reply: {e}") from None
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        status, _, body = self._call("DELETE", key, self._target(key), sign=True)
        if status != 200:
            raise self._refused("DELETE", key, status, body)


def _info(key: str, size: object, modified: object) -> ObjectInfo:
    try:
        return ObjectInfo(key, int(str(size)), float(str(modified)))
    except ValueError:
        raise StoreError(f"{key}: the service reported size {size!r}, time {modified!r}") from None


def open_store(url: str, identity: Identity | None = None, create: bool = True) -> Store:
    """`http://HOST:PORT` (the store service; `identity` signs writes), `s3://bucket/prefix?endpoint=...`,
    or a local directory path (or file:// URL; `create=False` refuses a missing one)."""
    if url.startswith("http://"):
        return HttpStore(url, identity)
    if url.startswith("s3://"):
        return S3Store(url)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        raise ValueError(f"unsupported store URL {url!r}: use a directory path, http://HOST:PORT or s3://bucket/prefix")
    return LocalStore(url, create=create)


def wait_for(store: Store, key: str, timeout: float, poll: float = 0.2) -> ObjectInfo | None:
    """Poll until `key` exists; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        info = store.head(key)
        if info is not None or time.monotonic() >= deadline:
            return info
        time.sleep(poll)

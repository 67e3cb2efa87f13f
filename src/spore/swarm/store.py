"""Object stores: where peers and validators exchange everything.

Two backends behind one small interface:

- a local directory (the embedded default): writes go to a temporary file
  that is then renamed, so a reader sees a whole object or none;
- any S3-compatible service through boto3, named by a URL
  `s3://bucket/prefix?endpoint=http://host:port&region=us-east-1`
  (credentials from the usual AWS environment variables or config).

The store's own timestamp of an object (file mtime, S3 LastModified) is the
time the protocol trusts for deadlines: a peer cannot choose it.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlparse

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")
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


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: readers see the old object or the new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str, max_bytes: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise TooLarge(f"{key}: {size} bytes exceeds the limit of {max_bytes}")
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise NotFound(key) from None
        if len(data) > max_bytes:
            raise TooLarge(f"{key}: more than {max_bytes} bytes")
        return data

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        st = full.stat()
                    except FileNotFoundError:
                        continue
                    out.append(ObjectInfo(key, st.st_size, st.st_mtime))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    def __init__(self, url: str) -> None:
        import boto3
        from botocore.config import Config

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
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )

    def _k(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unk(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)

    def get(self, key: str, max_bytes: int) -> bytes:
        from botocore.exceptions import ClientError

        try:
            # Ask for at most max_bytes + 1: a liar's object can't make us read more.
            r = self.client.get_object(Bucket=self.bucket, Key=self._k(key), Range=f"bytes=0-{max_bytes}")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            if e.response.get("Error", {}).get("Code") == "InvalidRange":  # empty object
                return b""
            raise StoreError(f"{key}: {e}") from None
        total = r.get("ContentRange", "")
        if total and total.rsplit("/", 1)[-1].isdigit() and int(total.rsplit("/", 1)[-1]) > max_bytes:
            raise TooLarge(f"{key}: {total.rsplit('/', 1)[-1]} bytes exceeds the limit of {max_bytes}")
        data = r["Body"].read(max_bytes + 1)
        if len(data) > max_bytes:
            raise TooLarge(f"{key}: more than {max_bytes} bytes")
        return data

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreError(f"{key}: {e}") from None
        return ObjectInfo(key, int(r["ContentLength"]), r["LastModified"].timestamp())

    def list(self, prefix: str) -> list[ObjectInfo]:
        if prefix:
            check_key(prefix.rstrip("/"))
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        out = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        for page in pages:
            for o in page.get("Contents", []):
                out.append(ObjectInfo(self._unk(o["Key"]), int(o["Size"]), o["LastModified"].timestamp()))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._k(key))


def open_store(url: str) -> Store:
    """`s3://bucket/prefix?endpoint=...` or a local directory path (or file:// URL)."""
    if url.startswith("s3://"):
        return S3Store(url)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        raise ValueError(f"unsupported store URL {url!r}: use a directory path or s3://bucket/prefix")
    return LocalStore(url)


def wait_for(store: Store, key: str, timeout: float, poll: float = 0.2) -> ObjectInfo | None:
    """Poll until `key` exists; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        info = store.head(key)
        if info is not None or time.monotonic() >= deadline:
            return info
        time.sleep(poll)

"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# One thread: results must not depend on it, and on a loaded 2-core machine (CI,
# peers running as processes beside the tests) more threads only contend.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto's standalone server) on loopback for this session.

    Installed with the dev extras by scripts/setup; credentials are dummies the
    server accepts, exported so that child processes (peers) inherit them.
    """
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server is missing: run scripts/setup (it installs the dev extras)")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    os.environ.update(
        AWS_ACCESS_KEY_ID="spore-test", AWS_SECRET_ACCESS_KEY="spore-test", AWS_DEFAULT_REGION="us-east-1"
    )
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_url(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, as a spore store URL."""
    import boto3

    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    bucket = f"spore-{name}-{os.getpid()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/run?endpoint={s3_endpoint}"

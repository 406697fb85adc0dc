"""A real S3-compatible server for tests: versitygw over a temp directory, on loopback.

versitygw (github.com/versity/versitygw) serves a POSIX directory as S3; it and the AWS CLI
the backup Jobs run are built by hack/testenv/build into its cache, as the control plane's
binaries are (the CLI in a virtualenv of its own: its botocore and the project's kubernetes
client disagree on python-dateutil). Each server gets a free port, a temp root, generated root
keys (handed over by environment, never on a command line) and one bucket.

    with running_s3() as s3:
        s3.aws("s3", "ls", f"s3://{s3.bucket}/")
        s3.keys("prod/")
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cluster import TESTENV
from tests.support.operator import free_port
from tests.support.testenv_module import load
from tests.support.wait import wait_until

BUCKET = "duet-backups"
REGION = "us-east-1"
HEALTH = "/health"


@dataclass(frozen=True)
class S3Tools:
    versitygw: Path
    aws: Path

    @classmethod
    def build(cls) -> S3Tools:
        """Run hack/testenv/build (a no-op on a warm cache) and locate what it produced; skip
        the test when the tools are not there and Go, which builds them, is missing."""
        result = subprocess.run(
            [str(TESTENV / "build")], check=False, capture_output=True, text=True
        )
        if result.returncode != 0:
            if shutil.which("go") is None:
                pytest.skip("Go is not installed: hack/testenv/build cannot build versitygw")
            raise RuntimeError(f"hack/testenv/build failed:\n{result.stderr[-4000:]}")
        cache = Path(result.stdout.strip().splitlines()[-1])
        versions = load().read_versions()
        return cls(
            versitygw=cache / f"versitygw-{versions['VERSITYGW_VERSION']}" / "bin" / "versitygw",
            aws=cache / f"awscli-{versions['AWSCLI_VERSION']}" / "bin" / "aws",
        )


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint, root keys and bucket, and the AWS CLI to reach it."""

    endpoint: str
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    aws_cli: Path
    # Where the AWS CLI keeps its config and cache, apart from the user's ~/.aws.
    home: Path

    def env(self) -> dict[str, str]:
        """The AWS CLI's environment as the backup Jobs set it (endpoint, region, keys), with
        this CLI first on PATH and nothing read from the user's own AWS configuration."""
        return os.environ | {
            "PATH": f"{self.aws_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.home),
            "AWS_CONFIG_FILE": str(self.home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The AWS CLI against this server; raises with its stderr when `check` and it fails."""
        done = subprocess.run(
            [str(self.aws_cli), *args], env=self.env(), capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"aws {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def keys(self, prefix: str = "") -> set[str]:
        """Every object key in the bucket under `prefix`, as S3 lists them."""
        listed = self.aws(
            "s3api", "list-objects-v2", "--bucket", self.bucket, "--prefix", prefix,
            "--output", "json",
        )  # fmt: skip
        body = json.loads(listed.stdout or "{}")
        return {item["Key"] for item in body.get("Contents", [])}

    def put(self, objects: Mapping[str, bytes]) -> None:
        """Write `objects` (key -> body) into the bucket, in one upload (the CLI starts slowly)."""
        with tempfile.TemporaryDirectory() as staging:
            for key, body in objects.items():
                path = Path(staging, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
            self.aws(
                "s3", "cp", "--recursive", "--only-show-errors", staging, f"s3://{self.bucket}/"
            )


@contextlib.contextmanager
def running_s3(tools: S3Tools | None = None, bucket: str = BUCKET) -> Iterator[S3Server]:
    """Start versitygw in POSIX mode on a free loopback port over a temp root, make `bucket`,
    yield the server, then stop it and remove its files."""
    tools = tools or S3Tools.build()
    base = Path(tempfile.mkdtemp(prefix="duet-s3-"))
    root = base / "root"
    home = base / "home"
    root.mkdir()
    home.mkdir()
    port = free_port()
    access_key_id = secrets.token_hex(10)
    secret_access_key = secrets.token_urlsafe(30)
    log_path = base / "versitygw.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(tools.versitygw),
                    f"--port=127.0.0.1:{port}",
                    f"--health={HEALTH}",
                    "posix",
                    str(root),
                ],
                env=os.environ
                | {
                    "ROOT_ACCESS_KEY_ID": access_key_id,
                    "ROOT_SECRET_ACCESS_KEY": secret_access_key,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        endpoint = f"http://127.0.0.1:{port}"
        running = process

        def healthy() -> bool:
            if running.poll() is not None:
                said = log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"versitygw exited with {running.returncode}:\n{said}")
            with urllib.request.urlopen(endpoint + HEALTH, timeout=2) as response:
                return bool(response.status == 200)

        wait_until(
            healthy, timeout=30, what=f"versitygw on {endpoint}", ignore=(urllib.error.URLError,)
        )
        server = S3Server(
            endpoint=endpoint,
            bucket=bucket,
            region=REGION,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            aws_cli=tools.aws,
            home=home,
        )
        server.aws("s3api", "create-bucket", "--bucket", bucket)
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def s3_tools() -> S3Tools:
    return S3Tools.build()


@pytest.fixture
def s3_server(s3_tools: S3Tools) -> Iterator[S3Server]:
    """A server of its own for each test, with an empty bucket `duet-backups`."""
    with running_s3(s3_tools) as server:
        yield server

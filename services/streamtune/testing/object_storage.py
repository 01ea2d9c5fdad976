"""A real S3 HTTP API on loopback for tests and benchmarks: moto's standalone server.

The server enforces authentication (``INITIAL_NO_AUTH_ACTION_COUNT``): the first calls create an
IAM user allowed ``s3:*`` and its access key, and from then on every request must be signed with
valid credentials, so wrong credentials fail as they would on AWS or MinIO.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from streamtune.testing.network import free_port, wait_for

_REGION = "us-east-1"
# Calls allowed before authentication starts: create_user, put_user_policy, create_access_key.
_SETUP_CALLS = 3
_S3_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Credentials:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str

    def environment(self) -> dict[str, str]:
        """The standard AWS variables a process needs to reach this server (and nothing else:
        no shared config or credentials file is consulted)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": _REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self, service: str = "s3", **overrides: str) -> Any:
        import boto3

        options = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region_name": _REGION,
            **overrides,
        }
        return boto3.session.Session().client(service, **options)


def _accepts(port: int) -> bool:
    """A TCP probe: it makes no request, so it uses none of the unauthenticated calls."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class MotoS3Server:
    """``with MotoS3Server(log) as server:`` a moto server on a free port, with credentials."""

    def __init__(self, log_path: Path) -> None:
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.credentials: S3Credentials | None = None

    def __enter__(self) -> S3Credentials:
        port = free_port()
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)}
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        endpoint = f"http://127.0.0.1:{port}"
        anonymous = S3Credentials(endpoint, "setup", "setup")
        iam = anonymous.client("iam")
        wait_for(lambda: self._alive() and _accepts(port), 30, what="moto's S3 server")
        iam.create_user(UserName="streamtune")
        iam.put_user_policy(UserName="streamtune", PolicyName="s3", PolicyDocument=json.dumps(_S3_POLICY))
        key = iam.create_access_key(UserName="streamtune")["AccessKey"]
        self.credentials = S3Credentials(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        return self.credentials

    def _alive(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"moto's server exited with {self._process.returncode}; see {self._log_path}")
        return True

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

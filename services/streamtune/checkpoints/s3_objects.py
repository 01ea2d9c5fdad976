"""A thin adapter around one S3 bucket: the few calls the store makes, with errors it can name.

Credentials, region and endpoint come from boto3's standard chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and ``~/.aws/*``, instance and
pod roles; ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3`` for MinIO, Ceph RGW, GCS interop or
moto). No message built here ever contains a credential: errors are described by the service's
error code and the bucket and key, never by the service's own message (which may echo the access
key id or the string it signed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from streamtune.errors import CheckpointError, ConfigurationError

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
# Codes meaning "these credentials may not do this": the fix is the credentials, not a retry.
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "Forbidden"}
)


_CLIENT_ERRORS = (ClientError, BotoCoreError)


class PreconditionFailed(CheckpointError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: where one store's objects live."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigurationError(f"{uri!r} is not an object storage location: use s3://bucket/prefix")
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def make_client() -> Any:
    """An S3 client from the standard AWS configuration."""
    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 4, "mode": "standard"})
    return boto3.session.Session().client("s3", config=config)


class BucketObjects:
    """The objects of one bucket, through ``client``; every failure becomes a :class:`CheckpointError`."""

    def __init__(self, client: Any, location: S3Location) -> None:
        self.client = client
        self.location = location
        # Cleared the first time the service answers 501 to a conditional write (older MinIO,
        # some gateways): writes then go unconditionally, and a warning says what is lost.
        self.conditional_writes = True

    def put(self, name: str, body: bytes | IO[bytes], if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write an object; returns its ETag. ``if_none_match``: only if absent; ``if_match``:
        only if its ETag is still this one. Raises :class:`PreconditionFailed` when it is not.

        One PUT per file (conditional writes on multipart uploads are not offered everywhere),
        so a file may have up to 5 GiB: ample for the models streamtune tunes online."""
        conditions: dict[str, str] = {}
        if self.conditional_writes and if_none_match:
            conditions["IfNoneMatch"] = "*"
        if self.conditional_writes and if_match is not None:
            conditions["IfMatch"] = if_match
        try:
            response = self.client.put_object(
                Bucket=self.location.bucket, Key=self.location.key(name), Body=body, **conditions
            )
        except _CLIENT_ERRORS as error:
            code = _error_code(error)
            if conditions and code in ("NotImplemented", "501"):
                self.conditional_writes = False
                logger.warning(
                    "%s does not support conditional writes: concurrent writers are no longer detected",
                    self.location,
                )
                if hasattr(body, "seek"):
                    body.seek(0)
                return self.put(name, body)
            raise self._error("write", name, error) from None
        return str(response["ETag"])

    def get(self, name: str, max_bytes: int) -> tuple[bytes, str] | None:
        """The bytes and ETag of a small object; None when it does not exist."""
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=self.location.key(name))
        except _CLIENT_ERRORS as error:
            if _error_code(error) in ("NoSuchKey", "404"):
                return None
            raise self._error("read", name, error) from None
        if response["ContentLength"] > max_bytes:
            response["Body"].close()
            raise CheckpointError(
                f"{self.location}/{name} has {response['ContentLength']} bytes, more than {max_bytes}"
            )
        return response["Body"].read(), str(response["ETag"])

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.location.bucket, Key=self.location.key(name))
        except _CLIENT_ERRORS as error:
            if _error_code(error) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._error("read", name, error) from None
        return True

    def stream_into(self, name: str, sink: IO[bytes] | None, max_bytes: int) -> tuple[str, int]:
        """Copy an object into ``sink`` (or only hash it); returns (sha256, bytes). Stops reading
        after ``max_bytes`` + 1 bytes, so an oversized object costs no more than a right one."""
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=self.location.key(name))
        except _CLIENT_ERRORS as error:
            if _error_code(error) in ("NoSuchKey", "404"):
                raise CheckpointError(f"{self.location}/{name} is missing") from None
            raise self._error("read", name, error) from None
        digest, size = hashlib.sha256(), 0
        body = response["Body"]
        try:
            while size <= max_bytes and (chunk := body.read(_CHUNK_BYTES)):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            body.close()
        return digest.hexdigest(), size

    def names(self, under: str = "") -> Iterator[str]:
        """Names (relative to the store's prefix) of every object under ``under``."""
        return (name for name, _ in self.entries(under))

    def entries(self, under: str = "") -> Iterator[tuple[str, str]]:
        """(name relative to the store's prefix, ETag) of every object under ``under``."""
        base = self.location.key("")
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=base + under):
                for entry in page.get("Contents", ()):
                    yield entry["Key"][len(base) :], str(entry.get("ETag", ""))
        except _CLIENT_ERRORS as error:
            raise self._error("list", under or "(store)", error) from None

    def delete(self, names: list[str]) -> None:
        """Delete objects (absent ones are fine), up to 1000 per request as S3 allows."""
        for start in range(0, len(names), 1000):
            batch = [{"Key": self.location.key(name)} for name in names[start : start + 1000]]
            try:
                response = self.client.delete_objects(
                    Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except _CLIENT_ERRORS as error:
                raise self._error("delete", names[start], error) from None
            if response.get("Errors"):
                failed = response["Errors"][0]
                raise CheckpointError(f"cannot delete {self.location}/{failed.get('Key')}: {failed.get('Code')}")

    def _error(self, action: str, name: str, error: Exception) -> CheckpointError:
        """A message naming the action, the object and the service's error code; nothing else."""
        code = _error_code(error)
        where = f"{self.location}/{name}"
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            return PreconditionFailed(f"cannot {action} {where}: another writer changed it first ({code})")
        if code in _CREDENTIAL_CODES:
            return CheckpointError(
                f"cannot {action} {where}: the object store refused the credentials ({code}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the role, and the bucket policy"
            )
        if code == "NoSuchBucket":
            return CheckpointError(f"cannot {action} {where}: bucket {self.location.bucket!r} does not exist")
        if code == "NoCredentialsError":
            return CheckpointError(
                f"cannot {action} {where}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role)"
            )
        if code == "EndpointConnectionError":
            return CheckpointError(
                f"cannot {action} {where}: the object store at {_endpoint(self.client)} is unreachable"
            )
        return CheckpointError(f"cannot {action} {where}: {code}")


def _error_code(error: Exception) -> str:
    """The service's error code (``ClientError``) or the class name of a client-side failure."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(error).__name__


def _endpoint(client: Any) -> str:
    """The endpoint's scheme, host and port: never a user name or password written into the URL."""
    parts = urlsplit(str(getattr(client.meta, "endpoint_url", "")))
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

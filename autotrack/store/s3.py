"""Artifact bytes in an S3-compatible bucket: ``AUTOTRACK_ARTIFACTS=s3://bucket/prefix``.

Blobs are content-addressed like the local folder's: ``<prefix>/ab/abcdef...`` named by the sha256
of the contents, so identical files are stored once. Large files go up in parts (boto3's
``upload_file`` switches to multipart above 64 MiB); every read is checked against the name.

Credentials and region come from the usual AWS variables and files (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ...); a non-AWS server (MinIO, SeaweedFS, Ceph) is named
by ``AUTOTRACK_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``).

Every failure is an :class:`S3BlobError`, an ``OSError``: ``Run.log_artifact`` turns it into a
reference marked ``lost`` with one warning, so a failing bucket never raises into training. Each
call is tried twice before it fails.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import urlsplit

from .._errors import MissingDependencyError
from ._records import StoredBlob
from .base import BlobStore
from .blobs import is_sha256

MULTIPART_THRESHOLD = 64 * 1024 * 1024
#: A blob read back is kept in memory up to this size, else spooled to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024
ATTEMPTS = 2


class S3BlobError(OSError):
    """An S3 request failed (after its retry). The message names the bucket and key, never a secret."""


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise MissingDependencyError("boto3", "s3", "Artifacts in S3") from None
    return boto3


class S3BlobStore(BlobStore):
    """Blobs under ``s3://bucket/prefix``."""

    def __init__(self, location: str, *, client: Any = None) -> None:
        parts = urlsplit(location)
        if parts.scheme != "s3" or not parts.netloc:
            from .._errors import InvalidArgumentError

            raise InvalidArgumentError("AUTOTRACK_ARTIFACTS", location, "use s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = client
        self._client_pid: int | None = os.getpid() if client is not None else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location!r})"

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """One boto3 client per process (clients are thread-safe, but not fork-safe)."""
        if self._client is None or self._client_pid != os.getpid():
            with self._lock:
                if self._client is None or self._client_pid != os.getpid():
                    from botocore.config import Config

                    endpoint = os.environ.get("AUTOTRACK_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
                    self._client = _boto3().session.Session().client(
                        "s3", endpoint_url=endpoint,
                        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=10,
                                      read_timeout=60, s3={"addressing_style": "path"} if endpoint else {}))
                    self._client_pid = os.getpid()
        return self._client

    def key(self, sha256: str) -> str:
        name = f"{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, fn: Callable[[], Any], missing_ok: bool = False) -> Any:
        """Run one S3 request, twice at most; a missing object is ``FileNotFoundError``."""
        from botocore.exceptions import BotoCoreError, ClientError

        last: Exception | None = None
        for _ in range(ATTEMPTS):
            try:
                return fn()
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchKey", "NotFound"):
                    if missing_ok:
                        return None
                    raise FileNotFoundError(f"no blob at {what}") from None
                last = exc
                if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "403"):
                    break  # retrying will not help
            except (BotoCoreError, OSError) as exc:
                last = exc
        raise S3BlobError(f"S3 request failed for {what}: {type(last).__name__}: {_clean(str(last))}") from None

    def _where(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self.key(sha256)}"

    # -- BlobStore -----------------------------------------------------------------------------

    def put_file(self, source: str) -> StoredBlob:
        # One open handle for hashing and uploading: a file deleted meanwhile (a checkpoint rotated
        # out by its saver) is still read whole.
        with open(source, "rb") as f:
            digest = hashlib.sha256()
            size = 0
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
            sha = digest.hexdigest()
            if not self._touch(sha, size):
                from boto3.s3.transfer import TransferConfig

                config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)

                def upload() -> None:
                    f.seek(0)
                    self.client.upload_fileobj(f, self.bucket, self.key(sha), ExtraArgs={"Metadata": _meta(sha)},
                                               Config=config)

                self._call(self._where(sha), upload)
        return StoredBlob(sha, size)

    def put_bytes(self, data: bytes) -> StoredBlob:
        sha = hashlib.sha256(data).hexdigest()
        if not self._touch(sha, len(data)):
            self._call(self._where(sha), lambda: self.client.put_object(
                Bucket=self.bucket, Key=self.key(sha), Body=data, Metadata=_meta(sha)))
        return StoredBlob(sha, len(data))

    def _touch(self, sha256: str, size: int) -> bool:
        """If the blob is already stored whole, refresh its time (so a garbage collection running
        now keeps it) and return True."""
        head = self._call(self._where(sha256), lambda: self.client.head_object(Bucket=self.bucket, Key=self.key(sha256)),
                          missing_ok=True)
        if head is None or head.get("ContentLength") != size:
            return False
        self._call(self._where(sha256), lambda: self.client.copy_object(
            Bucket=self.bucket, Key=self.key(sha256), CopySource={"Bucket": self.bucket, "Key": self.key(sha256)},
            Metadata=_meta(sha256), MetadataDirective="REPLACE"))
        return True

    def open(self, sha256: str) -> IO[bytes]:
        """The blob's bytes, checked against its name (``OSError`` when they do not match)."""
        if not is_sha256(sha256):
            raise FileNotFoundError(f"no blob {sha256!r} in {self.location}")
        where = self._where(sha256)
        body = self._call(where, lambda: self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"])
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned to the caller
        digest = hashlib.sha256()
        try:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        except Exception as exc:  # noqa: BLE001 - a broken download is an I/O error
            out.close()
            raise S3BlobError(f"reading {where} failed: {type(exc).__name__}") from None
        if digest.hexdigest() != sha256:
            out.close()
            raise S3BlobError(f"the blob at {where} does not match its sha256 (damaged or replaced)")
        out.seek(0)
        return out  # type: ignore[return-value]

    def exists(self, sha256: str) -> bool:
        if not is_sha256(sha256):
            return False
        head = self._call(self._where(sha256), lambda: self.client.head_object(Bucket=self.bucket, Key=self.key(sha256)),
                          missing_ok=True)
        return head is not None

    def _head(self, sha256: str) -> dict[str, Any] | None:
        return self._call(self._where(sha256), lambda: self.client.head_object(Bucket=self.bucket, Key=self.key(sha256)),
                          missing_ok=True)

    def delete(self, sha256: str) -> int:
        head = self._head(sha256) if is_sha256(sha256) else None
        if head is None:
            return 0
        self._call(self._where(sha256), lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256)))
        return int(head.get("ContentLength", 0))

    def list(self) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        pages = self._call(self.location, lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if is_sha256(name) and obj["Key"] == self.key(name):
                    yield name, int(obj["Size"])

    def collect(self, sha256: str, referenced: Callable[[str], bool], touched_before: float) -> int:
        """Delete one blob if nothing refers to it and nobody stored it again after ``touched_before``
        (a writer storing the same contents refreshes the object's time first)."""
        head = self._head(sha256)
        if head is None or _touched(head) > touched_before or referenced(sha256):
            return 0
        self._call(self._where(sha256), lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256)))
        return int(head.get("ContentLength", 0))


def _meta(sha256: str) -> dict[str, str]:
    """Object metadata: the name it must hash to, and when it was last stored (to the microsecond;
    S3's LastModified has whole seconds)."""
    import time

    return {"sha256": sha256, "touched": repr(time.time())}


def _touched(head: dict[str, Any]) -> float:
    try:
        return float(head.get("Metadata", {})["touched"])
    except (KeyError, ValueError):  # written by someone else: up to a second after LastModified
        return head["LastModified"].timestamp() + 1.0


def _clean(text: str) -> str:
    """No secret of the environment in a message (boto3 never prints them, but be sure)."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text

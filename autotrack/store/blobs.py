"""Artifact bytes in a local folder, named by their sha256: ``artifacts/ab/abcdef...``.

A blob is written to ``tmp/`` first, fsynced, and renamed into place, so a reader never sees a
partial file and concurrent writers of the same contents leave one valid blob. Garbage collection
renames a blob to a tombstone before deleting it and re-checks, so a writer adding the same
contents at that moment never loses it (see :meth:`LocalBlobStore.collect`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from .base import BlobStore
from ._records import StoredBlob

#: Partial copies in ``tmp/`` older than this were left by a killed process; removed at open.
STALE_PARTIAL_S = 3600.0
#: A blob touched this recently may belong to a write whose record is not committed yet.
GC_GRACE_S = 60.0
DIR_MODE = 0o700
BLOB_MODE = 0o400


def is_sha256(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.dir = self.root / "artifacts"
        self.tmp = self.root / "tmp"
        self.location = str(self.dir)
        self._ready_pid: int | None = None

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _ready(self) -> None:
        if self._ready_pid == os.getpid():
            return
        for folder in (self.root, self.dir, self.tmp):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._ready_pid = os.getpid()

    def clean_partials(self, older_than: float = STALE_PARTIAL_S) -> int:
        """Remove partial copies left in ``tmp/`` by killed processes. Returns the bytes freed."""
        freed = 0
        cutoff = time.time() - older_than
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.tmp):
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if entry.name.startswith(".part-") and st.st_mtime < cutoff:
                        os.unlink(entry.path)
                        freed += st.st_size
        return freed

    def path(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / sha256

    def local_path(self, sha256: str) -> str | None:
        """The blob's path, or None for a name that is not a sha256 or a blob that is not a regular
        file inside this folder (a planted symlink is never followed out of it)."""
        if not is_sha256(sha256):
            return None
        path = self.path(sha256)
        if path.is_symlink() or not path.is_file():
            return None
        if self.dir.resolve() not in path.resolve().parents:
            return None
        return str(path)

    def put_file(self, source: str | os.PathLike[str]) -> StoredBlob:
        with open(source, "rb") as src:
            return self._put(iter(lambda: src.read(1 << 20), b""))

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self._put([data])

    def _put(self, chunks: Iterable[bytes]) -> StoredBlob:
        self._ready()
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path(sha)
            try:
                # Already stored: touch it, so a garbage collection running now keeps it.
                if final.stat().st_size != size:
                    raise FileNotFoundError(final)
                os.utime(final)
                os.unlink(tmp_name)
            except FileNotFoundError:
                final.parent.mkdir(mode=DIR_MODE, exist_ok=True)
                os.chmod(tmp_name, BLOB_MODE)
                os.replace(tmp_name, final)
            return StoredBlob(sha, size)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def open(self, sha256: str) -> IO[bytes]:
        path = self.local_path(sha256)
        if path is None:
            raise FileNotFoundError(f"no blob {sha256!r} in {self.dir}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # a symlink planted since: refused
        return os.fdopen(fd, "rb")

    def exists(self, sha256: str) -> bool:
        return self.local_path(sha256) is not None

    def delete(self, sha256: str) -> int:
        path = self.local_path(sha256)
        if path is None:
            return 0
        size = os.stat(path).st_size
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return size

    def list(self) -> Iterator[tuple[str, int]]:
        if not self.dir.is_dir():
            return
        for sub in sorted(os.scandir(self.dir), key=lambda e: e.name):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(sub.path):
                if is_sha256(entry.name) and entry.is_file(follow_symlinks=False):
                    yield entry.name, entry.stat(follow_symlinks=False).st_size

    def collect(self, sha256: str, referenced: Callable[[str], bool], touched_before: float) -> int:
        """Delete one blob if nothing refers to it and nobody touched it after ``touched_before``.

        The blob is first renamed to a tombstone; a writer storing the same contents meanwhile
        either touched it before the rename (the tombstone's fresh time tells, and it is restored)
        or finds it gone and writes it anew. Returns the bytes freed.
        """
        path = self.local_path(sha256)
        if path is None:
            return 0
        try:
            if os.stat(path).st_mtime > touched_before:
                return 0
            tomb = f"{path}.gc-{os.getpid()}"
            os.replace(path, tomb)
        except FileNotFoundError:
            return 0
        st = os.stat(tomb)
        if st.st_mtime > touched_before or referenced(sha256):
            if os.path.exists(path):  # a writer stored it again meanwhile: that copy is as good
                os.unlink(tomb)
            else:
                os.replace(tomb, path)
            return 0
        os.unlink(tomb)
        return st.st_size

"""Content-addressed file storage: blobs named by SHA-256, unpacked models cached beside them.

Every write lands in `tmp/` first and is moved into place with one rename, so a crash or a
rejected upload never leaves a half-written blob where a reader could find it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.artifacts import archives
from app.artifacts.errors import UploadTooLarge


@dataclass(frozen=True)
class Received:
    """A finished upload in the temporary area, not yet committed."""

    path: Path
    sha256: str
    size: int


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.blobs = root / "blobs"
        self.models = root / "models"
        for folder in (self.tmp, self.blobs, self.models):
            folder.mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def model_dir(self, sha256: str) -> Path:
        return self.models / sha256

    def new_tmp_path(self, suffix: str = "") -> Path:
        return self.tmp / f"{uuid.uuid4().hex}{suffix}"

    async def receive(self, chunks: AsyncIterator[bytes], *, limit: int) -> Received:
        """Stream chunks to a temporary file, hashing and counting; over the limit, delete it."""
        path = self.new_tmp_path()
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
                    digest.update(chunk)
                    self.write_chunk(out, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Received(path, digest.hexdigest(), size)

    @staticmethod
    def write_chunk(out: BinaryIO, chunk: bytes) -> None:
        """Every upload byte goes through here (a full disk raises OSError ENOSPC here)."""
        out.write(chunk)

    def commit(self, received: Received) -> Path:
        """Move a received file to its content address (a no-op when the blob already exists)."""
        target = self.blob_path(received.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            received.path.unlink(missing_ok=True)
        else:
            os.replace(received.path, target)
        return target

    def discard(self, received: Received) -> None:
        received.path.unlink(missing_ok=True)

    def unpack_model(self, sha256: str, *, max_entries: int, max_unpacked_bytes: int) -> Path:
        """The unpacked model folder for a stored archive, unpacking it once (checked again)."""
        dest = self.model_dir(sha256)
        if dest.exists():
            return dest
        work = self.new_tmp_path("-model")
        try:
            archives.extract(
                self.blob_path(sha256),
                work,
                max_entries=max_entries,
                max_unpacked_bytes=max_unpacked_bytes,
            )
            archives.copy_tree_atomically(work, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return dest

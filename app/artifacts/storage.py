"""Content-addressed file storage: blobs named by SHA-256, unpacked models cached beside them.

Every write lands in `tmp/` first and is moved into place with one rename, so a crash or a
rejected upload never leaves a half-written blob where a reader could find it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.artifacts import archives
from app.artifacts.errors import UploadTimedOut, UploadTooLarge


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

    async def receive(
        self,
        chunks: AsyncIterator[bytes],
        *,
        limit: int,
        idle_timeout_s: float | None = None,
        total_timeout_s: float | None = None,
        reserve_bytes: int | None = None,
    ) -> Received:
        """Stream chunks to a temporary file, hashing and counting; on any refusal, delete it.

        Over `limit` bytes: UploadTooLarge. No chunk
        for `idle_timeout_s`, or not done after `total_timeout_s`: UploadTimedOut. Free space
        below `reserve_bytes` (checked every 64 MiB): StorageFull.
        """
        path = self.new_tmp_path()
        digest = hashlib.sha256()
        size = 0
        next_space_check = 0
        deadline = None if total_timeout_s is None else time.monotonic() + total_timeout_s
        iterator = aiter(chunks)
        try:
            with path.open("wb") as out:
                while True:
                    chunk = await _next_chunk(iterator, idle_timeout_s, deadline, size)
                    if chunk is None:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
                    if reserve_bytes is not None and size >= next_space_check:
                        archives.check_free_space(self.tmp, len(chunk), reserve_bytes)
                        next_space_check = size + (64 << 20)
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

    def unpack_model(
        self,
        sha256: str,
        *,
        max_entries: int,
        max_unpacked_bytes: int,
        max_file_bytes: int | None = None,
        reserve_bytes: int | None = None,
    ) -> Path:
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
                max_file_bytes=max_file_bytes,
                reserve_bytes=reserve_bytes,
            )
            archives.copy_tree_atomically(work, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return dest


async def _next_chunk(
    iterator: AsyncIterator[bytes], idle_s: float | None, deadline: float | None, size: int
) -> bytes | None:
    """The next body chunk, or None at the end; a stalled or overlong body raises."""
    wait = idle_s
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise UploadTimedOut(
                f"upload not complete within LEAKGATE_UPLOAD_TIMEOUT_S ({size} bytes received)"
            )
        wait = left if wait is None else min(wait, left)
    try:
        return await asyncio.wait_for(anext(iterator), wait)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise UploadTimedOut(
            f"upload stalled: no data for {wait:g} s after {size} bytes "
            "(LEAKGATE_UPLOAD_IDLE_TIMEOUT_S / LEAKGATE_UPLOAD_TIMEOUT_S)"
        ) from None

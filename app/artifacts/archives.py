"""Safe unpacking of model archives: no path escape, no links or devices, bounded size and count.

Model folders arrive as `.tar.gz`/`.tgz`/`.tar`/`.zip` of a Hugging Face `save_pretrained` folder.
Only regular files with known safe types are written; pickled weights are refused with a hint.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from app.artifacts.errors import ArtifactRejected, StorageFull

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz"}
ALLOWED_SUFFIXES = {".json", ".safetensors", ".txt", ".model", ".md", ".jinja"}
ALLOWED_NAMES = {"README", "LICENSE", ".gitattributes"}
WEIGHT_SUFFIX = ".safetensors"
"""Weights may be as large as the archive limit; every other file has its own, smaller limit."""
PICKLE_HINT = (
    "pickled weights can run code when loaded, so leakgate refuses them; re-save the model with "
    "model.save_pretrained(folder, safe_serialization=True) and upload the folder"
)


@dataclass(frozen=True)
class Entry:
    """One regular file inside an archive, by its cleaned relative path."""

    path: PurePosixPath
    size: int
    source: object  # the TarInfo or ZipInfo it came from


def sniff_archive(path: Path) -> str:
    """Archive type from the file's first bytes (the name is not trusted): "zip" or "tar"."""
    with path.open("rb") as f:
        head = f.read(512)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80" or head[:4] == b"PK\x05\x06":
        raise ArtifactRejected(
            f"the upload looks like a pickle, not a model archive: {PICKLE_HINT}"
        )
    raise ArtifactRejected(
        "a model must be uploaded as a .tar.gz or .zip of a save_pretrained folder "
        "(config.json, *.safetensors, tokenizer files); this file is neither"
    )


def _clean_name(raw: str) -> PurePosixPath:
    if "\\" in raw or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ArtifactRejected(f"archive entry {raw!r} has an absolute or non-POSIX path")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArtifactRejected(f"archive entry {raw!r} escapes the folder ('..')")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _check_file_type(path: PurePosixPath) -> None:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ArtifactRejected(f"archive entry {str(path)!r} is pickled weights: {PICKLE_HINT}")
    if suffix == ".py":
        raise ArtifactRejected(
            f"archive entry {str(path)!r} is Python code; leakgate never runs remote code "
            "(trust_remote_code), so upload a model whose architecture transformers knows"
        )
    if suffix not in ALLOWED_SUFFIXES and path.name not in ALLOWED_NAMES:
        raise ArtifactRejected(
            f"archive entry {str(path)!r} has an unexpected type; allowed: "
            + ", ".join(sorted(ALLOWED_SUFFIXES))
        )


def list_entries(
    path: Path, *, max_entries: int, max_unpacked_bytes: int, max_file_bytes: int | None = None
) -> list[Entry]:
    """Check every entry's path, type and declared size; return the regular files."""
    kind = sniff_archive(path)
    entries: list[Entry] = []
    total = 0
    count = 0
    for raw_name, size, is_file, is_dir, source in _iter_members(path, kind):
        count += 1
        if count > max_entries:
            raise ArtifactRejected(f"archive has more than {max_entries} entries")
        name = _clean_name(raw_name)
        if is_dir:
            continue
        if not is_file:
            raise ArtifactRejected(
                f"archive entry {raw_name!r} is a link or special file; only regular files "
                "are accepted"
            )
        _check_file_type(name)
        _check_file_size(name, size, max_file_bytes)
        total += size
        if total > max_unpacked_bytes:
            raise ArtifactRejected(
                f"archive unpacks to more than {max_unpacked_bytes} bytes (the configured limit)"
            )
        entries.append(Entry(name, size, source))
    if not entries:
        raise ArtifactRejected("archive is empty")
    return _strip_common_folder(entries)


def _check_file_size(name: PurePosixPath, size: int, max_file_bytes: int | None) -> None:
    if max_file_bytes is None or name.suffix.lower() == WEIGHT_SUFFIX or size <= max_file_bytes:
        return
    raise ArtifactRejected(
        f"archive entry {str(name)!r} unpacks to more than {max_file_bytes} bytes, the limit for "
        "files other than *.safetensors (LEAKGATE_MAX_ARCHIVE_FILE_BYTES)"
    )


def check_free_space(folder: Path, needed: int, reserve: int) -> None:
    """Refuse work that would leave less than `reserve` bytes free on `folder`'s volume."""
    free = shutil.disk_usage(folder).free
    if free - needed < reserve:
        raise StorageFull(
            f"insufficient storage: {needed} bytes are needed, {free} are free and "
            f"{reserve} must stay free (LEAKGATE_STORAGE_RESERVE_BYTES); try again later or "
            "ask the operator to free space (leakgate gc)"
        )


def _iter_members(path: Path, kind: str) -> Iterator[tuple[str, int, bool, bool, object]]:
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    # Unix type bits, when present (Python's writestr leaves them at 0).
                    file_type = stat.S_IFMT(info.external_attr >> 16)
                    special = file_type not in (0, stat.S_IFREG, stat.S_IFDIR)
                    is_dir = info.is_dir()
                    yield info.filename, info.file_size, not is_dir and not special, is_dir, info
        else:
            with tarfile.open(path, "r:*") as tf:
                for member in tf:
                    yield member.name, member.size, member.isreg(), member.isdir(), member
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArtifactRejected(f"archive is corrupt or truncated: {exc}") from exc


def _strip_common_folder(entries: list[Entry]) -> list[Entry]:
    """`tar czf m.tgz my_model/` wraps everything in one folder; look inside it."""
    tops = {e.path.parts[0] for e in entries}
    if len(tops) == 1 and all(len(e.path.parts) > 1 for e in entries):
        return [Entry(PurePosixPath(*e.path.parts[1:]), e.size, e.source) for e in entries]
    return entries


@contextmanager
def _open_member(archive: Path, kind: str, entry: Entry) -> Iterator[IO[bytes]]:
    if kind == "zip":
        assert isinstance(entry.source, zipfile.ZipInfo)
        with zipfile.ZipFile(archive) as zf, zf.open(entry.source) as fh:
            yield fh
    else:
        with tarfile.open(archive, "r:*") as tf:
            assert isinstance(entry.source, tarfile.TarInfo)
            extracted = tf.extractfile(entry.source)
            assert extracted is not None
            with extracted:
                yield extracted


# What a damaged archive raises while its data is read: bad deflate or gzip data, a CRC or
# size that does not match (BadZipFile), data that ends early (EOFError, tarfile.ReadError).
CORRUPT_DATA_ERRORS = (zlib.error, zipfile.BadZipFile, tarfile.TarError, EOFError)


def extract(
    archive: Path,
    dest: Path,
    *,
    max_entries: int,
    max_unpacked_bytes: int,
    max_file_bytes: int | None = None,
    reserve_bytes: int | None = None,
) -> None:
    """Write the archive's checked regular files under `dest`, counting real bytes written.

    Header sizes can lie (a tar header, a zip's declared size), so the limits are enforced
    again on the bytes actually written, per file and in total. With `reserve_bytes`, the
    declared total must fit the free space first. Damaged compressed data is a 422.
    """
    try:
        _extract(
            archive,
            dest,
            max_entries=max_entries,
            max_unpacked_bytes=max_unpacked_bytes,
            max_file_bytes=max_file_bytes,
            reserve_bytes=reserve_bytes,
        )
    except CORRUPT_DATA_ERRORS as exc:
        raise ArtifactRejected(
            f"archive is corrupt: its compressed data cannot be read ({type(exc).__name__}: "
            f"{exc}); re-create it (tar czf / zip) and upload it again"
        ) from exc


def _extract(
    archive: Path,
    dest: Path,
    *,
    max_entries: int,
    max_unpacked_bytes: int,
    max_file_bytes: int | None,
    reserve_bytes: int | None,
) -> None:
    entries = list_entries(
        archive,
        max_entries=max_entries,
        max_unpacked_bytes=max_unpacked_bytes,
        max_file_bytes=max_file_bytes,
    )
    kind = sniff_archive(archive)
    dest.mkdir(parents=True, exist_ok=True)
    if reserve_bytes is not None:
        check_free_space(dest, sum(e.size for e in entries), reserve_bytes)
    root = dest.resolve()
    written = 0
    for entry in entries:
        target = (root / entry.path).resolve()
        if not target.is_relative_to(root):
            raise ArtifactRejected(f"archive entry {str(entry.path)!r} escapes the folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        with _open_member(archive, kind, entry) as src, target.open("wb") as out:
            file_written = 0
            while chunk := src.read(1 << 20):
                written += len(chunk)
                file_written += len(chunk)
                _check_file_size(entry.path, file_written, max_file_bytes)
                if written > max_unpacked_bytes:
                    raise ArtifactRejected(
                        f"archive unpacks to more than {max_unpacked_bytes} bytes "
                        "(the configured limit)"
                    )
                out.write(chunk)


def copy_tree_atomically(src: Path, dest: Path) -> None:
    """Move a finished folder into place with one rename, so readers never see half of it."""
    if dest.exists():
        shutil.rmtree(src, ignore_errors=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        src.rename(dest)
    except OSError:
        if not dest.exists():
            raise
        shutil.rmtree(src, ignore_errors=True)

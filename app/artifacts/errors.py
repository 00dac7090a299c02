"""Errors that reject an upload; each says what was wrong and what to do."""

from app.core.errors import InsufficientStorage, Rejected, TimedOut, TooLarge


class ArtifactRejected(Rejected):
    """The upload is not acceptable (HTTP 422); nothing is stored."""


class UploadTooLarge(TooLarge):
    """The upload passed the configured byte limit (HTTP 413); the partial file is removed."""


class StorageFull(InsufficientStorage):
    """The storage volume would fall below its free-space reserve (HTTP 507); nothing is kept."""


class UploadTimedOut(TimedOut):
    """The upload body stalled or took too long (HTTP 408); the partial file is removed."""

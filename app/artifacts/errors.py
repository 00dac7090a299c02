"""Errors that reject an upload; each says what was wrong and what to do."""


class ArtifactRejected(ValueError):
    """The upload is not acceptable (HTTP 422); nothing is stored."""


class UploadTooLarge(ValueError):
    """The upload passed the configured byte limit (HTTP 413); the partial file is removed."""


class StorageFull(OSError):
    """The storage volume would fall below its free-space reserve (HTTP 507); nothing is kept."""


class UploadTimedOut(ValueError):
    """The upload body stalled or took too long (HTTP 408); the partial file is removed."""

"""Errors that reject an upload; each says what was wrong and what to do."""


class ArtifactRejected(ValueError):
    """The upload is not acceptable (HTTP 422); nothing is stored."""


class UploadTooLarge(ValueError):
    """The upload passed the configured byte limit (HTTP 413); the partial file is removed."""

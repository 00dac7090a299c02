"""Errors that reject an upload; each says what was wrong and what to do."""

from app.core.errors import Rejected, TooLarge


class ArtifactRejected(Rejected):
    """The upload is not acceptable (HTTP 422); nothing is stored."""


class UploadTooLarge(TooLarge):
    """The upload passed the configured byte limit (HTTP 413); the partial file is removed."""

"""HMAC-SHA256 signatures of webhook bodies, and their check on the receiving side.

The signed message is `<timestamp>.<raw body>`, so a receiver that checks the signature and
refuses old timestamps cannot be fed a replayed delivery. Receivers in Python import
`verify`; others recompute the same HMAC (see README).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Leakgate-Signature"
TIMESTAMP_HEADER = "X-Leakgate-Timestamp"
EVENT_HEADER = "X-Leakgate-Event"
DELIVERY_HEADER = "X-Leakgate-Delivery"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `sha256=<hex>`."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(secret: str, body: bytes, *, event: str, delivery: str) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery,
    }


def verify(
    secret: str, body: bytes, *, timestamp: str, signature: str, tolerance_s: float = 300
) -> bool:
    """True when the signature matches and the timestamp is within `tolerance_s` of now."""
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - moment) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, moment, body), signature)

"""Webhook signatures: HMAC-SHA256 over ``{timestamp}.{body}``, as Stripe and Slack do it.

A request carries::

    X-Vigie-Timestamp: 1767225600            # POSIX seconds when it was signed (each retry
                                             #   is signed anew)
    X-Vigie-Signature: v1=5257a869e7ecebed...  # hex HMAC-SHA256(secret, b"1767225600." + body)
    X-Vigie-Delivery:  9f86d081884c7d65...   # the same for every retry of one message

A receiver verifies it with ``verify`` (or the same few lines in any language): recompute
the HMAC over the raw body bytes as received, compare in constant time, and refuse a
timestamp more than ``tolerance`` seconds away from its clock, so a captured request cannot
be replayed later. Retries are at least once: deduplicate on ``X-Vigie-Delivery``.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Vigie-Timestamp"
SIGNATURE_HEADER = "X-Vigie-Signature"
DELIVERY_HEADER = "X-Vigie-Delivery"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Vigie-Signature`` value for ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, now: float,
           tolerance: float = DEFAULT_TOLERANCE_S) -> bool:
    """True when ``signature`` is ours for ``body`` and ``timestamp`` is within ``tolerance``
    seconds of ``now`` (the replay window)."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, int(timestamp), body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())

"""HTTP Basic credentials, as the SDKs send their write key and vendors their webhook
login."""

from __future__ import annotations

import base64
import binascii


def basic_credentials(header: str | None) -> tuple[str, str | None] | None:
    """(user, password) of a Basic ``Authorization`` header; the password is ``None`` when
    the decoded text has no colon. ``None`` when the header is absent, not Basic, or not
    base64 of UTF-8 text."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return user, password if sep else None

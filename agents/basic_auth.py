"""HTTP Basic credentials, as the SDKs send their write key and vendors their webhook
login, and secrets compared as hostile input."""

from __future__ import annotations

import base64
import binascii
import hmac


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


def same_secret(expected: str, given: str | None) -> bool:
    """Whether ``given`` (a header, cookie or form value) is the secret ``expected``,
    compared in constant time. A value that is not UTF-8 (the server keeps such bytes as
    lone surrogates) is simply not the secret: encoding it must not fail the request."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"),
                               given.encode("utf-8", "surrogatepass"))

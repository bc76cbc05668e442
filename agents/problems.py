"""API errors as Problem Details (RFC 9457): ``application/problem+json``.

Every error of the API has the members the RFC defines (``type``, ``title``, ``status``,
``detail``) and keeps ``error``, the short code clients of the first API version
branch on. ``type`` is a URI per code, the same for every install, so a client can
tell problems apart without parsing ``detail``.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: ``type`` of a problem is this base followed by its code (``not_found``...).
PROBLEM_TYPE_BASE = "https://telltale.dev/problems/"


def problem_body(status: int, code: str, detail: str) -> dict[str, object]:
    """The Problem Details object of an error with HTTP ``status`` and short ``code``."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:  # a status Python does not name
        title = code.replace("_", " ").capitalize()
    return {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status,
            "detail": detail, "error": code}


def problem_response(status: int, code: str, detail: str) -> web.Response:
    response = web.Response(body=orjson.dumps(problem_body(status, code, detail)),
                            status=status)
    # aiohttp's content_type= would add a charset parameter the RFC does not define.
    response.headers["Content-Type"] = PROBLEM_CONTENT_TYPE
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="telltale"'
    return response

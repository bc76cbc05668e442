"""Argument types for the ``telltale`` subcommands: a mistake in an argument is one line
from argparse (``telltale simulate: error: argument --accounts: ...``) and exit code 2,
before any work starts, never a traceback from deep inside the command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def checked(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argument type that runs ``parse`` (the command's own parser) only to refuse a
    bad value with its message, and hands the text on unchanged."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def positive_int(text: str) -> int:
    """A whole number of at least 1 (accounts, days)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def language(text: str) -> str:
    """A language Telltale writes its reports in (en, fr)."""
    from scoring.i18n import check_language

    problem = check_language(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_language_argument(parser: argparse.ArgumentParser) -> None:
    """``--language``: what the command's summary and report are written in."""
    from scoring.i18n import LANGUAGES

    parser.add_argument("--language", type=language, default=None, metavar="LANG",
                        help=f"language of the summary and report ({', '.join(LANGUAGES)}; "
                        "default: the scoring config's [locale] language)")

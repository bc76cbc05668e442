"""The message catalogues' workflow: find every message in the code, bring the ``.po``
files up to date, and say what is missing (``scripts/catalogues``, docs/languages.md).

Messages are found with Babel's extractor in the modules that write for people
(:data:`SOURCES`): every ``gettext``/``ngettext``/``pgettext`` call with literal strings.
English says each message id back as it is; every other language keeps its translations,
gets new messages untranslated (to be written) and loses the ones the code no longer says.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po, write_po

from scoring.i18n import DOMAIN, LANGUAGES, LOCALES_DIR, placeholders

KEYWORDS = {**DEFAULT_KEYWORDS, "N_": ((1, "c"), 2)}
"""gettext's keywords, and ``N_(context, msgid)`` for labels marked in tables."""
ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "scoring/explain.py", "scoring/labels.py", "scoring/attention.py", "scoring/i18n.py",
    "agents/page.py", "agents/sinks/slack.py", "agents/sinks/digest.py",
    "history/report.py", "history/plots.py", "history/calibrate.py", "history/business.py",
    "history/backtest.py",
)
"""Modules whose messages are in the catalogues (paths from the repository root)."""


@dataclass(frozen=True, slots=True)
class Message:
    context: str | None
    msgid: str
    plural: str | None
    where: str


def extract(root: Path = ROOT) -> list[Message]:
    """Every message the code says, in order of first appearance, once each."""
    seen: dict[tuple[str | None, str], Message] = {}
    for rel in SOURCES:
        for lineno, funcname, text, _comments, context in _extract_file(root / rel):
            del funcname
            if isinstance(text, tuple):
                msgid, plural = text[0], text[1]
            else:
                msgid, plural = text, None
            if not msgid:
                continue
            seen.setdefault((context, msgid), Message(context, msgid, plural, f"{rel}:{lineno}"))
    return list(seen.values())


def _extract_file(path: Path) -> Iterator[tuple[int, str, str | tuple[str, ...], list[str],
                                               str | None]]:
    for lineno, message, comments, context in extract_from_file(
            "python", str(path), keywords=KEYWORDS):
        yield lineno, "", message, comments, context


def po_path(language: str) -> Path:
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    with po_path(language).open("rb") as fh:
        return read_po(fh, locale=language, domain=DOMAIN)


def update(messages: list[Message] | None = None) -> dict[str, int]:
    """Rewrite every catalogue for ``messages`` (default: :func:`extract`); returns, per
    language, how many messages are still to translate."""
    found = extract() if messages is None else messages
    todo: dict[str, int] = {}
    for language in LANGUAGES:
        path = po_path(language)
        old = read(language) if path.exists() else Catalog(locale=language, domain=DOMAIN)
        new = Catalog(locale=language, domain=DOMAIN, project="Telltale",
                      header_comment=f"# Telltale messages ({language}).\n"
                                     "# Written by scripts/catalogues update; "
                                     "see docs/languages.md.")
        todo[language] = 0
        for m in found:
            msgid = m.msgid if m.plural is None else (m.msgid, m.plural)
            prior = old.get(m.msgid, m.context)
            if language == "en":
                string: Any = m.msgid if m.plural is None else (
                    m.msgid, m.plural)
            elif prior is not None and prior.string and (m.plural is None) == (
                    not isinstance(prior.id, tuple | list)):
                string = prior.string if m.plural is None else tuple(prior.string)
            else:
                string = "" if m.plural is None else ("",) * new.num_plurals
                todo[language] += 1
            new.add(msgid, string, locations=[(m.where.split(":")[0],
                                               int(m.where.split(":")[1]))],
                    flags=("python-format",) if placeholders(m.msgid) or "%(" in (
                        m.plural or "") else (), context=m.context)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, new, width=100, omit_header=False, sort_output=False)
    return todo


_HIDDEN = re.compile(r"""\bf(['"]).*\{[^}]*\b(?:n?p?gettext|N_)\(""")


def hidden_messages(root: Path = ROOT) -> list[str]:
    """Lookups written inside an f-string, which the extractor cannot see (Python 3.11
    keeps an f-string as one token): each must be taken out into a variable."""
    out = []
    for rel in SOURCES:
        for n, line in enumerate((root / rel).read_text("utf-8").splitlines(), 1):
            if _HIDDEN.search(line):
                out.append(f"{rel}:{n}: a message inside an f-string is not extracted")
    return out


def problems(messages: list[Message] | None = None) -> list[str]:
    """What keeps the catalogues from being complete: a message missing or untranslated
    in a language, a translation whose placeholders differ from the English, a plural
    without all the language's forms, a message no longer in the code, a lookup the
    extractor cannot see."""
    found = extract() if messages is None else messages
    out: list[str] = hidden_messages()
    for language in LANGUAGES:
        cat = read(language)
        wanted = {(m.context, m.msgid) for m in found}
        for m in found:
            entry = cat.get(m.msgid, m.context)
            name = f"{language}: {m.msgid!r} ({m.where})"
            if entry is None or not entry.string or entry.fuzzy:
                out.append(f"{name}: missing")
                continue
            english = placeholders(m.msgid) | placeholders(m.plural or "")
            if m.plural is None:
                if isinstance(entry.string, tuple | list):
                    out.append(f"{name}: has plural forms, the code says one")
                    continue
                got = placeholders(entry.string)
            else:
                forms = list(entry.string) if isinstance(entry.string, tuple | list) else []
                if len(forms) != cat.num_plurals or not all(forms):
                    out.append(f"{name}: needs {cat.num_plurals} plural forms")
                    continue
                got = set().union(*(placeholders(f) for f in forms))
                # a form may leave the count out ("once", "une fois"), never another value
                english.discard("count")
                got.discard("count")
            if got != english:
                out.append(f"{name}: placeholders {sorted(got)}, English has {sorted(english)}")
        for entry in cat:
            if entry.id and (entry.context, entry.id if isinstance(entry.id, str)
                             else entry.id[0]) not in wanted:
                out.append(f"{language}: {entry.id!r} is no longer in the code")
    return out


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        for language, n in update().items():
            print(f"{language}: {n} message(s) to translate")
    elif command != "check":
        print("usage: scripts/catalogues [update|check]", file=sys.stderr)
        return 2
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

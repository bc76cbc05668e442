"""Languages: message catalogues and locale formats for every sentence Telltale writes.

The catalogues are gettext ``.po`` files under ``scoring/locales/<language>/LC_MESSAGES/
telltale.po``, read with Babel at first use and kept in memory: a fresh clone needs no
build step, and there is no compiled ``.mo`` to fall out of date with its source. Message
ids are the English sentences with ``%(name)s`` placeholders; the English catalogue says
them back as they are (so English is what the code reads), the French one translates them.

A :class:`Translator` is one language with the workspace's currency and time zone: it
looks messages up (``gettext``, ``ngettext`` with the language's plural rule, ``pgettext``
for a word that needs a context) and formats numbers, percents, amounts and dates the way
the locale writes them. A message missing from a catalogue is never dropped silently: it
is said in English and a :class:`MissingMessage` warning is raised (an error in tests).

French elides before a vowel: « de Alice » is written « d'Alice », « que Alice »
« qu'Alice ». The static text of a message is already right, so the translator elides
only where a placeholder's value starts with a vowel (``de %(name)s``).

Pure: Babel and the standard library only.
"""

from __future__ import annotations

import gettext as _gettext
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.messages.pofile import read_po
from babel.numbers import (
    NumberPattern,
    format_decimal,
    format_percent,
    is_currency,
    parse_pattern,
)

LANGUAGES = ("en", "fr")
"""Languages with a complete catalogue; the first is the default."""
DEFAULT_LANGUAGE = "en"
DEFAULT_CURRENCY = "USD"
DEFAULT_TIME_ZONE = "UTC"
DOMAIN = "telltale"
LOCALES_DIR = Path(__file__).with_name("locales")

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
_VOWELS = frozenset("aeiouàâäéèêëîïôöùûüœæAEIOUÀÂÄÉÈÊËÎÏÔÖÙÛÜŒÆ")
# French words that lose their vowel before a vowel; "le"/"la" become "l'".
_ELIDING = re.compile(r"(?<![\w'’])(de|que|le|la|ne|jusque|lorsque|puisque) (%\((\w+)\)[sd])",
                      re.IGNORECASE)


class MissingMessage(UserWarning):
    """A message is not in the catalogue of the language asked for."""


def N_(context: str, msgid: str) -> str:
    """Mark ``msgid`` (in ``context``) for the catalogues without translating it: a table
    of labels keeps the English, which is looked up when shown."""
    return msgid


def placeholders(text: str) -> set[str]:
    """The ``%(name)s`` placeholders of a message."""
    return set(_PLACEHOLDER.findall(text))


def check_language(value: object) -> str | None:
    """Why ``value`` is not a language Telltale speaks (None when it is one)."""
    if value not in LANGUAGES:
        return f"must be one of {list(LANGUAGES)}, got {value!r}"
    return None


def check_currency(value: object) -> str | None:
    """Why ``value`` is not an ISO 4217 currency code such as EUR (None when it is)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value) or not is_currency(
            value):
        return f"must be an ISO 4217 currency code such as EUR, USD or GBP, got {value!r}"
    return None


def check_time_zone(value: object) -> str | None:
    """Why ``value`` is not an IANA time zone such as Europe/Paris (None when it is)."""
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in value:
        return f"must be an IANA time zone such as Europe/Paris or UTC, got {value!r}"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"must be an IANA time zone such as Europe/Paris or UTC, got {value!r}"
    return None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One language's messages: ``(context, msgid)`` → text, or the plural forms."""

    language: str
    messages: Mapping[tuple[str | None, str], str | tuple[str, ...]]
    plural: Callable[[int], int]
    nplurals: int


@cache
def catalogue(language: str) -> Catalogue:
    """The catalogue of ``language``, read from its ``.po`` file once."""
    problem = check_language(language)
    if problem:
        raise ValueError(f"language {problem}")
    path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as fh:
        po = read_po(fh, locale=language, domain=DOMAIN)
    messages: dict[tuple[str | None, str], str | tuple[str, ...]] = {}
    for m in po:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, tuple | list):
            forms = tuple(str(f) for f in (m.string or ()))
            if forms and all(forms):
                messages[(m.context, m.id[0])] = forms
        elif m.string:
            messages[(m.context, m.id)] = str(m.string)
    expr = po.plural_expr
    return Catalogue(language, messages, _gettext.c2py(expr), po.num_plurals)


def _number_text(value: object, locale: str) -> object:
    # Signals are said on every evaluation (their text is kept in state), so the common
    # case stays cheap: a whole number below 1,000 reads the same in every locale here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int) and 0 <= value < 1000:
        return str(value)
    if isinstance(value, float) and 0 <= value < 1000 and value == round(value, 3):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return text.replace(".", ",") if locale == "fr" else text
    return _decimal(value, locale)


@lru_cache(maxsize=4096)
def _decimal(value: float, locale: str) -> str:
    return str(format_decimal(value, locale=locale))


@lru_cache(maxsize=4096)
def _percent(whole: float, locale: str) -> str:
    return str(format_percent(whole / 100, locale=locale))


def _fixed_pattern(pattern: str, digits: int) -> NumberPattern:
    """A locale's number pattern with exactly ``digits`` decimals (a report's column)."""
    fixed = parse_pattern(pattern)
    fixed.frac_prec = (digits, digits)
    return fixed


@dataclass(frozen=True, slots=True)
class Translator:
    """Messages and formats of one language, with a workspace's currency and time zone."""

    language: str = DEFAULT_LANGUAGE
    currency: str = DEFAULT_CURRENCY
    time_zone: str = DEFAULT_TIME_ZONE
    locale: Locale = field(init=False, compare=False, repr=False)
    _catalogue: Catalogue = field(init=False, compare=False, repr=False)
    _locale_id: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "locale", Locale.parse(self.language))
        object.__setattr__(self, "_catalogue", catalogue(self.language))
        # Babel builds a Locale's identifier on every str(): once here, not per sentence.
        object.__setattr__(self, "_locale_id", str(self.locale))

    # ------------------------------------------------------------------ messages

    def _lookup(self, context: str | None, msgid: str) -> str | tuple[str, ...] | None:
        found = self._catalogue.messages.get((context, msgid))
        if found is None:
            where = f"{context}|{msgid}" if context else msgid
            warnings.warn(MissingMessage(f"no {self.language} message for {where!r}"),
                          stacklevel=3)
        return found

    def _format(self, text: str, params: Mapping[str, object]) -> str:
        if not params:
            return text.replace("%%", "%")
        try:
            # The same sentence with the same figures comes back on every evaluation of
            # an account whose signal holds: said once, then remembered.
            return _filled(self.language, self._locale_id, text, tuple(params.items()))
        except TypeError:  # a value that cannot be a key (a list): said each time
            return _fill(self.language, self._locale_id, text, params)

    def gettext(self, msgid: str, **params: object) -> str:
        """``msgid`` in this language, its placeholders filled from ``params``."""
        found = self._lookup(None, msgid)
        return self._format(found if isinstance(found, str) else msgid, params)

    def pgettext(self, context: str, msgid: str, **params: object) -> str:
        """``msgid`` in ``context`` (a word that reads differently elsewhere)."""
        found = self._lookup(context, msgid)
        return self._format(found if isinstance(found, str) else msgid, params)

    def ngettext(self, singular: str, plural: str, n: int, **params: object) -> str:
        """The form for ``n`` (the language's plural rule: French says 0 and 1 in the
        singular); ``n`` fills ``%(count)s``."""
        return self._plural(None, singular, plural, n, params)

    def npgettext(self, context: str, singular: str, plural: str, n: int,
                  **params: object) -> str:
        """:meth:`ngettext` in ``context``."""
        return self._plural(context, singular, plural, n, params)

    def _plural(self, context: str | None, singular: str, plural: str, n: int,
                params: Mapping[str, object]) -> str:
        found = self._lookup(context, singular)
        if isinstance(found, tuple):
            index = self._catalogue.plural(abs(int(n)))
            text = found[min(index, len(found) - 1)]
        else:
            text = singular if n == 1 else plural
        return self._format(text, {"count": n, **params})

    # ------------------------------------------------------------------ formats

    def number(self, value: float) -> str:
        """A number as the locale writes it (1,234.5 / 1 234,5)."""
        return _decimal(value, self._locale_id)

    def percent(self, whole: float, digits: int = 0) -> str:
        """A percentage given in whole percent (20 → "20%" / "20 %"); ``digits``
        decimals when asked for (42.86 → "42.9%" / "42,9 %")."""
        if not digits:
            return _percent(whole, self._locale_id)
        pattern = _fixed_pattern(self.locale.percent_formats[None].pattern, digits)
        return str(pattern.apply(whole / 100, self.locale))

    def fixed(self, value: float, digits: int) -> str:
        """A number with exactly ``digits`` decimals (0.85 / "0,85"), for figures read
        side by side in a report."""
        pattern = _fixed_pattern(self.locale.decimal_formats[None].pattern, digits)
        return str(pattern.apply(value, self.locale))

    def money(self, amount: float, currency: str | None = None) -> str:
        """An amount in the workspace's currency: no cents when it is whole
        ($1,234 / 12 000 €), else the currency's usual digits."""
        code = currency or self.currency
        pattern = parse_pattern(self.locale.currency_formats["standard"].pattern)
        if float(amount).is_integer():
            pattern.frac_prec = (0, 0)
            return str(pattern.apply(amount, self.locale, currency=code,
                                     currency_digits=False))
        return str(pattern.apply(amount, self.locale, currency=code))

    def day(self, epoch_day: int) -> str:
        """An epoch day as a date (see :meth:`on`)."""
        return self.on(date.fromordinal(_EPOCH_ORDINAL + int(epoch_day)))

    def on(self, value: date) -> str:
        """A calendar date: ISO (2024-10-04) in English, which reads the same on both
        sides of the Atlantic; the locale's medium date elsewhere (4 oct. 2024)."""
        if self.language == "en":
            return value.isoformat()
        return self.date(value)

    def date(self, day: date | datetime, style: str = "medium") -> str:
        """A date as the locale writes it (Oct 4, 2024 / 4 oct. 2024); an aware datetime
        is first put on the workspace's clock."""
        from babel.dates import format_date

        if isinstance(day, datetime):
            if day.tzinfo is None:
                day = day.replace(tzinfo=UTC)
            day = day.astimezone(ZoneInfo(self.time_zone)).date()
        return format_date(day, style, locale=self.locale)

    def datetime(self, moment: datetime, style: str = "medium") -> str:
        """A moment on the workspace's clock, as the locale writes it."""
        from babel.dates import format_datetime

        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return format_datetime(moment, style, tzinfo=ZoneInfo(self.time_zone),
                               locale=self.locale)


def _fill(language: str, locale: str, text: str, params: Mapping[str, object]) -> str:
    values = {k: _number_text(v, locale) for k, v in params.items()}
    if language == "fr":
        text = _ELIDING.sub(lambda m: _elide(m, values), text)
    return text % values


@lru_cache(maxsize=8192)
def _filled(language: str, locale: str, text: str,
            items: tuple[tuple[str, object], ...]) -> str:
    return _fill(language, locale, text, dict(items))


def _elide(match: re.Match[str], values: Mapping[str, object]) -> str:
    word, placeholder, name = match.group(1), match.group(2), match.group(3)
    value = str(values.get(name, ""))
    if not value or value[0] not in _VOWELS:
        return match.group(0)
    if word.lower() in ("le", "la"):
        return word[0] + "'" + placeholder
    return word[:-1] + "'" + placeholder


@lru_cache(maxsize=256)
def translator(language: str = DEFAULT_LANGUAGE, currency: str = DEFAULT_CURRENCY,
               time_zone: str = DEFAULT_TIME_ZONE) -> Translator:
    """The (cached) translator of a language, currency and time zone."""
    return Translator(language, currency, time_zone)


Lang = str | Translator
"""A language code or a translator: what every rendering function takes."""


def as_translator(language: Lang) -> Translator:
    return language if isinstance(language, Translator) else translator(language)


def negotiate(accept_language: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The language to answer in, from an ``Accept-Language`` header (``fr-FR,fr;q=0.9,
    en;q=0.8``): the best-weighted language we speak, else ``default``."""
    if not accept_language:
        return default
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(accept_language.split(",")[:32]):
        tag, _, rest = part.strip().partition(";")
        q = 1.0
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES and q > 0 and (best is None or q > best[0]):
            best = (q, i, base)
    return best[2] if best is not None else default

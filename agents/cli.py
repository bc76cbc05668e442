"""The ``telltale`` command.

Each subcommand lives in its own module, imported only when that subcommand runs (so
``telltale dev status`` never imports Faust). A module plugs in with one line in
:data:`COMMANDS` and two functions:

    def add_parser(subparsers) -> argparse.ArgumentParser   # declares its arguments
    def run(args: argparse.Namespace) -> int                # exit code

``add_parser`` may instead ``set_defaults(func=...)``; that function then runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

#: (subcommand, module) pairs; the module provides add_parser(subparsers) and run(args).
COMMANDS: list[tuple[str, str]] = [
    ("worker", "agents.worker"),
    ("dev", "devstack.cli"),
    ("demo", "agents.demo"),
    ("settings", "agents.cli"),
    ("simulate", "history.simulate"),
    ("backtest", "history.backtest"),
    ("calibrate", "history.calibrate"),
    ("metrics", "history.business"),
    ("rebuild-read-model", "agents.notify"),
]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``telltale settings``: every setting with its variable, type, default and meaning."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "settings", help="list every setting: environment variable, type, default, meaning",
        description="List every TELLTALE_* setting; --check validates the environment.",
    )
    parser.add_argument("--check", action="store_true",
                        help="validate the current environment and show effective values")
    parser.add_argument("--markdown", action="store_true",
                        help="print the settings as the Markdown table in README.md")
    return parser


def settings_markdown() -> str:
    """The README's settings table, generated from :class:`Settings` so it cannot drift."""
    from streams.settings import Settings

    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for env, type_name, default, description in Settings.describe():
        cells = (f"`{env}`", type_name, f"`{default}`", description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from streams.settings import Settings, SettingsError

    if args.check:
        from agents.sources.crm_read import CrmReadConfigError, load_readers
        from agents.workspaces import Workspaces, WorkspacesConfigError

        # Effective values can be real credentials: secrets print masked (Settings.shown).
        try:
            settings = Settings.from_env()
            load_readers(settings.sources_config)
            workspaces = Workspaces.from_settings(settings)
        except (SettingsError, CrmReadConfigError, WorkspacesConfigError) as exc:
            print(exc, file=sys.stderr)
            return 2
        for env, value in settings.effective_values():
            print(f"{env}={value}")
        for name in workspaces.workspaces():
            own = workspaces.get(name)
            if own is not None:
                print(f"workspace {name}: scoring version {own.scoring.version}, time zone "
                      f"{own.time_zone}, revision {own.revision[:12]}")
        return 0
    if args.markdown:
        print(settings_markdown())
        return 0
    rows = Settings.describe()
    width = max(len(env) for env, *_ in rows)
    for env, type_name, default, description in rows:
        print(f"{env:<{width}}  {type_name:<12} default {default!s:<28} {description}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("telltale")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def one_line(exc: BaseException) -> str:
    """An error's message on one line: a multi-problem message's problems joined by "; "."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        return "; ".join(str(p) for p in problems)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return lines[0] + " " + "; ".join(lines[1:])
    return "; ".join(lines)


def _import(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


class _Parser(argparse.ArgumentParser):
    """An argument mistake is one line (with where to read more), not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` set, just that subcommand's module is imported."""
    parser = _Parser(
        prog="telltale",
        description="Telltale: streaming customer-health scores, forecasts and alerts.",
    )
    parser.add_argument("--version", action="version", version=f"telltale {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS:
        if only is not None and name != only:
            continue
        module = _import(module_name)
        sub = module.add_parser(subparsers)
        if sub is not None and sub.get_default("func") is None:
            sub.set_defaults(func=module.run)
    for sub in subparsers.choices.values():
        sub.allow_abbrev = False  # "--out" must not quietly mean "--outcomes"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {name for name, _ in COMMANDS}
    only = argv[0] if argv and argv[0] in names else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from devstack.process import DevstackError
    from streams.settings import SettingsError

    try:
        return int(func(args) or 0)
    except (SettingsError, DevstackError) as exc:
        print(f"telltale {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, SettingsError) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A file that cannot be read or a config/outcomes file that does not validate is
        # the user's to fix: say what is wrong in one message, without a traceback.
        from agents.sinks.routing import NotificationConfigError
        from agents.workspaces import WorkspacesConfigError
        from history.importers import OutcomesError
        from scoring.config import ConfigError
        from streams.sources_config import SourcesConfigError

        if not isinstance(exc, OSError | ConfigError | OutcomesError | NotificationConfigError
                          | SourcesConfigError | WorkspacesConfigError):
            raise
        print(f"telltale {args.command}: {one_line(exc)}", file=sys.stderr)
        return 1 if isinstance(exc, OSError) else 2


if __name__ == "__main__":
    sys.exit(main())

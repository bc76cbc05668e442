"""``telltale dev up|down|status``: the local Kafka broker and Redis server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from devstack.stack import LocalStack, export_lines


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dev", help="start, stop or show the local Kafka broker and Redis server",
        description="Local Kafka (KRaft, jars cached from Maven Central) and Redis "
                    "(Debian's redis-server) on free 127.0.0.1 ports. `up` prints the "
                    "export lines that point Telltale at them: "
                    'eval "$(telltale dev up)".',
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="where state and logs live (default $TELLTALE_DEV_DIR or "
                             "~/.cache/telltale/dev)")
    return parser


def run(args: argparse.Namespace) -> int:
    stack = LocalStack(args.run_dir)
    if args.action == "up":
        print("starting Kafka and Redis (the first start downloads the Kafka jars)...",
              file=sys.stderr)
        addresses = stack.up()
        for service in stack.status():
            print(service.line(), file=sys.stderr)
        print("\n".join(export_lines(addresses)))
        return 0
    if args.action == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running",
              file=sys.stderr)
        return 0
    services = stack.status()
    if not services:
        print("down: no local services (start them with `telltale dev up`)")
        return 3
    for service in services:
        print(service.line())
    return 0 if all(s.up for s in services) else 3

"""The ``fedkd`` command: a thin layer over the Python API.

Each sub-command lives in ``fedkd/commands/<name>.py`` with a ``register(subparsers)`` function, so
start-up imports only argparse; torch, pandas and Flower load when a command actually runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fedkd.errors import FedkdError

COMMANDS = ("run", "list", "plot", "teacher", "aggregate", "prior", "gan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedkd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"fedkd.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FedkdError as err:
        print(f"fedkd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fedkd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

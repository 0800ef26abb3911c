"""The ``fedkd`` command: a thin layer over the Python API.

Each sub-command lives in ``fedkd/commands/<name>.py`` with a ``register(subparsers)`` function, so
start-up imports only argparse; torch, pandas and Flower load when a command actually runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from fedkd.errors import FedkdError
from fedkd.stopping import RunInterrupted

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
    except RunInterrupted as err:
        print(f"fedkd {args.command}: {err}", file=sys.stderr)
        return _leave_after_interruption(err.exit_code)
    except KeyboardInterrupt:
        print(f"fedkd {args.command}: interrupted", file=sys.stderr)
        return _leave_after_interruption(130)


def _leave_after_interruption(code: int) -> NoReturn:
    """Exit with ``code`` now, without the interpreter's shutdown.

    An interrupted run's directory is final (it refuses writes once a stop is requested), but the shutdown
    would wait for threads the run left behind (Flower's server thread, thread pools) and run Ray's exit
    hooks, which abort the process after a SIGTERM; neither has anything left to save.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

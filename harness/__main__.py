"""Command line of the harness: `python -m harness SUBCOMMAND ...`; each subcommand lives in its own module.

To add one (report, bisect, ...): write harness/cli/<name>.py with
`register(subparsers)` that adds its parser and sets `func`, and list it in
SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "kernels": "harness.cli.kernels",
    "report": "harness.cli.report",
    "bisect": "harness.cli.bisect",
    "vm": "harness.cli.vm",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `emosplat` command (also `python -m emo_backend`).

Errors a user can fix (`EmoSplatError`) print one clear line and exit 2. Any
other exception is a bug: it prints one line saying so and exits 1. A
traceback appears only with `--debug`. Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from emo_backend.errors import EmoSplatError

# name -> module in emo_backend.commands. Kept as strings so `--help` stays fast.
COMMANDS: dict[str, str] = {
    "preview": "emo_backend.commands.preview",
    "bench": "emo_backend.commands.bench",
    "dataset": "emo_backend.commands.dataset",
    "synth": "emo_backend.commands.synth",
    "train": "emo_backend.commands.train",
    "eval": "emo_backend.commands.eval",
    "render": "emo_backend.commands.render",
    "serve": "emo_backend.commands.serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emosplat",
        description="EmoSplat: emotional talking-head Gaussian avatars. Each subcommand explains itself with --help.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except EmoSplatError as err:
        if args.debug:
            raise
        print(f"emosplat {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emosplat {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: say so without burying the user in a traceback
        if args.debug:
            raise
        print(f"emosplat {args.command}: internal error: {type(err).__name__}: {err} "
              "(rerun with --debug for the traceback and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""`emosplat serve`: the backend the Blender add-on starts and talks to."""

from __future__ import annotations

import argparse

HELP = "run the backend for the Blender add-on (started by the add-on; reads its auth key on stdin)"
DESCRIPTION = (
    "Run the IPC backend the Blender add-on talks to. The add-on starts it, writes a random auth key as one hex "
    "line on stdin and reads the chosen port from the first stdout line. The server ends when stdin closes, "
    "so it never outlives Blender. Protocol: emo_backend/protocol.py."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: everything arrives through the protocol


def run(args: argparse.Namespace) -> int:
    from emo_backend.server import serve

    return serve()

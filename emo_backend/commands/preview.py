"""`emosplat preview`: render an avatar through the rig test to an MP4."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render an avatar through a rig test (head turn, jaw, blink, every expression) to an MP4"
DESCRIPTION = (
    "Render the avatar through a rig test to an MP4: a slow head turn, the jaw opening and closing, a blink, and "
    "each expression basis in turn, labelled. Use it to check an avatar before a shot."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--avatar", default="default", help="avatar bundle folder or .emosplat file (default: the bundled one)")
    parser.add_argument("--out", default="preview.mp4", help="output MP4 path (default: %(default)s)")
    parser.add_argument("--size", type=int, default=512, help="frame width and height in pixels (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=25.0, help="frames per second (default: %(default)s)")
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "gsplat", "torch"], help="splat renderer")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    from emo_backend.errors import EmoSplatError
    from emo_backend.preview_render import render_rig_test

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise EmoSplatError(f"{out} exists; pass --overwrite to replace it or choose another --out")
    if args.size < 16 or args.size % 2:
        raise EmoSplatError(f"--size must be an even number of pixels >= 16, got {args.size}")
    info = render_rig_test(args.avatar, out, size=args.size, fps=args.fps, backend=args.backend)
    print(f"wrote {out.resolve()} ({info['frames']} frames, {info['seconds']:.1f} s at {args.fps:g} fps, "
          f"{info['ms_per_frame']:.0f} ms/frame with the {info['backend']} renderer)")
    return 0

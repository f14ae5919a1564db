"""`emosplat render --shot spec.json`: render a shot (frames: RGBA PNG + depth EXR) without Blender."""

from __future__ import annotations

import argparse
import sys

HELP = "render a shot spec (written by the Blender add-on or by hand) to RGBA PNG + depth EXR frames"
DESCRIPTION = (
    "Render a shot described by a JSON spec (docs/shot-spec.md): one straight-alpha RGBA PNG and one float32 "
    "depth EXR per frame. Frames already rendered from the same inputs are skipped, so a rerun continues."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shot", required=True, metavar="SPEC.json", help="the shot spec")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the spec's output.folder)")
    parser.add_argument("--avatar", help="avatar bundle (default: the spec's avatar, usually 'default')")
    parser.add_argument("--backend", choices=["auto", "cpu", "gsplat", "torch"], help="override the spec's backend")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the spec's device")
    parser.add_argument("--frames", metavar="A-B", help="render only these frames, e.g. 10-20 or 12")


def _frame_subset(text: str | None, spec) -> list[int] | None:
    from emo_backend.errors import EmoSplatError

    if not text:
        return None
    try:
        a, _, b = text.partition("-")
        first, last = int(a), int(b or a)
    except ValueError:
        raise EmoSplatError(f"--frames {text!r}: expected A-B or A, e.g. 10-20") from None
    if first > last or first < spec.frame_start or last > spec.frame_end:
        raise EmoSplatError(f"--frames {text}: must lie within the shot's {spec.frame_start}-{spec.frame_end}")
    return list(range(first, last + 1))


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from tqdm import tqdm

    from emo_backend.shot import load_shot_spec, render_shot

    spec = load_shot_spec(args.shot)
    overrides = {}
    if args.out:
        overrides["output_dir"] = Path(args.out)
    if args.avatar:
        overrides["avatar"] = args.avatar
    if args.backend:
        overrides["backend"] = args.backend
    if args.device:
        overrides["device"] = args.device
    spec = dataclasses.replace(spec, **overrides)
    frames = _frame_subset(args.frames, spec)
    total = len(frames) if frames else spec.num_frames
    with tqdm(total=total, unit="frame", file=sys.stderr) as bar:
        def progress(done: int, total: int, frame: int) -> None:
            bar.n = done
            bar.refresh()

        result = render_shot(spec, progress=progress, only_frames=frames)
    print(f"wrote {len(result.rendered)} frames ({len(result.skipped)} already done) to {spec.output_dir.resolve()} "
          f"as {spec.stem}_####.{spec.format} + {spec.stem}_depth_####.exr with the {result.backend} renderer "
          f"in {result.seconds:.1f} s")
    return 0

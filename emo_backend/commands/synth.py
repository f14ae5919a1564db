"""`emosplat synth`: build the synthetic actor's tracked dataset (docs/synthetic-actor.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "generate a MEAD-like tracked dataset from the open head model, with exact ground truth"
DESCRIPTION = (
    "Generate a MEAD-like corpus of talking clips from the project's open head model: the actor speaks the\n"
    "planned sentences (espeak-ng) in eight emotions at three intensities, with phoneme-driven mouth motion,\n"
    "blinks, head and eye motion, and emotion wrinkles, flush and corrective shapes that a linear blendshape\n"
    "model cannot express (those are in the frames, not in the tracking). Every clip is written in the\n"
    "dataset format (docs/dataset-format.md): RGB frames + masks over a plain grey background, the audio and\n"
    "the exact tracking (expression, pose, translation, identity, K, viewmat, landmarks, blinks).\n\n"
    "  emosplat synth --out data/synth              whole corpus at 256x256 (~150 clips, ~10k frames)\n"
    "  emosplat synth --out /tmp/tiny --small       2 clips of 1 s at 64x64, for a quick look or tests\n\n"
    "Re-running on the same --out continues where it stopped (finished clips are kept). Needs espeak-ng\n"
    "(`sudo apt-get install espeak-ng`)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="dataset folder to create, or to continue filling (resume)")
    parser.add_argument("--size", type=int, default=None,
                        help="frame width and height in pixels (default 256; 64 with --small)")
    parser.add_argument("--small", action="store_true",
                        help="tiny corpus: one identity, a neutral and a happy clip, 1 s each")
    parser.add_argument("--identities", type=int, default=2, metavar="N",
                        help="number of synthetic identities, 1-4 (default 2: a main actor and a second one)")
    parser.add_argument("--workers", type=int, default=2, help="parallel render processes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed: sentences, motion, blinks (default 0)")
    parser.add_argument("--supersample", type=int, default=2,
                        help="anti-aliasing: render at this multiple of the size and filter down (default 2)")
    parser.add_argument("--camera-jitter", type=float, default=0.0, metavar="DEG",
                        help="random per-clip camera yaw/pitch offsets up to DEG degrees (default 0: fixed front camera)")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="cut every clip to at most S seconds (default: whole sentences; 1 with --small)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from emo_backend.data.build_corpus import SynthOptions, build_corpus

    size = args.size if args.size is not None else (64 if args.small else 256)
    options = SynthOptions(
        out=args.out, size=size, small=args.small, identities=args.identities, workers=args.workers,
        seed=args.seed, supersample=args.supersample, camera_jitter_deg=args.camera_jitter,
        max_seconds=args.max_seconds,
    )
    report = build_corpus(options, progress=not args.no_progress)
    rate = report.frames / report.seconds if report.seconds > 0 else 0.0
    print(f"{args.out}: {report.built} clips built ({report.frames} frames, {report.seconds:.0f} s, "
          f"{rate:.1f} frames/s), {report.skipped} already there, {report.planned} planned")
    return 0

"""`emosplat dataset`: import tracked clips into the EmoSplat dataset format, or check a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from emo_backend.errors import EmoSplatError

HELP = "import metrical-tracker / VHAP / MEAD data into a dataset folder, or check one"
DESCRIPTION = (
    "Datasets of tracked clips (docs/dataset-format.md).\n\n"
    "  emosplat dataset import --from metrical TRACKER_OUTPUT/ACTOR --out DIR\n"
    "  emosplat dataset import --from vhap EXPORT_FOLDER --out DIR\n"
    "  emosplat dataset import --from mead MEAD/M003 --out DIR      (clips await tracking)\n"
    "  emosplat dataset check DIR"
)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 512x512, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    imp = sub.add_parser("import", help="convert tracker output or MEAD videos into a dataset folder")
    imp.add_argument("--from", dest="source_format", required=True, choices=("metrical", "vhap", "mead"),
                     help="layout of SRC")
    imp.add_argument("src", type=Path, metavar="SRC", help="tracker output / export / MEAD folder")
    imp.add_argument("--out", type=Path, required=True, help="dataset folder to create (or extend with --append)")
    imp.add_argument("--append", action="store_true", help="add to an existing dataset instead of refusing")
    imp.add_argument("--identity", help="identity name (default: SRC's folder name; MEAD: the actor)")
    imp.add_argument("--emotion", default="neutral", help="emotion label of the clip (metrical, vhap)")
    imp.add_argument("--intensity", type=float, default=0.0, help="intensity in [0, 1] (metrical, vhap)")
    imp.add_argument("--audio", type=Path, help="speech of the clip (wav/m4a/mp4; metrical, vhap)")
    imp.add_argument("--fps", type=float, default=25.0, help="frame rate of the tracked frames (metrical, vhap)")
    imp.add_argument("--head-model", help="head model id (default: flame2020 for metrical, flame2023 for vhap/mead)")
    imp.add_argument("--split", choices=("train", "test"), default="train", help="split of the clip (metrical)")
    imp.add_argument("--images", type=Path, help="folder of the tracked images (metrical; default SRC/input)")
    imp.add_argument("--view", action="append", help="MEAD camera view(s) to import (default: front)")
    imp.add_argument("--resize", type=_size, help="MEAD: resize frames to WIDTHxHEIGHT")
    imp.add_argument("--limit", type=int, help="MEAD: import at most this many clips")

    chk = sub.add_parser("check", help="validate a dataset folder and list every problem")
    chk.add_argument("dir", type=Path, metavar="DIR")
    chk.add_argument("--quick", action="store_true", help="skip opening every frame image")


def run(args: argparse.Namespace) -> int:
    if args.dataset_command == "check":
        return _check(args)
    return _import(args)


def _check(args) -> int:
    from emo_backend.data.dataset import check_dataset

    report = check_dataset(args.dir, check_images=not args.quick)
    print(f"{args.dir}: {report.clips} clips, {report.frames} frames, {report.tracked_clips} tracked")
    if report.awaiting_tracking:
        print(f"{len(report.awaiting_tracking)} clip(s) await tracking (needed for training): "
              + ", ".join(report.awaiting_tracking[:10]) + (" ..." if len(report.awaiting_tracking) > 10 else ""))
    for problem in report.problems:
        print(f"problem: {problem}")
    if not report.ok:
        raise EmoSplatError(f"{len(report.problems)} problem(s) found in {args.dir}; see above")
    print("ok")
    return 0


def _import(args) -> int:
    from emo_backend.data.dataset import DatasetWriter

    if not args.src.exists():
        raise EmoSplatError(f"{args.src}: not found")
    from emo_backend.emotion.space import EMOTIONS

    if args.emotion not in EMOTIONS:
        raise EmoSplatError(f"--emotion {args.emotion!r} is not one of {', '.join(EMOTIONS)}")
    if not 0.0 <= args.intensity <= 1.0:
        raise EmoSplatError(f"--intensity must be in [0, 1], got {args.intensity}")

    def writer(head_model: str, names, fps: float) -> DatasetWriter:
        return DatasetWriter(args.out, head_model=args.head_model or head_model, expression_names=names, fps=fps,
                             append=args.append, description=f"imported from {args.source_format}: {args.src}")

    try:
        if args.source_format == "metrical":
            from emo_backend.data.importers.metrical import import_metrical, metrical_expression_names

            with writer("flame2020", metrical_expression_names(args.src), args.fps) as w:
                clips = [import_metrical(args.src, w, identity=args.identity, emotion=args.emotion,
                                         intensity=args.intensity, images=args.images, audio=args.audio,
                                         split=args.split)]
        elif args.source_format == "vhap":
            from emo_backend.data.importers.vhap import import_vhap, vhap_expression_count

            names = [f"exp{i:03d}" for i in range(vhap_expression_count(args.src))]
            with writer("flame2023", names, args.fps) as w:
                clips = import_vhap(args.src, w, identity=args.identity, emotion=args.emotion,
                                    intensity=args.intensity, audio=args.audio)
        else:
            from emo_backend.data.importers.mead import find_mead_clips, import_mead, mead_fps

            views = tuple(args.view or ("front",))
            found = find_mead_clips(args.src, views)
            # MEAD has no tracking yet: expression names stay those of the head model the tracker will use.
            names = [f"exp{i:03d}" for i in range(100)]
            with writer("flame2023", names, mead_fps(found)) as w:
                clips = import_mead(args.src, w, views=views, size=args.resize, limit=args.limit, clips=found)
    except ValueError as err:  # writer-side validation of a clip (emotion, intensity, sizes)
        raise EmoSplatError(f"import failed: {err}") from None
    frames = sum(c.num_frames for c in clips)
    print(f"imported {len(clips)} clip(s), {frames} frames into {args.out}")
    awaiting = [c.id for c in clips if c.tracking != "tracked"]
    if awaiting:
        print(f"{len(awaiting)} clip(s) await tracking: run a face tracker on their frames before training")
    return 0

"""`emosplat render`: render a shot (RGBA PNG + depth EXR per frame, optionally an MP4) without Blender."""

from __future__ import annotations

import argparse
import sys

HELP = "render a shot: a spec file (--shot, as the Blender add-on writes it) or --audio/--emotion with a front camera"
DESCRIPTION = (
    "Render the avatar for a shot: one straight-alpha RGBA PNG and one float32 depth EXR per frame "
    "(docs/shot-spec.md), and with --video an MP4 with the audio. Either give a shot spec (--shot), or describe "
    "a portrait shot with --audio and --emotion (an emotion string like 'happy:0.7@0.8' or an emotion-curves "
    "JSON file, docs/emotion-curves.md). With audio and the bundled A2ET the lips follow the speech and the face "
    "the emotion (spec 'motion', docs/shot-spec.md). Frames already rendered from the same inputs are skipped, so "
    "a rerun continues. --out FILE.mp4 renders the frames beside it (FILE_frames/) and writes the video."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shot", metavar="SPEC.json", help="a shot spec (as the Blender add-on writes it)")
    parser.add_argument("--audio", metavar="FILE", help="speech clip (without --shot: sets the shot's length)")
    parser.add_argument("--emotion", metavar="EMOTION", default=None,
                        help="without --shot: 'happy', 'happy:0.7@0.8', ... or an emotion-curves .json (default neutral)")
    parser.add_argument("--out", metavar="DIR|FILE.mp4",
                        help="output folder, or an .mp4 (frames go to FILE_frames/ beside it); "
                             "required without --shot (default: the spec's folder)")
    parser.add_argument("--avatar", help="avatar bundle (default: the spec's avatar, or 'default')")
    parser.add_argument("--size", type=int, default=512, help="without --shot: frame width and height (default 512)")
    parser.add_argument("--fps", type=float, default=25.0, help="without --shot: frames per second (default 25)")
    parser.add_argument("--seconds", type=float, help="without --shot: length (default: the audio's, else 4 s)")
    parser.add_argument("--backend", choices=["auto", "cpu", "gsplat", "torch"], help="splat renderer")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device")
    parser.add_argument("--frames", metavar="A-B", help="render only these frames, e.g. 10-20 or 12")
    parser.add_argument("--video", metavar="FILE.mp4", help="also write the frames (over grey) with the audio as MP4")


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


def _split_out(args: argparse.Namespace) -> None:
    """--out shot.mp4 means: frames in shot_frames/, the video at shot.mp4."""
    from pathlib import Path

    from emo_backend.errors import EmoSplatError

    if args.out and args.out.lower().endswith(".mp4"):
        if args.video and Path(args.video) != Path(args.out):
            raise EmoSplatError("--out is an .mp4 and --video names another; give one video path")
        out = Path(args.out)
        args.video = str(out)
        args.out = str(out.with_name(out.stem + "_frames"))


def _spec(args: argparse.Namespace):
    import dataclasses
    from pathlib import Path

    from emo_backend.errors import EmoSplatError
    from emo_backend.shot import load_shot_spec, spec_from_options

    if args.shot:
        if args.emotion or args.audio:
            raise EmoSplatError("--emotion and --audio describe a shot without a spec; with --shot, edit the spec")
        spec = load_shot_spec(args.shot)
        overrides = {"output_dir": Path(args.out)} if args.out else {}
        for name in ("avatar", "backend", "device"):
            if getattr(args, name):
                overrides[name] = getattr(args, name)
        return dataclasses.replace(spec, **overrides)
    if not args.out:
        raise EmoSplatError("give --shot SPEC.json, or --out DIR with --audio and/or --emotion")
    if args.size < 16 or args.size > 8192:
        raise EmoSplatError(f"--size must be 16..8192 pixels, got {args.size}")
    return spec_from_options(args.out, audio=args.audio, emotion=args.emotion or "neutral",
                             avatar=args.avatar or "default", size=args.size, fps=args.fps, seconds=args.seconds,
                             backend=args.backend or "auto", device=args.device or "auto")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emo_backend.shot import render_shot, write_video

    _split_out(args)
    spec = _spec(args)
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
    if args.video:
        if frames:
            from emo_backend.errors import EmoSplatError

            raise EmoSplatError("--video needs the whole shot; leave out --frames")
        path = write_video(spec, args.video)
        print(f"wrote {path.resolve()}")
    return 0

"""`emosplat eval`: measure an avatar against a dataset split (PSNR, SSIM, LPIPS, landmarks) into a JSON report."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "measure an avatar (PSNR, SSIM, LPIPS, landmarks) or an A2ET (lip sync, emotion) against a dataset"
DESCRIPTION = (
    "Render the avatar for every frame of a dataset split (the test split when there is one) and compare with "
    "the frames: PSNR, SSIM, L1, LPIPS when its weights are given by path, and with --motion (predicted "
    "expression/pose per clip) landmark distance and velocity errors of mouth and face in pixels. Writes a JSON "
    "report and optionally a side-by-side video: ground truth | render | error heat map. "
    "With --a2et instead of --avatar: the motion model on the split's clips: mouth and face landmark distance "
    "against the tracking (pixels), expression error per emotion, and whether intensity acts monotonically."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--avatar", help="avatar bundle folder or .emosplat file ('default' works)")
    target.add_argument("--a2et", help="an A2ET weights folder (e.g. assets/models/a2et) to evaluate instead")
    parser.add_argument("--data", required=True, help="dataset folder (with dataset.json)")
    parser.add_argument("--out", required=True, help="report JSON path")
    parser.add_argument("--video", default=None, help="also write a side-by-side MP4 here")
    parser.add_argument("--split", default=None, choices=["train", "test"], help="default: test if it has clips")
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "torch", "gsplat"], help="splat renderer")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per clip")
    parser.add_argument("--motion", default=None,
                        help="predicted motion: a folder of <clip>.npz (expression [F,E], pose [F,5,3]) or one .npz")
    parser.add_argument("--lpips-backbone", default=None, help="VGG-16 weights (torchvision layout) for LPIPS")
    parser.add_argument("--lpips-heads", default=None, help="LPIPS linear heads (the lpips package's vgg.pth)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out / --video if they exist")


def run(args: argparse.Namespace) -> int:
    from emo_backend.errors import EmoSplatError
    from emo_backend.eval.run import evaluate_avatar

    for path in filter(None, (args.out, args.video)):
        if Path(path).exists() and not args.overwrite:
            raise EmoSplatError(f"{path} exists; pass --overwrite to replace it or choose another path")
    if args.a2et is not None:
        return _run_a2et(args)
    if args.video is not None and not args.video.lower().endswith(".mp4"):
        raise EmoSplatError(f"--video {args.video}: the side-by-side video is an MP4; give a path ending in .mp4")
    report = evaluate_avatar(args.avatar, args.data, args.out, video=args.video, split=args.split,
                             backend=args.backend, max_frames=args.max_frames, motion=args.motion,
                             lpips_backbone=args.lpips_backbone, lpips_heads=args.lpips_heads)
    s = report["summary"]
    lp = s["lpips"] if isinstance(s["lpips"], str) else f"{s['lpips']:.4f}"
    print(f"{report['frames']} frames of split {report['split']!r}: PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.4f}, "
          f"LPIPS {lp}")
    if "lmd_mouth" in s:
        print(f"landmarks: LMD face {s['lmd_face']:.2f} px, mouth {s['lmd_mouth']:.2f} px")
    print(f"report: {Path(args.out).resolve()}" + (f"   video: {Path(args.video).resolve()}" if args.video else ""))
    return 0


def _run_a2et(args: argparse.Namespace) -> int:
    import json

    from emo_backend.eval.a2et import evaluate_a2et_folder
    from emo_backend.files.atomic import write_text_atomic

    report = evaluate_a2et_folder(args.a2et, args.data, split=args.split or "test")
    write_text_atomic(args.out, json.dumps(report, indent=2))
    lm = report["landmarks_px"]
    print(f"A2ET on {report['clips']} {report['split']} clips at {report['resolution'][0]}x{report['resolution'][1]}: "
          f"mouth LMD {lm['lmd_mouth']:.2f} px, face LMD {lm['lmd_face']:.2f} px; "
          f"intensity monotonic: {report['intensity_monotonic']}")
    print(f"report: {Path(args.out).resolve()}")
    return 0

"""`emosplat train`: stage 1 (Gaussian blendshapes from a tracked dataset); A2ET and stage 2 are not in yet."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train an avatar: stage1 (Gaussian blendshapes), a2et, stage2"
DESCRIPTION = (
    "Train the models of an EmoSplat avatar from a tracked-clip dataset. 'stage1' fits the Gaussian blendshapes "
    "(neutral Gaussians + one delta per expression basis, bound to the head mesh) to the dataset's frames; it "
    "checkpoints every --checkpoint-every iterations and continues an interrupted run with --resume. "
    "'a2et' and 'stage2' are not available yet."
)
STAGES = ("stage1", "a2et", "stage2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES, help="what to train")
    parser.add_argument("--data", required=True, help="dataset folder (with dataset.json)")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, the trained avatar/, metrics.json")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (stage1 default: 40000)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "gsplat"],
                        help="differentiable renderer: torch (CPU), gsplat (CUDA); auto picks gsplat when CUDA works")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0); same seed, same result")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--init-avatar", default=None,
                        help="starting avatar bundle (default: a new one on the dataset's head, for the open head)")
    parser.add_argument("--gaussians", type=int, default=None, help="initial Gaussian count for a new avatar")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="iterations between checkpoints (1000)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from emo_backend.errors import EmoSplatError

    if args.stage != "stage1":
        raise EmoSplatError(f"'emosplat train {args.stage}' is not available yet; train 'stage1' for now")
    if args.iterations is not None and args.iterations < 1:
        raise EmoSplatError(f"--iterations must be at least 1, got {args.iterations}")
    if not (Path(args.data) / "dataset.json").is_file():
        raise EmoSplatError(f"--data {args.data}: no dataset.json there; point --data at a dataset folder")
    from emo_backend.train.stage1 import Stage1Config, train_stage1

    cfg = Stage1Config(progress=not args.no_progress)
    if args.gaussians is not None:
        cfg = replace(cfg, num_gaussians=args.gaussians)
    if args.checkpoint_every is not None:
        cfg = replace(cfg, checkpoint_every=max(1, args.checkpoint_every))
    metrics = train_stage1(args.data, args.out, iterations=args.iterations, backend=args.backend, seed=args.seed,
                           resume=args.resume, config=cfg, init_avatar=args.init_avatar)
    train = metrics["train"]
    print(f"stage 1 done: {metrics['iterations']} iterations, {metrics['gaussians']} Gaussians, "
          f"train PSNR {train['psnr']:.2f} dB, SSIM {train['ssim']:.3f} ({metrics['seconds']:.0f} s, "
          f"{metrics['backend']})")
    print(f"avatar: {(Path(args.out) / 'avatar').resolve()}   metrics: {(Path(args.out) / 'metrics.json').resolve()}")
    return 0

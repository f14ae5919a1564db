"""`emosplat train`: stage 1 (Gaussian blendshapes), A2ET (audio -> motion) and stage 2 (emotional residual)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train an avatar: stage1 (Gaussian blendshapes), a2et, stage2"
DESCRIPTION = (
    "Train the models of an EmoSplat avatar from a tracked-clip dataset. 'stage1' fits the Gaussian blendshapes "
    "(neutral Gaussians + one delta per expression basis, bound to the head mesh) to the dataset's frames; it "
    "checkpoints every --checkpoint-every iterations and continues an interrupted run with --resume. "
    "'a2et' learns audio + emotion -> expression and jaw/neck pose from the clips' audio and tracking. "
    "'stage2' learns the emotional residual per Gaussian on top of a stage-1 avatar (--avatar) and an A2ET (--a2et)."
)
STAGES = ("stage1", "a2et", "stage2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES, help="what to train")
    parser.add_argument("--data", required=True, help="dataset folder (with dataset.json)")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, the trained avatar/, metrics.json")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (stage1 default: 40000)")
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "torch", "gsplat"],
                        help="differentiable renderer: numba or torch (CPU; numba is several times faster), gsplat "
                             "(CUDA); auto picks gsplat when CUDA works, else numba")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0); same seed, same result")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--init-avatar", default=None,
                        help="starting avatar bundle (default: a new one on the dataset's head, for the open head)")
    parser.add_argument("--gaussians", type=int, default=None, help="initial Gaussian count for a new avatar")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="iterations between checkpoints (1000)")
    parser.add_argument("--identity", default=None, help="only this identity's clips (a dataset may hold several people)")
    parser.add_argument("--emotions", default=None,
                        help="only clips with these labels, comma-separated (e.g. stage1: neutral, as GaussianEmoTalker)")
    parser.add_argument("--avatar", default=None, help="stage2: the stage-1 avatar bundle to build on")
    parser.add_argument("--a2et", default=None, help="stage2: the A2ET weights folder (gives the neutral motion)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from emo_backend.errors import EmoSplatError

    if args.iterations is not None and args.iterations < 1:
        raise EmoSplatError(f"--iterations must be at least 1, got {args.iterations}")
    if not (Path(args.data) / "dataset.json").is_file():
        raise EmoSplatError(f"--data {args.data}: no dataset.json there; point --data at a dataset folder")
    if args.stage == "a2et":
        return _train_a2et(args)
    if args.stage == "stage2":
        return _train_stage2(args)
    from emo_backend.train.stage1 import Stage1Config, train_stage1

    cfg = Stage1Config(progress=not args.no_progress)
    if args.gaussians is not None:
        cfg = replace(cfg, num_gaussians=args.gaussians)
    cfg = replace(cfg, identity=args.identity, emotions=_emotions(args))
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


def _train_a2et(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from emo_backend.train.a2et import A2ETTraining, train_a2et

    cfg = A2ETTraining()
    if args.iterations is not None:
        cfg = replace(cfg, iterations=args.iterations)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    info = train_a2et(args.data, args.out, cfg, progress=not args.no_progress)
    print(f"A2ET done: {info['iterations']} iterations on {info['train_clips']} clips, final loss {info['final_loss']:.4f}")
    print(f"weights: {Path(args.out).resolve()}")
    return 0


def _train_stage2(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from emo_backend.avatar.bundle import load_avatar, resolve_avatar_path
    from emo_backend.errors import EmoSplatError
    from emo_backend.train.a2et import load_a2et
    from emo_backend.train.stage2 import Stage2Config, train_stage2

    if not args.avatar or not args.a2et:
        raise EmoSplatError("stage2 needs --avatar (the stage-1 bundle) and --a2et (the A2ET weights folder)")
    backend = "numba" if args.backend == "auto" else args.backend  # numba: the differentiable CPU renderer
    cfg = Stage2Config(identity=args.identity, emotions=_emotions(args))
    if args.iterations is not None:
        cfg = replace(cfg, iterations=args.iterations)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    avatar = load_avatar(resolve_avatar_path(args.avatar))
    a2et, _ = load_a2et(args.a2et)
    report = train_stage2(args.data, avatar, a2et, args.out, cfg, backend=backend, progress=not args.no_progress)
    o = report["overall"]
    print(f"stage 2 done: test PSNR {o['stage1_psnr']:.2f} -> {o['stage2_psnr']:.2f} dB, "
          f"SSIM {o['stage1_ssim']:.3f} -> {o['stage2_ssim']:.3f} (without -> with stage 2)")
    print(f"weights and metrics: {Path(args.out).resolve()}")
    return 0


def _emotions(args: argparse.Namespace) -> tuple[str, ...] | None:
    from emo_backend.emotion.space import EMOTIONS
    from emo_backend.errors import EmoSplatError

    if not args.emotions:
        return None
    names = tuple(e.strip() for e in args.emotions.split(",") if e.strip())
    unknown = [e for e in names if e not in EMOTIONS]
    if unknown:
        raise EmoSplatError(f"--emotions: unknown {', '.join(unknown)}; use names from {', '.join(EMOTIONS)}")
    return names

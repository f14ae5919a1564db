"""Train the default avatar as shipped in assets/: stage 1 and stage 2 on the synthetic actor's identity A.

    .venv/bin/emosplat synth --out DATA                       # the corpus (about 12 min at 256² on 2 cores)
    .venv/bin/python scripts/train_default_avatar.py --data DATA --work RUNS [--stage1-iterations N] [--install]

Stage 1 (Gaussian blendshapes) on all of the actor's training clips, A2ET on
all training clips (`emosplat train a2et`; the bundled one is in
assets/models/a2et), stage 2 (EGD) on the same clips with stage 1 and A2ET
frozen. GaussianEmoTalker fits stage 1 on neutral clips only; on this data
that leaves the bases neutral speech never moves (AU6, AU12, brows) to drift
under Adam, and a smile then tears the face apart, so stage 1 sees the
emotional clips too (`--stage1-emotions neutral` restores the paper's split). The starting avatar is the open head with identity A's shape
and appearance (the actor's head seed and identity coefficients). With
--install the result replaces assets/avatars/default (stage 2 inside it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def identity_of(dataset, name: str) -> tuple[int, torch.Tensor]:
    """(appearance seed, identity coefficients) of one synthetic identity, from the corpus itself."""
    from emo_backend.data.synth import DEFAULT_IDENTITIES

    seed = next(i.seed for i in DEFAULT_IDENTITIES if i.name == name)
    clip = next(c for c in dataset.clip_ids("train") if dataset.clip(c).identity == name)
    return seed, torch.from_numpy(np.asarray(dataset.load_tracking(clip).identity, dtype=np.float32))


def main() -> int:
    from emo_backend.avatar.bundle import load_avatar, save_avatar
    from emo_backend.avatar.init import init_avatar_from_head
    from emo_backend.data.dataset import load_dataset
    from emo_backend.head.open_head.build import build_open_head
    from emo_backend.motion.models import STAGE2_SUBDIR, find_default_a2et
    from emo_backend.train.a2et import load_a2et
    from emo_backend.train.stage1 import Stage1Config, train_stage1
    from emo_backend.train.stage2 import Stage2Config, train_stage2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--identity", default="synth_a")
    parser.add_argument("--gaussians", type=int, default=36_000)
    parser.add_argument("--stage1-iterations", type=int, default=3000)
    parser.add_argument("--stage2-iterations", type=int, default=1500)
    parser.add_argument("--egd-dim", type=int, default=Stage2Config.dim, help="EGD width (token and query size)")
    parser.add_argument("--egd-layers", type=int, default=Stage2Config.num_layers, help="EGD cross-attention layers")
    parser.add_argument("--stage1-emotions", default=None, help="comma-separated labels for stage 1 (default: all)")
    parser.add_argument("--skip-stage1", action="store_true", help="reuse WORK/stage1")
    parser.add_argument("--install", action="store_true", help="replace assets/avatars/default with the result")
    args = parser.parse_args()

    dataset = load_dataset(args.data)
    seed, identity = identity_of(dataset, args.identity)
    stage1_dir = args.work / "stage1"
    started = time.time()
    if not args.skip_stage1:
        head = build_open_head(seed=seed)
        init = init_avatar_from_head(head, args.gaussians, identity=identity, seed=0)
        n = args.stage1_iterations
        emotions = tuple(args.stage1_emotions.split(",")) if args.stage1_emotions else None
        cfg = Stage1Config(iterations=n, backend="auto", identity=args.identity, emotions=emotions,
                           position_lr_max_steps=n, densify_until=int(0.7 * n), max_screen_radius=None,
                           checkpoint_every=max(100, n // 5), eval_frames=32)
        metrics = train_stage1(args.data, stage1_dir, config=cfg, init_avatar=init, resume=(stage1_dir / "checkpoints").exists())
        print("stage 1:", json.dumps({k: metrics[k] for k in ("train", "test") if k in metrics}))
    avatar = load_avatar(stage1_dir / "avatar")
    a2et, _ = load_a2et(find_default_a2et())
    emotional = tuple(e for e in ("angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised"))
    cfg2 = Stage2Config(iterations=args.stage2_iterations, identity=args.identity, emotions=emotional + ("neutral",),
                        dim=args.egd_dim, num_layers=args.egd_layers)
    report = train_stage2(args.data, avatar, a2et, args.work / "stage2", cfg2, backend="numba")
    print("stage 2 ablation:", json.dumps(report["overall"]))
    print(f"total {time.time() - started:.0f} s")
    if args.install:
        target = REPO / "assets" / "avatars" / "default"
        save_avatar(avatar, target, overwrite=True, half=True)
        shutil.copytree(args.work / "stage2", target / STAGE2_SUBDIR, dirs_exist_ok=True)
        print(f"installed {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

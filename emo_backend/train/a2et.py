"""Training A2ET on tracked clips: audio + the clip's emotion label -> its tracked expression and jaw/neck pose.

Any dataset in the tracked-clip format works (the synthetic actor's, or a
studio's own imported clips). Each step samples windows of consecutive frames
from the training split; the loss is L1 on expression and pose plus L1 on
their frame-to-frame velocity (so the mouth moves at the right speed, not just
to the right place).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from emo_backend.errors import EmoSplatError
from emo_backend.head.model import JOINT_NAMES
from emo_backend.motion.a2et import A2ET, A2ETConfig

JAW = JOINT_NAMES.index("jaw")
NECK = JOINT_NAMES.index("neck")
A2ET_NAME = "a2et"


class ClipArrays(NamedTuple):
    clip_id: str
    features: Tensor    # [F, Da]
    expression: Tensor  # [F, E]
    jaw: Tensor         # [F, 3]
    neck: Tensor        # [F, 3]
    weights: Tensor     # [8] the clip's emotion
    intensity: float


@dataclass
class A2ETTraining:
    """Defaults are what the bundled A2ET (assets/models/a2et) was trained with."""

    iterations: int = 1500
    batch_size: int = 12
    window: int = 80            # frames per training sample (3.2 s at 25 fps)
    lr: float = 1.5e-3
    final_lr: float = 5e-5
    velocity_weight: float = 1.0
    pose_weight: float = 4.0    # radians are small next to AU coefficients
    seed: int = 0
    d_model: int = 96
    num_layers: int = 3


def load_clip_arrays(dataset, split: str) -> list[ClipArrays]:
    """Audio features and targets of every tracked clip with audio in a split."""
    from emo_backend.audio.features import logmel_frames
    from emo_backend.emotion.space import one_hot

    clips = []
    for clip_id in dataset.clip_ids(split):
        info = dataset.clip(clip_id)
        if info.audio is None:
            continue
        tracking = dataset.load_tracking(clip_id)
        samples, rate = dataset.load_audio(clip_id)
        features = logmel_frames(samples, rate, dataset.info.fps, num_frames=tracking.num_frames)
        pose = torch.from_numpy(tracking.pose)
        clips.append(
            ClipArrays(
                clip_id,
                features,
                torch.from_numpy(tracking.expression),
                pose[:, JAW],
                pose[:, NECK],
                one_hot(info.emotion),
                float(info.intensity),
            )
        )
    return clips


def _sample_batch(clips: list[ClipArrays], size: int, window: int, rng: random.Random):
    feats, expr, jaw, neck, weights, intensity = [], [], [], [], [], []
    for _ in range(size):
        clip = clips[rng.randrange(len(clips))]
        frames = clip.features.shape[0]
        w = min(window, frames)
        start = rng.randrange(0, frames - w + 1)
        sl = slice(start, start + window)
        pad = window - w  # short clips: repeat the last frame (a held pose), rare in practice

        def take(t: Tensor) -> Tensor:
            part = t[sl]
            return torch.cat([part, part[-1:].expand(pad, *part.shape[1:])]) if pad else part

        feats.append(take(clip.features))
        expr.append(take(clip.expression))
        jaw.append(take(clip.jaw))
        neck.append(take(clip.neck))
        weights.append(clip.weights.expand(window, -1))
        intensity.append(torch.full((window,), clip.intensity))
    return (torch.stack(t) for t in (feats, expr, jaw, neck, weights, intensity))


def motion_loss(pred, expression: Tensor, jaw: Tensor, neck: Tensor, cfg: A2ETTraining) -> Tensor:
    def l1_with_velocity(a: Tensor, b: Tensor) -> Tensor:
        value = (a - b).abs().mean()
        velocity = ((a[:, 1:] - a[:, :-1]) - (b[:, 1:] - b[:, :-1])).abs().mean()
        return value + cfg.velocity_weight * velocity

    pose = l1_with_velocity(pred.jaw, jaw) + l1_with_velocity(pred.neck, neck)
    return l1_with_velocity(pred.expression, expression) + cfg.pose_weight * pose


def train_a2et(dataset_dir: str | Path, out_dir: str | Path, cfg: A2ETTraining = A2ETTraining(), progress: bool = True) -> dict:
    """Train A2ET on a dataset's train split and save it to `out_dir` (a2et.json + a2et.safetensors)."""
    from tqdm import tqdm

    from emo_backend.data.dataset import load_dataset
    from emo_backend.motion.weights import save_module

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    dataset = load_dataset(dataset_dir)
    clips = load_clip_arrays(dataset, "train")
    if not clips:
        raise EmoSplatError(f"{dataset_dir}: no tracked training clips with audio; A2ET learns from audio + tracking")
    feats_all = torch.cat([c.features for c in clips])
    model_cfg = A2ETConfig(
        audio_dim=feats_all.shape[1],
        num_expressions=clips[0].expression.shape[1],
        d_model=cfg.d_model,
        num_layers=cfg.num_layers,
        num_heads=4,
    )
    model = A2ET(model_cfg)
    model.feature_mean.copy_(feats_all.mean(0))
    model.feature_std.copy_(feats_all.std(0).clamp_min(1e-3))
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    decay = (cfg.final_lr / cfg.lr) ** (1 / max(1, cfg.iterations))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay)
    model.train()
    bar = tqdm(range(cfg.iterations), desc="train a2et", unit="it", disable=not progress)
    running = None
    for _ in bar:
        feats, expr, jaw, neck, weights, intensity = _sample_batch(clips, cfg.batch_size, cfg.window, rng)
        pred = model(feats, weights, intensity)
        loss = motion_loss(pred, expr, jaw, neck, cfg)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}")
    model.eval()
    info = {
        "dataset": str(Path(dataset_dir).name),
        "head_model": dataset.info.head_model,
        "expression_names": list(dataset.info.expression_names),
        "fps": float(dataset.info.fps),
        "features": "logmel",
        "iterations": cfg.iterations,
        "final_loss": running,
        "train_clips": len(clips),
    }
    save_module(model, out_dir, A2ET_NAME, model_cfg.to_dict(), info)
    return info


def load_a2et(folder: str | Path) -> tuple[A2ET, dict]:
    from emo_backend.motion.weights import load_module

    return load_module(folder, A2ET_NAME, lambda c: A2ET(A2ETConfig(**c)))

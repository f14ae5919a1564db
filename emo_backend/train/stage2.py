"""Stage 2: train the emotional Gaussian deformation (EGD) on emotional clips, stage 1 and A2ET frozen.

Per iteration (GaussianEmoTalker's recipe): pick a training frame; ψ_emo, θ_emo
are its tracking (ground truth), ψ_neu, θ_neu come from A2ET on the clip's
audio with the neutral condition; render stage 1 at ψ_emo plus EGD's residual
(`motion.pipeline.frame_gaussians`) and compare with the frame: L1 + 0.25
D-SSIM, plus a prior that keeps the residual small where the data does not ask
for it (the paper's FLAME-prior term on the deformation). Adam, 1e-4 decaying
to 1e-5; 5000 iterations is the reference length.

Output folder: `egd.json` + `egd.safetensors` (motion.weights), `metrics.json`
with the ablation on the test split (PSNR/SSIM with and without stage 2, per
emotion and per intensity).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from emo_backend.avatar.blendshapes import GaussianAvatar
from emo_backend.avatar.gaussians import activate
from emo_backend.errors import EmoSplatError
from emo_backend.files.atomic import write_text_atomic
from emo_backend.motion.a2et import A2ET
from emo_backend.motion.egd import EGD, EGDConfig
from emo_backend.motion.pipeline import AUDIO_HALF_WIDTH, audio_windows, frame_gaussians, predict_motion
from emo_backend.train import losses

EGD_NAME = "egd"


@dataclass
class Stage2Config:
    iterations: int = 5000
    lr: float = 1e-4
    final_lr: float = 1e-5
    dssim_weight: float = 0.25
    prior_weight: float = 1e-3       # L2 on the residual (keeps untouched Gaussians at stage 1)
    dim: int = 16                    # EGD width: 16 keeps the CPU preview at 25 fps (32: +0.1 dB, 2x the cost)
    num_layers: int = 2
    seed: int = 0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # masked frames are composited over this (as stage 1)
    identity: str | None = None                # only this identity's clips
    emotions: tuple[str, ...] | None = None    # only clips with these labels


class ClipContext:
    """Per-clip inputs that do not change during training: audio features, A2ET's neutral motion, tracking."""

    def __init__(self, dataset, clip_id: str, a2et: A2ET):
        from emo_backend.audio.features import logmel_frames
        from emo_backend.emotion.space import one_hot

        info = dataset.clip(clip_id)
        self.tracking = dataset.load_tracking(clip_id)
        frames = self.tracking.num_frames
        samples, rate = dataset.load_audio(clip_id)
        self.features = logmel_frames(samples, rate, dataset.info.fps, num_frames=frames)
        self.weights = one_hot(info.emotion)
        self.intensity = float(info.intensity)
        expr = torch.from_numpy(self.tracking.expression)
        names = tuple(dataset.info.expression_names)
        blink_idx = [i for i, n in enumerate(names) if n.startswith("AU45")]
        blink = expr[:, blink_idx].mean(-1) if blink_idx else torch.zeros(frames)
        motion = predict_motion(
            a2et, self.features, self.weights.expand(frames, -1), torch.full((frames,), self.intensity), blink, names
        )
        self.expression_neu, self.pose_neu, self.blink = motion.expression_neu, motion.pose_neu, blink


def selected_clips(dataset, split: str, cfg: Stage2Config) -> list[str]:
    """The split's clips with audio, of the configured identity and emotions."""
    out = []
    for clip_id in dataset.clip_ids(split):
        info = dataset.clip(clip_id)
        if info.audio is None or (cfg.identity and info.identity != cfg.identity):
            continue
        if cfg.emotions and info.emotion not in cfg.emotions:
            continue
        out.append(clip_id)
    return out


def _render(avatar, egd, ctx: ClipContext, index: int, cfg: Stage2Config, width: int, height: int, backend: str):
    from emo_backend.render import rasterize

    t = ctx.tracking
    f = lambda a: torch.from_numpy(a[index : index + 1].copy())  # noqa: E731
    idx = torch.tensor([index])
    gaussians, _ = frame_gaussians(
        avatar, egd,
        expression_emo=f(t.expression), pose_emo=f(t.pose),
        expression_neu=ctx.expression_neu[idx], pose_neu=ctx.pose_neu[idx],
        blink=ctx.blink[idx], audio_window=audio_windows(ctx.features, idx, AUDIO_HALF_WIDTH),
        weights=ctx.weights[None], intensity=torch.tensor([ctx.intensity]), translation=f(t.translation),
    )
    g = activate(gaussians.frame(0))
    rgb, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors,
                              torch.from_numpy(t.viewmat[index]), torch.from_numpy(t.K[index]), width, height,
                              backend=backend)
    return rgb, alpha


def _target(dataset, clip_id: str, index: int, background: Tensor) -> tuple[Tensor, Tensor | None]:
    image = torch.from_numpy(dataset.load_frame(clip_id, index)).float() / 255.0
    mask = dataset.load_mask(clip_id, index)
    if mask is None:
        return image, None
    m = torch.from_numpy(mask)[..., None]
    return image * m + (1 - m) * background, m


def train_stage2(
    dataset_dir: str | Path,
    avatar: GaussianAvatar,
    a2et: A2ET,
    out_dir: str | Path,
    cfg: Stage2Config = Stage2Config(),
    backend: str = "torch",
    progress: bool = True,
) -> dict:
    from tqdm import tqdm

    from emo_backend.data.dataset import load_dataset
    from emo_backend.motion.weights import save_module

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    dataset = load_dataset(dataset_dir)
    if tuple(dataset.info.expression_names) != tuple(avatar.head.expr_names):
        raise EmoSplatError(f"{dataset_dir}: expression bases differ from the avatar's head model; "
                            "stage 2 needs the avatar trained (stage 1) on the same head model")
    width, height = (int(x) for x in dataset.info.resolution)
    with torch.no_grad():
        contexts = {c: ClipContext(dataset, c, a2et) for c in selected_clips(dataset, "train", cfg)}
    if not contexts:
        raise EmoSplatError(f"{dataset_dir}: no training clips with audio and tracking")
    refs = [(c, i) for c, ctx in contexts.items() for i in range(ctx.tracking.num_frames)]
    audio_dim = next(iter(contexts.values())).features.shape[1]
    egd_cfg = EGDConfig(audio_dim=audio_dim, dim=cfg.dim, num_layers=cfg.num_layers)
    egd = EGD(egd_cfg)
    for p in (*avatar.optimisable().values(),):
        p.requires_grad_(False)
    optimiser = torch.optim.Adam(egd.parameters(), lr=cfg.lr)
    decay = (cfg.final_lr / cfg.lr) ** (1 / max(1, cfg.iterations))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay)
    background = torch.tensor(cfg.background)
    bar = tqdm(range(cfg.iterations), desc="train stage2", unit="it", disable=not progress)
    running = None
    for _ in bar:
        clip_id, index = refs[rng.randrange(len(refs))]
        ctx = contexts[clip_id]
        rgb, alpha = _render(avatar, egd, ctx, index, cfg, width, height, backend)
        target, mask = _target(dataset, clip_id, index, background)
        pred = losses.composite_over(rgb, alpha, background)
        loss = losses.photometric_loss(pred, target, dssim_weight=cfg.dssim_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}")
    egd.eval()
    save_module(egd, out_dir, EGD_NAME, egd_cfg.to_dict(), {"iterations": cfg.iterations, "config": asdict(cfg)})
    report = ablation(dataset, avatar, a2et, egd, cfg, backend)
    report["final_loss"] = running
    write_text_atomic(Path(out_dir) / "metrics.json", json.dumps(report, indent=2))
    return report


@torch.no_grad()
def ablation(dataset, avatar, a2et, egd, cfg: Stage2Config, backend: str, max_frames_per_clip: int = 8) -> dict:
    """PSNR/SSIM on the test split with and without stage 2, overall, per emotion and per intensity."""
    from emo_backend.eval.metrics import psnr
    from emo_backend.train.losses import ssim

    width, height = (int(x) for x in dataset.info.resolution)
    background = torch.tensor(cfg.background)
    rows = []
    for clip_id in selected_clips(dataset, "test", cfg):
        ctx = ClipContext(dataset, clip_id, a2et)
        frames = ctx.tracking.num_frames
        for index in torch.linspace(0, frames - 1, min(frames, max_frames_per_clip)).round().long().tolist():
            target, _ = _target(dataset, clip_id, index, background)
            row = {"clip": clip_id, "emotion": dataset.clip(clip_id).emotion, "intensity": ctx.intensity}
            for name, net in (("stage1", None), ("stage2", egd)):
                rgb, alpha = _render(avatar, net, ctx, index, cfg, width, height, backend)
                pred = losses.composite_over(torch.as_tensor(rgb), torch.as_tensor(alpha), background).clamp(0, 1)
                row[f"{name}_psnr"] = float(psnr(pred, target))
                row[f"{name}_ssim"] = float(ssim(pred, target))
            rows.append(row)

    def summary(selected: list[dict]) -> dict:
        n = max(1, len(selected))
        means = {f"{s}_{m}": sum(r[f"{s}_{m}"] for r in selected) / n for s in ("stage1", "stage2") for m in ("psnr", "ssim")}
        return means | {"frames": len(selected)}

    return {
        "overall": summary(rows),
        "per_emotion": {e: summary([r for r in rows if r["emotion"] == e]) for e in sorted({r["emotion"] for r in rows})},
        "per_intensity": {f"{i:.2f}": summary([r for r in rows if abs(r["intensity"] - i) < 1e-3])
                          for i in sorted({r["intensity"] for r in rows})},
    }


def load_egd(folder: str | Path) -> tuple[EGD, dict]:
    from emo_backend.motion.weights import load_module

    return load_module(folder, EGD_NAME, lambda c: EGD(EGDConfig(**c)))

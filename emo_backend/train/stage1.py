"""Stage 1: fit Gaussian blendshapes (B0 + ΔB_k bound to the head mesh) to a tracked-clip dataset.

Each iteration: pick a training frame, evaluate the avatar with that frame's
tracked expression and pose, splat it with the differentiable renderer ("numba"
on CPU, "torch" on request, "gsplat" on CUDA), compare it with the frame, step Adam. As
GaussianBlendshapes (its released config): L_rgb = 0.8·L1 + 0.2·(1 − SSIM), plus
10·mean((alpha − mask)²) when the data has masks; per-parameter learning rates of
3DGS (means 1.6e-4 → 1.6e-6 × extent, decayed log-linearly; scales 5e-3,
rotations 1e-3, opacity 5e-2, colours 2.5e-3) with the blendshape deltas at
their own rates; adaptive density control from iteration 500 to 15 000 every 100
(gradient threshold 5 × 3DGS's, as GaussianBlendshapes for the face); no opacity
reset (GaussianBlendshapes disables it).

Background: with masks, prediction and frame are both composited over the
same background colour (black by default), so the loss only sees the subject
and the alpha term shapes the silhouette; without masks the avatar is
composited over the data's own background colour, estimated from the frame
borders unless given.

Output folder:
    checkpoints/latest.safetensors   every `checkpoint_every` iterations and at the end (atomic)
    init_avatar/                     the starting avatar (its head is what resume rebuilds from)
    avatar/                          the trained avatar bundle (avatar.bundle.save_avatar)
    metrics.json                     final losses, PSNR/SSIM on the training and test frames, counts, timings
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from emo_backend.avatar.blendshapes import GaussianAvatar, evaluate
from emo_backend.avatar.gaussians import activate
from emo_backend.errors import EmoSplatError
from emo_backend.head.model import HeadModel
from emo_backend.render.projection import project_gaussians
from emo_backend.train import losses
from emo_backend.train.checkpoint import load_checkpoint, save_checkpoint
from emo_backend.train.densify import DensifyConfig, DensityStats, densify_and_prune, screen_space_gradients
from emo_backend.train.schedule import ExponentialDecay, constant

PARAM_NAMES = ("offsets", "quats", "log_scales", "opacity_logits", "colors", "delta_means", "delta_rotations",
               "delta_log_scales", "delta_colors", "delta_opacity_logits")
BUFFER_NAMES = ("face_ids", "bary", "parts")
# Axis of the Gaussian index in each tensor (the deltas are [E, N, ...]).
GAUSSIAN_DIMS = {name: (1 if name.startswith("delta_") else 0) for name in (*PARAM_NAMES, *BUFFER_NAMES)}
CHECKPOINT = Path("checkpoints") / "latest.safetensors"


@dataclass
class Stage1Config:
    iterations: int = 40_000          # GaussianBlendshapes trains 40k
    backend: str = "auto"             # "numba" or "torch" (CPU), "gsplat" (CUDA), "auto" (gsplat, else numba)
    seed: int = 0
    num_gaussians: int = 36_000       # initial count when starting from a head model
    extent: float = 1.0               # scene extent (GaussianBlendshapes' camera_extent) for LRs and density control
    # Learning rates (3DGS / GaussianBlendshapes).
    position_lr_init: float = 1.6e-4
    position_lr_final: float = 1.6e-6
    position_lr_delay_mult: float = 0.01
    position_lr_max_steps: int | None = 30_000   # None: all iterations
    scale_lr: float = 5e-3
    rotation_lr: float = 1e-3
    opacity_lr: float = 5e-2
    color_lr: float = 2.5e-3
    delta_lr_mult: float = 1.0        # the ΔB_k rates are their B0 counterparts' times this
    # Loss.
    dssim_weight: float = losses.DEFAULT_DSSIM_WEIGHT
    alpha_weight: float = 10.0        # used only when frames have masks
    offset_weight: float = 0.01       # hinge on |offset| beyond 1 triangle size
    scale_weight: float = 0.0         # hinge on max scale beyond 0.6 triangle size
    delta_weight: float = 0.0         # L2 on ΔB_k (GaussianBlendshapes' weight_decay is 0)
    isotropy_weight: float = 0.0
    lpips_weight: float = 0.0         # perceptual term, only with LPIPS weights given by path (GaussianBlendshapes: 0)
    lpips_backbone: str | None = None  # VGG-16 weights file (torchvision layout)
    lpips_heads: str | None = None     # LPIPS linear heads file (the lpips package's weights/v0.1/vgg.pth)
    background: tuple[float, float, float] | None = None  # None: black with masks, estimated without
    # Density control.
    densify_from: int = 500
    densify_until: int = 15_000
    densify_every: int = 100
    densify_grad_threshold: float = 1e-3  # 5 × 3DGS's 2e-4, as GaussianBlendshapes for the face
    percent_dense: float = 0.01
    min_opacity: float = 0.005
    max_screen_radius: float | None = 20.0  # pixels (3DGS's size_threshold) ...
    screen_prune_from: int = 3000     # ... applied only after this iteration (3DGS: after the first opacity reset)
    max_gaussians: int = 200_000      # no densification beyond this count
    # Bookkeeping.
    checkpoint_every: int = 1000
    eval_frames: int = 16             # frames per split measured at the end
    identity: str | None = None       # train on this identity's clips only (a dataset may hold several people)
    emotions: tuple[str, ...] | None = None  # only clips with these labels (GaussianEmoTalker: stage 1 on neutral)
    progress: bool = True


@dataclass
class FrameRef:
    clip_id: str
    index: int


class TrainingFrames:
    """The training split as a list of (clip, frame) with tracking in memory and images read on demand."""

    def __init__(self, dataset, split: str = "train", cache_bytes: int = 2 << 30,
                 identity: str | None = None, emotions: tuple[str, ...] | None = None):
        """Clips of `split`, only those of one `identity` and/or with one of `emotions` when given."""
        self.dataset = dataset
        self.refs: list[FrameRef] = []
        self.tracking = {}
        # Decoded frames stay in memory (uint8) up to cache_bytes: PNG decoding would otherwise dominate a GPU step.
        self.cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self.cache_bytes, self.cached_bytes = cache_bytes, 0
        for clip_id in dataset.clip_ids(split):
            info = dataset.clip(clip_id)
            if (identity is not None and info.identity != identity) or (emotions and info.emotion not in emotions):
                continue
            self.tracking[clip_id] = dataset.load_tracking(clip_id)
            self.refs += [FrameRef(clip_id, i) for i in range(dataset.clip(clip_id).num_frames)]
        self.width, self.height = (int(x) for x in dataset.info.resolution)

    def __len__(self) -> int:
        return len(self.refs)

    def load(self, k: int, device: torch.device) -> dict[str, Tensor | None]:
        ref = self.refs[k]
        t = self.tracking[ref.clip_id]
        if k in self.cache:
            rgb, mask = self.cache[k]
        else:
            rgb, mask = self.dataset.load_frame(ref.clip_id, ref.index), self.dataset.load_mask(ref.clip_id, ref.index)
            if mask is not None:
                mask = (mask * 255 + 0.5).astype(np.uint8)  # masks are 8-bit PNGs: exact
            size = rgb.nbytes + (0 if mask is None else mask.nbytes)
            if self.cached_bytes + size <= self.cache_bytes:
                self.cache[k] = (rgb, mask)
                self.cached_bytes += size
        image = torch.from_numpy(rgb.astype(np.float32) / 255.0)
        mask = None if mask is None else mask.astype(np.float32) / 255.0
        f = lambda a: torch.from_numpy(np.ascontiguousarray(a[ref.index], dtype=np.float32)).to(device)  # noqa: E731
        return {
            "image": image.to(device),
            "mask": None if mask is None else torch.from_numpy(mask)[..., None].to(device),
            "expression": f(t.expression), "pose": f(t.pose), "translation": f(t.translation),
            "K": f(t.K), "viewmat": f(t.viewmat),
        }


def _resolve_training_backend(backend: str) -> tuple[str, torch.device]:
    from emo_backend.render import cuda_works

    if backend == "auto":
        backend = "gsplat" if cuda_works() else "numba"
    if backend == "cpu":
        raise EmoSplatError("the 'cpu' renderer has no gradients; train with --backend numba (its differentiable "
                            "twin), torch or gsplat")
    if backend == "gsplat":
        if not cuda_works():
            raise EmoSplatError("--backend gsplat needs a CUDA GPU and torch sees none; use --backend torch on CPU")
        return backend, torch.device("cuda")
    if backend not in ("torch", "numba"):
        raise EmoSplatError(f"unknown training backend {backend!r}; choose auto, numba, torch or gsplat")
    return backend, torch.device("cpu")


def estimate_background(frames: TrainingFrames, samples: int = 8) -> tuple[float, float, float]:
    """The data's background colour: the median of the frame borders over a few frames."""
    picks = np.linspace(0, len(frames) - 1, min(samples, len(frames))).round().astype(int)
    borders = []
    for k in picks:
        img = frames.load(int(k), torch.device("cpu"))["image"]
        borders += [img[0], img[-1], img[:, 0], img[:, -1]]
    rgb = torch.cat(borders).median(0).values
    return tuple(float(x) for x in rgb)


def make_optimizer(params: dict[str, nn.Parameter], cfg: Stage1Config) -> tuple[torch.optim.Adam, dict]:
    """Adam with one named group per parameter, and each group's schedule."""
    position_steps = cfg.position_lr_max_steps or cfg.iterations
    pos = ExponentialDecay(cfg.position_lr_init * cfg.extent, cfg.position_lr_final * cfg.extent,
                           position_steps, delay_steps=0, delay_mult=cfg.position_lr_delay_mult)
    base = {"offsets": pos, "quats": constant(cfg.rotation_lr), "log_scales": constant(cfg.scale_lr),
            "opacity_logits": constant(cfg.opacity_lr), "colors": constant(cfg.color_lr)}
    m = cfg.delta_lr_mult
    delta_pos = ExponentialDecay(pos.lr_init * m, pos.lr_final * m, position_steps) if m > 0 else constant(0.0)
    schedules = {**base, "delta_means": delta_pos, "delta_rotations": constant(cfg.rotation_lr * m),
                 "delta_log_scales": constant(cfg.scale_lr * m), "delta_colors": constant(cfg.color_lr * m),
                 "delta_opacity_logits": constant(cfg.opacity_lr * m)}
    groups = [{"params": [params[name]], "lr": schedules[name](0), "name": name} for name in PARAM_NAMES]
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15), schedules


def _head_for(model_id: str, dataset_dir) -> HeadModel:
    """The head model a dataset was tracked with, when the backend can build it (the open head)."""
    from emo_backend.head.registry import build_head

    try:
        return build_head(model_id, what=str(dataset_dir))
    except EmoSplatError as err:
        raise EmoSplatError(f"no starting avatar: {err}; or pass --init-avatar") from None


def _face_scale(head: HeadModel, face_ids: Tensor) -> Tensor:
    from emo_backend.avatar.binding import face_areas

    return torch.sqrt(2 * face_areas(head.v_template, head.faces))[face_ids]


def _assemble(template: GaussianAvatar, params: dict[str, Tensor], buffers: dict[str, Tensor]) -> GaussianAvatar:
    return template.with_tensors(**params, **buffers)


def render_frame(avatar: GaussianAvatar, frame: dict, width: int, height: int, backend: str, keep_means: bool = False):
    gaussians, posed = evaluate(avatar, frame["expression"][None], frame["pose"][None], frame["translation"][None])
    g = activate(gaussians.frame(0))
    means = g.means
    if keep_means:
        means.retain_grad()
    from emo_backend.render import rasterize

    rgb, alpha, _ = rasterize(means, g.quats, g.scales, g.opacities, g.colors, frame["viewmat"], frame["K"],
                              width, height, backend=backend)
    return rgb, alpha, g, posed


def composite_target(frame: dict, background: Tensor) -> Tensor:
    if frame["mask"] is None:
        return frame["image"]
    return frame["image"] * frame["mask"] + (1 - frame["mask"]) * background


def train_stage1(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    iterations: int | None = None,
    backend: str | None = None,
    seed: int | None = None,
    resume: bool = False,
    *,
    config: Stage1Config | None = None,
    head: HeadModel | None = None,
    init_avatar: GaussianAvatar | str | os.PathLike | None = None,
    stop_after: int | None = None,
) -> dict:
    """Fit stage 1 and write the avatar bundle and metrics.json into out_dir; returns the metrics.

    The starting avatar is, in order: `init_avatar` (a GaussianAvatar or a bundle
    path), or one initialised on `head`. With `resume=True` the run continues from
    out_dir's checkpoint (the starting arguments are then not needed).
    `stop_after` ends the loop after that iteration as an interruption would
    (for tests; the checkpoint is written there).
    """
    from emo_backend.avatar.bundle import load_avatar, save_avatar
    from emo_backend.data.dataset import load_dataset
    from emo_backend.eval.report import write_report

    cfg = config or Stage1Config()
    overrides = {k: v for k, v in (("iterations", iterations), ("backend", backend), ("seed", seed)) if v is not None}
    cfg = Stage1Config(**{**asdict(cfg), **overrides})
    backend_name, device = _resolve_training_backend(cfg.backend)
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    init_path = out / "init_avatar"

    dataset = load_dataset(dataset_dir)
    frames = TrainingFrames(dataset, "train", identity=cfg.identity, emotions=cfg.emotions)
    if not len(frames):
        which = "".join([f" of identity {cfg.identity!r}" if cfg.identity else "",
                         f" labelled {', '.join(cfg.emotions)}" if cfg.emotions else ""])
        raise EmoSplatError(f"{dataset_dir}: the train split has no tracked frames{which}; "
                            f"add clips to the 'train' split or change the selection")

    # --- starting point ---------------------------------------------------------------------------------
    checkpoint = None
    if resume:
        if not ckpt_path.is_file():
            raise EmoSplatError(f"--resume: no checkpoint at {ckpt_path}; run without --resume to start training")
        checkpoint = load_checkpoint(ckpt_path, device)
        template = load_avatar(init_path)
        saved = checkpoint.meta.get("config", {})
        cfg = Stage1Config(**{**saved, **overrides, "progress": cfg.progress})
        # the run goes on with the renderer it started with (unless one is given): backends differ in rounding
        backend_name, _ = _resolve_training_backend(cfg.backend)
    else:
        if ckpt_path.exists():
            raise EmoSplatError(f"{out} already holds a training run; pass --resume to continue it or choose "
                                "another --out")
        torch.manual_seed(cfg.seed)
        if isinstance(init_avatar, GaussianAvatar):
            template = init_avatar
        elif init_avatar is not None:
            template = load_avatar(init_avatar)
        elif head is not None:
            from emo_backend.avatar.init import init_avatar_from_head

            template = init_avatar_from_head(head, cfg.num_gaussians, seed=cfg.seed)
        else:
            from emo_backend.avatar.init import init_avatar_from_head

            template = init_avatar_from_head(_head_for(dataset.info.head_model, dataset_dir), cfg.num_gaussians,
                                             seed=cfg.seed)
        template = template.to("cpu")
        save_avatar(template, init_path, overwrite=True, half=False)
        template = load_avatar(init_path)  # exactly what a resume will see
    if template.num_expressions != len(dataset.info.expression_names):
        raise EmoSplatError(f"the avatar has {template.num_expressions} expression bases but {dataset_dir} is tracked "
                            f"with {len(dataset.info.expression_names)}; use an avatar on head {dataset.info.head_model!r}")
    template = template.to(device)

    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    if checkpoint is not None:
        params = {n: nn.Parameter(checkpoint.params[n].clone()) for n in PARAM_NAMES}
        buffers = {n: checkpoint.buffers[n].clone() for n in BUFFER_NAMES}
        stats = DensityStats.from_dict({k: checkpoint.buffers[f"stats.{k}"] for k in ("grad_sum", "count", "max_radius")})
        start = checkpoint.step
        generator.set_state(checkpoint.generator_states["frames"])
        checkpoint.restore_global_rng()
        background = torch.tensor(checkpoint.meta["background"], device=device)
        elapsed_before = float(checkpoint.meta.get("seconds", 0.0))
    else:
        params = {n: nn.Parameter(getattr(template, n).detach().clone().float()) for n in PARAM_NAMES}
        buffers = {n: getattr(template, n).detach().clone() for n in BUFFER_NAMES}
        stats = DensityStats.zeros(template.num_gaussians, device)
        start = 0
        if cfg.background is not None:
            bg = cfg.background
        elif dataset.clip(frames.refs[0].clip_id).has_masks:
            bg = (0.0, 0.0, 0.0)
        else:
            bg = estimate_background(frames)
        background = torch.tensor(bg, dtype=torch.float32, device=device)
        elapsed_before = 0.0
    optimizer, schedules = make_optimizer(params, cfg)
    if checkpoint is not None and checkpoint.optimizer_state is not None:
        if checkpoint.param_names != list(PARAM_NAMES):
            raise EmoSplatError(f"{ckpt_path}: written by a different trainer layout; start a new run")
        optimizer.load_state_dict(checkpoint.optimizer_state)
    avatar = _assemble(template, params, buffers)
    face_scale = _face_scale(template.head, buffers["face_ids"])
    densify_cfg = DensifyConfig(grad_threshold=cfg.densify_grad_threshold, percent_dense=cfg.percent_dense,
                                min_opacity=cfg.min_opacity)
    width, height = frames.width, frames.height
    lpips = None
    if cfg.lpips_weight > 0:
        if not (cfg.lpips_backbone and cfg.lpips_heads):
            raise EmoSplatError("lpips_weight > 0 needs lpips_backbone and lpips_heads (local weight files); "
                                "set both or leave the perceptual term off")
        from emo_backend.train.perceptual import load_lpips

        lpips = load_lpips(cfg.lpips_backbone, cfg.lpips_heads).to(device)

    def save(step: int, seconds: float) -> None:
        meta = {"config": asdict(cfg), "background": background.tolist(), "seconds": seconds,
                "dataset": str(Path(dataset_dir).resolve())}
        buf = {**buffers, **{f"stats.{k}": v for k, v in stats.as_dict().items()}}
        save_checkpoint(ckpt_path, step, params, optimizer, buf, {"frames": generator}, meta)

    from emo_backend.train.progress import TrainingProgress

    history: list[dict] = []
    last_loss = float("nan")
    t0 = time.perf_counter()
    end = cfg.iterations if stop_after is None else min(cfg.iterations, stop_after)
    with TrainingProgress(cfg.iterations, initial=start, desc="stage 1", disable=not cfg.progress) as bar:
        for step in range(start + 1, end + 1):
            for group in optimizer.param_groups:
                group["lr"] = schedules[group["name"]](step)
            k = int(torch.randint(len(frames), (1,), generator=generator))
            frame = frames.load(k, device)
            track_density = step <= cfg.densify_until
            rgb, alpha, g, _ = render_frame(avatar, frame, width, height, backend_name, keep_means=track_density)
            pred = losses.composite_over(rgb, alpha, background)
            target = composite_target(frame, background)
            loss = losses.photometric_loss(pred, target, dssim_weight=cfg.dssim_weight)
            if lpips is not None:
                loss = loss + cfg.lpips_weight * lpips(pred, target)
            if frame["mask"] is not None and cfg.alpha_weight > 0:
                loss = loss + cfg.alpha_weight * losses.alpha_mask_loss(alpha, frame["mask"])
            if cfg.offset_weight > 0:
                loss = loss + cfg.offset_weight * losses.offset_hinge_loss(params["offsets"], face_scale)
            if cfg.scale_weight > 0:
                loss = loss + cfg.scale_weight * losses.scale_hinge_loss(params["log_scales"], face_scale)
            if cfg.delta_weight > 0:
                loss = loss + cfg.delta_weight * sum(
                    losses.blendshape_delta_loss(params[n]) for n in PARAM_NAMES if n.startswith("delta_"))
            if cfg.isotropy_weight > 0:
                loss = loss + cfg.isotropy_weight * losses.isotropy_loss(params["log_scales"])
            if not torch.isfinite(loss):
                raise EmoSplatError(f"stage 1 diverged at iteration {step} (loss is {float(loss)}); lower the "
                                    "learning rates or resume from the last checkpoint with a smaller --iterations")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()

            with torch.no_grad():
                if track_density and g.means.grad is not None:
                    proj = project_gaussians(g.means.detach(), g.quats.detach(), g.scales.detach(),
                                             g.opacities.detach(), frame["viewmat"], frame["K"], width, height)
                    radii = proj.radii.amax(-1).to(torch.float32)
                    screen = screen_space_gradients(g.means.grad, g.means.detach(), frame["viewmat"], frame["K"],
                                                    width, height)
                    stats.add(screen, radii > 0, radii)
            optimizer.step()

            if (cfg.densify_from <= step <= cfg.densify_until and step % cfg.densify_every == 0
                    and step > cfg.densify_from):
                result = densify_and_prune(
                    params, buffers, optimizer, stats, template.head.v_template, template.head.faces, cfg.extent,
                    DensifyConfig(**{**asdict(densify_cfg), "max_screen_radius":
                                     cfg.max_screen_radius if step > cfg.screen_prune_from else None}),
                    gaussian_dims=GAUSSIAN_DIMS, generator=generator,
                    densify=len(buffers["face_ids"]) < cfg.max_gaussians,
                )
                params, buffers, stats = result.params, result.buffers, result.stats
                avatar = _assemble(template, params, buffers)
                face_scale = _face_scale(template.head, buffers["face_ids"])

            with torch.no_grad():
                last_loss = float(loss)
                psnr = float(10 * torch.log10(1 / ((pred.clamp(0, 1) - target) ** 2).mean().clamp_min(1e-12)))
            history.append({"step": step, "loss": last_loss, "psnr": psnr})
            bar.update(step, last_loss, psnr, gaussians=len(buffers["face_ids"]))
            if step % cfg.checkpoint_every == 0 or step == end:
                save(step, elapsed_before + time.perf_counter() - t0)

    seconds = elapsed_before + time.perf_counter() - t0
    final = _assemble(template, {k: v.detach() for k, v in params.items()}, buffers)
    if end < cfg.iterations:  # interrupted on purpose (stop_after): the checkpoint is the result
        return {"stopped_at": end, "history": history}

    with torch.no_grad():
        metrics = {
            "stage": 1,
            "iterations": cfg.iterations,
            "backend": backend_name,
            "seed": cfg.seed,
            "gaussians": final.num_gaussians,
            "final_loss": last_loss,
            "seconds": seconds,
            "background": background.tolist(),
            "train": evaluate_frames(final, frames, background, cfg.eval_frames, backend_name, device),
            "history": history,
        }
        if dataset.clip_ids("test"):
            test_frames = TrainingFrames(dataset, "test", identity=cfg.identity, emotions=cfg.emotions)
            if len(test_frames):
                metrics["test"] = evaluate_frames(final, test_frames, background, cfg.eval_frames, backend_name, device)
    final = final.to("cpu")
    final.training = {"stage": 1, "iterations": cfg.iterations, "seed": cfg.seed, "backend": backend_name,
                      "dataset": str(Path(dataset_dir).resolve()), "final_loss": last_loss,
                      "train_psnr": metrics["train"]["psnr"]}
    save_avatar(final, out / "avatar", overwrite=True)
    # The file keeps at most ~1000 history points (every step of a 40k run would be megabytes of JSON).
    stride = max(1, len(history) // 1000)
    on_disk = {**metrics, "history": history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])}
    write_report(out / "metrics.json", on_disk)
    return metrics


def evaluate_frames(
    avatar: GaussianAvatar, frames: TrainingFrames, background: Tensor, count: int, backend: str, device
) -> dict:
    """Mean PSNR / SSIM / L1 over up to `count` evenly spaced frames, composited as in training.

    With masks, `psnr_in_mask` is the PSNR over the subject's pixels only: the
    full-frame figure (what papers report) gains from the exact background.
    """
    from emo_backend.eval.metrics import psnr, ssim_per_image

    if not len(frames):
        return {"frames": 0}
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    p_list, s_list, l_list, m_list = [], [], [], []
    for k in picks:
        frame = frames.load(int(k), device)
        rgb, alpha, _, _ = render_frame(avatar, frame, frames.width, frames.height, backend)
        pred = losses.composite_over(rgb, alpha, background).clamp(0, 1)
        target = composite_target(frame, background)
        p_list.append(float(psnr(pred, target)))
        s_list.append(float(ssim_per_image(pred, target)))
        l_list.append(float((pred - target).abs().mean()))
        if frame["mask"] is not None:
            m_list.append(float(psnr(pred, target, frame["mask"])))
    out = {"frames": int(len(picks)), "psnr": float(np.mean(p_list)), "ssim": float(np.mean(s_list)),
           "l1": float(np.mean(l_list))}
    if m_list:
        out["psnr_in_mask"] = float(np.mean(m_list))
    return out

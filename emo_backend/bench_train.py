"""`emosplat bench train`: stage-1 training iterations per second, per differentiable backend.

Two workloads:
  synthetic  the head-like scene of `render.bench_scene` as trainable raw Gaussians (means,
             quats, log-scales, opacity logits, colours): activate -> rasterize -> composite
             over the background -> L1 + D-SSIM (`losses.photometric_loss`) -> backward ->
             Adam step. The target is the unperturbed scene; training starts from a jittered copy.
  avatar     the default avatar (or --avatar) through the stage-1 trainer's own step:
             blendshapes + LBS (`stage1.render_frame`), the same loss, backward, the
             density statistics and Adam with stage 1's parameter groups.

Each cell is the median over the timed iterations after warm-up iterations (numba compile
or cache load, allocator). Wall-clock and process CPU time (all threads) are both shown:
on a machine shared with other jobs wall-clock time is inflated by waiting for a core;
CPU time counts the work itself, summed over threads.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

from emo_backend.errors import EmoSplatError, InvalidFileError

TRAIN_BACKENDS = ("numba", "torch", "gsplat")
PHASES = ("render", "loss", "backward", "step")


def add_train_arguments(parser) -> None:
    """`bench train`'s options (options other `bench` parts define, like --counts, are shared)."""
    options = [
        (("--iterations",), dict(type=int, default=20,
                                 help="train: timed iterations per cell (default: %(default)s)")),
        (("--warmup",), dict(type=int, default=3, help="train: untimed iterations first (default: %(default)s)")),
    ]
    for flags, kwargs in options:
        if not any(f in parser._option_string_actions for f in flags):
            parser.add_argument(*flags, **kwargs)


def run_train(args) -> int:
    """`emosplat bench train` from parsed arguments (--counts default 20000, --sizes default 256)."""
    from emo_backend.render import cuda_works

    iterations, warmup = getattr(args, "iterations", 20), getattr(args, "warmup", 3)
    if iterations < 1 or warmup < 0:
        raise EmoSplatError("--iterations must be at least 1 and --warmup at least 0")
    counts = list(getattr(args, "counts", None) or [20_000])
    sizes = list(getattr(args, "sizes", None) or [256])
    if any(n < 1 for n in counts) or any(s < 16 for s in sizes):
        raise EmoSplatError("--counts must be positive and --sizes at least 16 pixels")
    backends = list(getattr(args, "backends", None) or (["gsplat"] if cuda_works() else []) + ["numba", "torch"])
    bad = [b for b in backends if b not in TRAIN_BACKENDS]
    if bad:
        raise EmoSplatError(f"bench train: {', '.join(bad)} cannot train (no gradients); "
                            f"choose from {', '.join(TRAIN_BACKENDS)}")
    with_avatar = not getattr(args, "no_avatar", False)
    bench_train(backends, counts, sizes, iterations, warmup, getattr(args, "avatar", None), with_avatar)
    return 0


# ------------------------------------------------------------------------------------------------ timing


class _Clock:
    """Wall-clock and process CPU seconds of named phases of one iteration."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, phase: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall[phase] = self.wall.get(phase, 0.0) + wall - self._wall
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def _measure(step: Callable[[_Clock], None], iterations: int, warmup: int) -> dict[str, dict[str, float]]:
    """-> {"wall": {phase or "total": median ms}, "cpu": {...}} over `iterations` timed steps."""
    for _ in range(warmup):
        step(_Clock())
    samples = []
    for _ in range(iterations):
        clock = _Clock()
        step(clock)
        samples.append(clock)
    out = {}
    for kind in ("wall", "cpu"):
        per_phase = {p: statistics.median(getattr(c, kind).get(p, 0.0) for c in samples) * 1e3 for p in PHASES}
        per_phase["total"] = statistics.median(sum(getattr(c, kind).values()) for c in samples) * 1e3
        out[kind] = per_phase
    return out


# ------------------------------------------------------------------------------------------------ workloads


def synthetic_step(backend: str, n: int, size: int, seed: int = 0) -> Callable[[_Clock], None]:
    """One stage-1-like iteration on the synthetic head, as a closure (state kept between calls)."""
    import torch

    from emo_backend.avatar.gaussians import Gaussians, activate
    from emo_backend.render import rasterize
    from emo_backend.render.bench_scene import head_scene
    from emo_backend.train import losses

    scene = head_scene(n, size, size, seed=seed)
    device = torch.device("cuda" if backend == "gsplat" else "cpu")
    background = torch.tensor([0.1, 0.1, 0.1], device=device)
    viewmat, K = scene.viewmat.to(device), scene.K.to(device)
    with torch.no_grad():
        rgb, alpha, _ = rasterize(*scene[:7], size, size, backend="cpu")
        target = losses.composite_over(rgb, alpha, background.cpu()).to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    jitter = lambda t, s: (t + s * torch.randn(t.shape, generator=gen)).to(device)  # noqa: E731
    raw = {
        "means": jitter(scene.means, 5e-4),
        "quats": jitter(scene.quats, 0.05),
        "log_scales": jitter(scene.scales.log(), 0.1),
        "opacity_logits": jitter(torch.logit(scene.opacities.clamp(1e-4, 1 - 1e-4)), 0.2),
        "colors": jitter(scene.colors, 0.05),
    }
    params = {k: torch.nn.Parameter(v) for k, v in raw.items()}
    rates = {"means": 1.6e-4, "quats": 1e-3, "log_scales": 5e-3, "opacity_logits": 5e-2, "colors": 2.5e-3}
    optimizer = torch.optim.Adam([{"params": [params[k]], "lr": lr} for k, lr in rates.items()], eps=1e-15)

    def step(clock: _Clock) -> None:
        g = activate(Gaussians(**params))
        rgb, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, viewmat, K, size, size,
                                  backend=backend)
        _sync(device)
        clock.lap("render")
        loss = losses.photometric_loss(losses.composite_over(rgb, alpha, background), target)
        _sync(device)
        clock.lap("loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _sync(device)
        clock.lap("backward")
        optimizer.step()
        _sync(device)
        clock.lap("step")
    return step


def avatar_step(backend: str, avatar, size: int) -> Callable[[_Clock], None]:
    """The stage-1 trainer's iteration (render_frame, photometric loss, density statistics, Adam) on one view."""
    import torch
    from torch import nn

    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.gaussians import activate
    from emo_backend.commands.bench import _avatar_camera
    from emo_backend.render.projection import project_gaussians
    from emo_backend.train import losses, stage1
    from emo_backend.train.densify import DensityStats, screen_space_gradients

    device = torch.device("cuda" if backend == "gsplat" else "cpu")
    avatar = avatar.to(device)
    params = {n: nn.Parameter(getattr(avatar, n).detach().clone().float()) for n in stage1.PARAM_NAMES}
    buffers = {n: getattr(avatar, n).detach().clone() for n in stage1.BUFFER_NAMES}
    model = stage1._assemble(avatar, params, buffers)
    optimizer, _ = stage1.make_optimizer(params, stage1.Stage1Config())
    stats = DensityStats.zeros(avatar.num_gaussians, device)
    frame = {"expression": torch.zeros(avatar.num_expressions, device=device),
             "pose": torch.zeros(avatar.skin_weights.shape[1], 3, device=device),
             "translation": torch.zeros(3, device=device), "mask": None}
    with torch.no_grad():
        gaussians, _ = evaluate(model, frame["expression"][None], frame["pose"][None], frame["translation"][None])
        viewmat, K = _avatar_camera(activate(gaussians.frame(0)).means.cpu(), size, size)
        frame["viewmat"], frame["K"] = viewmat.to(device), K.to(device)
        rgb, alpha, _, _ = stage1.render_frame(model, {**frame, "viewmat": viewmat, "K": K}, size, size, "cpu")
        background = torch.zeros(3, device=device)
        # a target the avatar does not already match: its render, slightly shifted
        frame["image"] = torch.roll(losses.composite_over(rgb, alpha, background.cpu()), 2, dims=1).to(device)

    def step(clock: _Clock) -> None:
        rgb, alpha, g, _ = stage1.render_frame(model, frame, size, size, backend, keep_means=True)
        _sync(device)
        clock.lap("render")
        loss = losses.photometric_loss(losses.composite_over(rgb, alpha, background), frame["image"])
        _sync(device)
        clock.lap("loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            proj = project_gaussians(g.means.detach(), g.quats.detach(), g.scales.detach(), g.opacities.detach(),
                                     frame["viewmat"], frame["K"], size, size)
            radii = proj.radii.amax(-1).to(torch.float32)
            screen = screen_space_gradients(g.means.grad, g.means.detach(), frame["viewmat"], frame["K"], size, size)
            stats.add(screen, radii > 0, radii)
        _sync(device)
        clock.lap("backward")
        optimizer.step()
        _sync(device)
        clock.lap("step")
    return step


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def _load_avatar(path: str | None):
    from emo_backend.avatar.bundle import load_avatar

    try:
        return load_avatar(path or "default"), None
    except InvalidFileError as err:
        if path is not None:
            raise
        return None, str(err)


# ------------------------------------------------------------------------------------------------ table


def bench_train(backends: list[str], counts: list[int], sizes: list[int], iterations: int, warmup: int,
                avatar_path: str | None = None, with_avatar: bool = True) -> list[dict]:
    """Print the table; -> its rows (workload, backend, gaussians, size, wall/cpu phase medians in ms)."""
    import torch

    from emo_backend.render import resolve_backend
    from emo_backend.render.cpu import numba_threads, threading_layer

    for name in backends:
        resolve_backend(name)  # a clear DeviceError for gsplat without CUDA
    avatar, reason = _load_avatar(avatar_path) if with_avatar else (None, None)
    print(f"train benchmark: median over {iterations} iterations after {warmup} warm-up; numba threads "
          f"{numba_threads()} ({threading_layer()}), torch threads {torch.get_num_threads()}")
    print("synthetic: head-like scene, raw Gaussians -> rasterize -> L1 + D-SSIM -> backward -> Adam; "
          "avatar: the stage-1 trainer's step")
    print("wall = elapsed time, cpu = process CPU time of all threads (ms per iteration); "
          "it/s from wall time. Phases: render / loss / backward (+ density stats) / Adam, wall ms")
    header = (f"{'workload':>9} {'backend':>7} {'gaussians':>9} {'image':>7} {'wall ms':>8} {'cpu ms':>8} "
              f"{'it/s':>6}  {'render':>6} {'loss':>6} {'bwd':>6} {'step':>6}")
    print(header)
    print("-" * len(header))
    rows = []

    def report(workload: str, backend: str, n: int, size: int, step) -> None:
        m = _measure(step, iterations, warmup)
        wall, cpu = m["wall"], m["cpu"]
        print(f"{workload:>9} {backend:>7} {n:>9} {f'{size}x{size}':>7} {wall['total']:>8.1f} {cpu['total']:>8.1f} "
              f"{1e3 / wall['total']:>6.2f}  " + " ".join(f"{wall[p]:>6.1f}" for p in PHASES), flush=True)
        rows.append({"workload": workload, "backend": backend, "gaussians": n, "size": size, **m})

    for n in counts:
        for size in sizes:
            for backend in backends:
                report("synthetic", backend, n, size, synthetic_step(backend, n, size))
    if with_avatar:
        if avatar is None:
            print(f"avatar: skipped: {reason}")
        else:
            for size in sizes:
                for backend in backends:
                    report("avatar", backend, avatar.num_gaussians, size, avatar_step(backend, avatar, size))
    return rows

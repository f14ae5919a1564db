"""`emosplat bench frame`: what one rendered frame of a shot costs, stage by stage, and frames per second.

The shot path of `shot.render_shot` without the disk writes: audio features
for the clip, A2ET twice (neutral and keyed condition), then in chunks of
`shot.CHUNK_FRAMES` frames stage 1 (blendshapes, LBS, skinning, pose
stretch), stage 2 (EGD's residual), and per frame activation, placement and
splatting. Clip-level costs (features, A2ET) are divided by the clip's frame
count. Each stage is timed in wall-clock and process CPU time (all threads),
with the device synchronised at stage boundaries on CUDA.

Without trained weights (assets/models/a2et, <bundle>/stage2) freshly
initialised networks of the default configuration are timed instead: the
cost of a forward pass does not depend on the weights.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from emo_backend.errors import EmoSplatError

STAGES = ("features", "a2et", "blendshapes", "stage2", "splat")
BENCH_FPS = 25.0
HAPPY = 5  # index in the emotion space (DESIGN.md's order)


@dataclass
class StageClock:
    """Accumulates wall and CPU seconds per stage; synchronises CUDA at each boundary."""

    device: object  # torch.device
    wall: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    cpu: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})

    def time(self, stage: str, fn, *args, **kwargs):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.wall[stage] += time.perf_counter() - w
        self.cpu[stage] += time.process_time() - c
        return out


@dataclass
class FrameBenchSetup:
    avatar: object          # GaussianAvatar on the device
    prepared: object        # PreparedAvatar
    a2et: object            # A2ET (eval mode, on the CPU like in shots)
    egd: object | None      # EGD on the device, or None
    prepared_egd: object | None  # PreparedEGD, or None
    samples: object         # [T] float32 mono audio
    rate: int
    notes: list[str]


def _networks(avatar, avatar_path: Path, audio_dim: int, device, with_stage2: bool):
    import torch

    from emo_backend.motion.a2et import A2ET, A2ETConfig
    from emo_backend.motion.egd import EGD, EGDConfig
    from emo_backend.motion.models import find_default_a2et, stage2_folder
    from emo_backend.train.a2et import load_a2et
    from emo_backend.train.stage2 import load_egd

    notes = []
    torch.manual_seed(0)
    folder = find_default_a2et()
    if folder is not None:
        a2et = load_a2et(folder)[0]
        notes.append(f"A2ET: trained weights from {folder}")
    else:
        a2et = A2ET(A2ETConfig(audio_dim=audio_dim, num_expressions=avatar.num_expressions, d_model=128,
                               num_layers=4)).eval()
        notes.append("A2ET: no trained weights installed (assets/models/a2et); timing a freshly initialised "
                     "A2ETConfig(d_model=128, num_layers=4) (cost does not depend on the weights)")
    egd = None
    if with_stage2:
        folder = stage2_folder(avatar_path) if avatar_path.is_dir() else None
        if folder is not None:
            egd = load_egd(folder)[0]
            notes.append(f"EGD: trained weights from {folder}")
        else:
            egd = EGD(EGDConfig(audio_dim=audio_dim)).eval()
            notes.append("EGD: the avatar has no stage 2 (<bundle>/stage2); timing a freshly initialised "
                         f"EGDConfig(dim={EGDConfig.dim}, num_layers={EGDConfig.num_layers}) "
                         "(cost does not depend on the weights)")
        egd = egd.to(device)
    else:
        notes.append("EGD: skipped (--no-stage2)")
    return a2et, egd, notes


def _audio(path: str | None, seconds: float):
    import numpy as np

    from emo_backend.audio.loading import load_audio
    from emo_backend.avatar.bundle import SOURCE_ASSETS

    candidate = Path(path) if path else SOURCE_ASSETS / "audio" / "arctic_a0007.wav"
    if candidate.is_file():
        samples, rate = load_audio(candidate)
        label = str(candidate)
    elif path:
        raise EmoSplatError(f"--audio {path}: no such file")
    else:  # no bundled clip: noise has the same cost as speech
        rate = 16000
        samples = np.random.default_rng(0).standard_normal(int(seconds * rate)).astype(np.float32) * 0.1
        label = "synthetic noise (bundled clip not found)"
    need = int(round(seconds * rate))
    reps = -(-need // max(len(samples), 1))
    return np.tile(samples, reps)[:need], rate, label


def setup(avatar_path: str | None, device, audio_path: str | None, seconds: float,
          with_stage2: bool = True) -> FrameBenchSetup:
    from emo_backend.audio.features import logmel_dim
    from emo_backend.avatar.bundle import load_avatar, resolve_avatar_path
    from emo_backend.avatar.prepared import prepare_avatar

    path = Path(resolve_avatar_path(avatar_path or "default"))
    avatar = load_avatar(path, device=device)
    start = time.perf_counter()
    prepared = prepare_avatar(avatar)
    prepare_s = time.perf_counter() - start
    a2et, egd, notes = _networks(avatar, path, logmel_dim(), device, with_stage2)
    samples, rate, label = _audio(audio_path, seconds)
    notes.insert(0, f"avatar {path}: {avatar.num_gaussians} Gaussians, {avatar.num_expressions} expression bases; "
                    f"prepared once per shot in {prepare_s * 1e3:.0f} ms (not counted per frame)")
    notes.append(f"audio: {label}, {seconds:g} s at {BENCH_FPS:g} fps")
    prepared_egd = None
    if egd is not None:
        from emo_backend.motion.egd_fast import prepare_egd

        prepared_egd = prepare_egd(egd, prepared.neutral_means)
    return FrameBenchSetup(avatar, prepared, a2et, egd, prepared_egd, samples, rate, notes)


def run_clip(s: FrameBenchSetup, size: int, backend: str, device, frames: int,
             chunk: int, reference: bool = False) -> tuple[StageClock, float, float]:
    """Render `frames` frames of the clip at size x size -> (stage clock, total wall s, total CPU s)."""
    import torch

    from emo_backend.audio.features import logmel_frames
    from emo_backend.avatar.gaussians import activate
    from emo_backend.motion.pipeline import AUDIO_HALF_WIDTH, add_emotional_residual, audio_windows, predict_motion
    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.prepared import evaluate_prepared
    from emo_backend.preview_render import FOV_Y_DEG, frame_avatar
    from emo_backend.render import rasterize
    from emo_backend.render.camera import intrinsics_from_fov
    from emo_backend.shot import place_gaussians

    clock = StageClock(device)
    viewmat = frame_avatar(s.prepared.neutral_means.cpu(), FOV_Y_DEG).to(device, torch.float32)
    K = intrinsics_from_fov(FOV_Y_DEG, size, size).to(device)
    matrix = torch.eye(4, device=device)
    weights = torch.zeros(frames, 8)
    weights[:, HAPPY] = 1.0
    intensity = torch.full((frames,), 0.8)
    blink = torch.zeros(frames)
    names = tuple(s.avatar.head.expr_names)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        features = clock.time("features", logmel_frames, s.samples, s.rate, BENCH_FPS, num_frames=frames)
        motion = clock.time("a2et", predict_motion, s.a2et, features, weights, intensity, blink, names)
        for start in range(0, frames, chunk):
            idx = torch.arange(start, min(frames, start + chunk))
            to = lambda t: t.to(device)  # noqa: E731
            if reference:  # the straightforward path: blendshapes.evaluate and EGD.forward
                g, posed = clock.time("blendshapes", evaluate, s.avatar, to(motion.expression_emo[idx]),
                                      to(motion.pose_emo[idx]))
                prepared, rotation, prepared_egd = None, None, None
            else:
                g, posed, rotation = clock.time("blendshapes", evaluate_prepared, s.prepared,
                                                to(motion.expression_emo[idx]), to(motion.pose_emo[idx]))
                prepared, prepared_egd = s.prepared, s.prepared_egd
            if s.egd is not None:
                g = clock.time("stage2", add_emotional_residual, s.avatar, s.egd, g, posed,
                               to(motion.expression_neu[idx]), to(motion.pose_neu[idx]), to(blink[idx]),
                               to(audio_windows(features, idx, AUDIO_HALF_WIDTH)), to(weights[idx]),
                               to(intensity[idx]), None, prepared, rotation, prepared_egd)
            for j in range(len(idx)):
                def splat(j=j):
                    a = activate(g.frame(j))
                    means, quats, scales = place_gaussians(a.means, a.quats, a.scales, matrix)
                    return rasterize(means, quats, scales, a.opacities, a.colors.clamp(0.0, 1.0), viewmat, K,
                                     size, size, backend=backend)
                clock.time("splat", splat)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock, time.perf_counter() - wall0, time.process_time() - cpu0


def bench_frame(avatar_path: str | None = None, sizes: tuple[int, ...] = (256, 512), frames: int = 50,
                repeats: int = 3, device: str | None = None, backend: str | None = None,
                audio: str | None = None, chunk: int | None = None, with_stage2: bool = True,
                reference: bool = False) -> dict:
    """Time the per-frame pipeline; print a table and return the numbers (ms per frame, fps) per size."""
    import torch

    from emo_backend.render import cuda_works, resolve_backend
    from emo_backend.shot import CHUNK_FRAMES

    dev = torch.device(device or ("cuda" if cuda_works() else "cpu"))
    if dev.type == "cuda" and not cuda_works():
        raise EmoSplatError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    backend = resolve_backend(backend or ("gsplat" if dev.type == "cuda" else "cpu"))
    chunk = chunk or CHUNK_FRAMES
    s = setup(avatar_path, dev, audio, frames / BENCH_FPS, with_stage2)
    run_clip(s, min(sizes), backend, dev, min(frames, chunk), chunk, reference)  # warm-up: numba compile, allocator, caches

    from emo_backend.render.cpu import numba_threads

    print(f"frame benchmark: device {dev}, splat backend {backend}, torch threads {torch.get_num_threads()}, "
          f"numba threads {numba_threads()}; {frames} frames in chunks of {chunk}, best and median of "
          f"{repeats} runs; disk writes excluded")
    print("  path: " + ("reference (blendshapes.evaluate, EGD.forward)" if reference else
                        "inference fast paths (avatar.prepared, motion.egd_fast)"))
    for note in s.notes:
        print(f"  {note}")
    header = f"{'image':>9} {'':>6} " + " ".join(f"{st:>11}" for st in STAGES) + f" {'total':>9} {'fps':>7}"
    print(header)
    print("-" * len(header))
    results = {}
    for size in sizes:
        runs = [run_clip(s, size, backend, dev, frames, chunk, reference) for _ in range(repeats)]
        best = min(runs, key=lambda r: r[1])
        row = {}
        for kind, pick in (("wall", lambda c: c.wall), ("cpu", lambda c: c.cpu)):
            per_stage = {st: statistics.median(pick(r[0])[st] for r in runs) / frames * 1e3 for st in STAGES}
            total = statistics.median((r[1] if kind == "wall" else r[2]) for r in runs) / frames * 1e3
            row[kind] = {**per_stage, "total": total}
        row["fps_best"] = frames / best[1]
        row["fps_median"] = frames / statistics.median(r[1] for r in runs)
        results[size] = row
        for kind in ("wall", "cpu"):
            cells = " ".join(f"{row[kind][st]:>11.2f}" for st in STAGES)
            fps = f"{row['fps_median']:>7.1f}" if kind == "wall" else f"{'':>7}"
            print(f"{f'{size}x{size}' if kind == 'wall' else '':>9} {kind + ' ms':>6} {cells} "
                  f"{row[kind]['total']:>9.2f} {fps}", flush=True)
        print(f"{'':>9} end to end: {row['fps_median']:.1f} fps median, {row['fps_best']:.1f} fps best run")
    print("ms are per frame (clip-level stages divided by the frame count); cpu ms is process CPU time over all "
          "threads. Timings depend on other load on the machine: run it on an idle one.")
    return results


# ---------------------------------------------------------------------------------------------- command line


def add_frame_arguments(parser) -> None:
    """`bench frame`'s options (an option another `bench` part already defines is shared, not redefined)."""
    options = [
        (("--frames",), dict(type=int, default=50, help="frame: frames in the timed clip (default: %(default)s)")),
        (("--runs",), dict(type=int, default=3, help="frame: timed runs of the clip per size (default: %(default)s)")),
        (("--chunk",), dict(type=int, default=None, help="frame: frames evaluated per batch (default: the shot's)")),
        (("--device",), dict(choices=("cpu", "cuda"), default=None,
                             help="frame: where to evaluate (default: cuda when it works, else cpu)")),
        (("--audio",), dict(default=None, help="frame: speech clip to drive A2ET (default: the bundled one)")),
        (("--no-stage2",), dict(action="store_true", help="frame: time stage 1 alone")),
        (("--reference",), dict(action="store_true", help="frame: time the straightforward reference path "
                                "(blendshapes.evaluate, EGD.forward) instead of the inference fast paths")),
    ]
    for flags, kwargs in options:
        if not any(f in parser._option_string_actions for f in flags):
            parser.add_argument(*flags, **kwargs)


def run_frame(args) -> int:
    """`emosplat bench frame` from parsed arguments."""
    frames, runs, chunk = getattr(args, "frames", 50), getattr(args, "runs", 3), getattr(args, "chunk", None)
    if frames < 1 or runs < 1 or (chunk is not None and chunk < 1):
        raise EmoSplatError("--frames, --runs and --chunk must be at least 1")
    sizes = tuple(getattr(args, "sizes", None) or (256, 512))
    if any(s < 16 for s in sizes):
        raise EmoSplatError("--sizes must be at least 16 pixels")
    bench_frame(getattr(args, "avatar", None), sizes, frames, runs, getattr(args, "device", None),
                None, getattr(args, "audio", None), chunk, not getattr(args, "no_stage2", False),
                getattr(args, "reference", False))
    return 0

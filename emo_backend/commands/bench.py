"""`emosplat bench`: measure speed. `render` times the splatting backends; `train` (`bench_train.py`) stage-1
training iterations per second; `frame` (`bench_frame.py`) one shot frame."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from emo_backend.errors import EmoSplatError, InvalidFileError

HELP = "measure speed: `render` (splatting backends), `train` (stage-1 iterations/s), `frame`"
DESCRIPTION = (
    "Measure speed and print a table. `bench render` times each available splat backend (median ms per frame, "
    "compile and warm-up excluded) on a synthetic head-like scene of 20k/50k/100k Gaussians at 256x256 and "
    "512x512, and on the default avatar (or --avatar PATH) when one is installed. Timings depend on other "
    "load on the machine: run it on an idle one. `bench train` prints stage-1 training iterations per second "
    "(numba and torch backends on CPU, gsplat on CUDA) on the synthetic head (20k Gaussians at 256x256 unless "
    "--counts/--sizes say otherwise) and through the trainer's own step on the default avatar, in wall-clock "
    "and CPU time."
)
WHATS = ("render", "train", "frame")
RENDER_BACKENDS = ("gsplat", "cpu", "torch", "numba")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=WHATS, help="what to measure")
    parser.add_argument("--backends", nargs="+", choices=RENDER_BACKENDS, default=None,
                        help="backends to time (render default: gsplat when CUDA works, and cpu; torch is slow "
                             "at these sizes, ask for it explicitly. train default: gsplat when CUDA works, "
                             "numba and torch)")
    parser.add_argument("--repeats", type=int, default=10, help="timed frames per cell (default: %(default)s)")
    parser.add_argument("--counts", type=int, nargs="+", default=None,
                        help="Gaussian counts of the synthetic head (render default: 20000 50000 100000; "
                             "train: 20000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="square image sizes in pixels (render default: 256 512; train: 256)")
    parser.add_argument("--threads", type=int, default=None,
                        help="numba threads for the cpu backend (default: numba's, usually all cores)")
    avatar = parser.add_mutually_exclusive_group()
    avatar.add_argument("--avatar", default=None,
                        help="also time this avatar bundle (folder or .emosplat; default: the bundled "
                             "'default' avatar when installed)")
    avatar.add_argument("--no-avatar", action="store_true", help="time the synthetic head only")
    from emo_backend.bench_frame import add_frame_arguments

    add_frame_arguments(parser)
    from emo_backend.bench_train import add_train_arguments

    add_train_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "threads", None) is not None:
        # render times the numba splatter alone; frame and train also run torch, so it gets the same count.
        set_thread_count(args.threads, torch_too=args.what != "render")
    if args.what == "frame":
        from emo_backend.bench_frame import run_frame

        return run_frame(args)
    if args.what == "train":
        from emo_backend.bench_train import run_train

        return run_train(args)
    if args.what != "render":
        raise EmoSplatError(f"`emosplat bench {args.what}` is not available yet; `emosplat bench render` is")
    args.counts = args.counts or [20_000, 50_000, 100_000]
    args.sizes = args.sizes or [256, 512]
    if args.repeats < 1:
        raise EmoSplatError(f"--repeats must be at least 1, got {args.repeats}")
    if any(n < 1 for n in args.counts) or any(s < 16 for s in args.sizes):
        raise EmoSplatError("--counts must be positive and --sizes at least 16 pixels")
    bench_render(args.backends, args.repeats, args.counts, args.sizes, args.avatar, not args.no_avatar)
    return 0


def set_thread_count(threads: int, torch_too: bool) -> None:
    """--threads for every bench: numba's (and torch's) thread count, checked against what numba allows."""
    import numba

    if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise EmoSplatError(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}, got {threads}")
    numba.set_num_threads(threads)
    if torch_too:
        import torch

        torch.set_num_threads(threads)


def _median_ms(render: Callable[[], object], repeats: int) -> float:
    render()  # warm-up: numba compile / cache load, CUDA context and allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _timer(backend: str, scene, width: int, height: int) -> Callable[[], object]:
    import torch

    from emo_backend.render import rasterize

    means, quats, scales, opacities, colors, viewmat, K = scene
    if backend == "gsplat":
        means, quats, scales, opacities, colors, viewmat, K = (t.cuda() for t in scene)

        def render():
            out = rasterize(means, quats, scales, opacities, colors, viewmat, K, width, height, backend="gsplat")
            torch.cuda.synchronize()
            return out
        return render

    def render():
        with torch.no_grad():
            return rasterize(means, quats, scales, opacities, colors, viewmat, K, width, height, backend=backend)
    return render


def _default_backends() -> list[str]:
    from emo_backend.render import cuda_works

    return (["gsplat"] if cuda_works() else []) + ["cpu"]


def _load_avatar_scene(path: str | None):
    """The avatar's neutral frame as render inputs and its framing, or (None, reason) when none can be had."""
    try:
        from emo_backend.avatar.blendshapes import evaluate
        from emo_backend.avatar.bundle import load_avatar
        from emo_backend.avatar.gaussians import activate
    except ImportError as err:
        if path is not None:
            raise EmoSplatError(f"--avatar needs the avatar loader, which this install lacks ({err})") from err
        return None, f"avatar loader not available ({err})"
    import torch

    try:
        avatar = load_avatar(path or "default")
    except InvalidFileError as err:
        if path is not None:
            raise
        return None, str(err)
    expression = torch.zeros(1, avatar.num_expressions)
    pose = torch.zeros(1, avatar.skin_weights.shape[1], 3)

    def evaluate_frame():
        with torch.no_grad():
            gaussians, _ = evaluate(avatar, expression, pose)
            return activate(gaussians.frame(0))
    return (avatar, evaluate_frame), None


def _avatar_camera(means, width: int, height: int):
    """Camera on +Z (facing the avatar's face) with the avatar's height filling 85% of the frame."""
    import torch

    from emo_backend.render.bench_scene import head_camera

    lo, hi = means.min(0).values, means.max(0).values
    centre = (lo + hi) / 2
    viewmat, K = head_camera(width, height, head_height=float(hi[1] - lo[1]))
    # head_camera looks at the origin; shift the world so the avatar's box centre sits there
    viewmat = viewmat.clone()
    viewmat[:3, 3] -= viewmat[:3, :3] @ centre
    # keep the whole avatar in front of the near plane even if it is deep
    if float(viewmat[2, 3]) - float((hi - lo)[2]) / 2 < 0.05:
        raise EmoSplatError("the avatar is too large to frame for the benchmark")
    return viewmat, K


def bench_render(backends: list[str] | None, repeats: int, counts: list[int], sizes: list[int],
                 avatar_path: str | None, with_avatar: bool = True) -> None:
    from emo_backend.render import resolve_backend
    from emo_backend.render.bench_scene import head_scene
    from emo_backend.render.cpu import numba_threads, threading_layer

    backends = list(backends or _default_backends())
    for name in backends:
        resolve_backend(name)  # a clear DeviceError for gsplat without CUDA
    loaded, reason = _load_avatar_scene(avatar_path) if with_avatar else (None, None)  # fail before timing
    if "cpu" in backends:  # compile (or load from numba's cache) and start the thread pool before timing
        tiny = head_scene(100, 32, 32)
        _timer("cpu", tiny[:7], 32, 32)()
    print(f"render benchmark: median ms/frame over {repeats} frames after a warm-up (compile excluded); "
          f"numba threads: {numba_threads()}, threading layer: {threading_layer()}")
    print("synthetic head: Gaussians on a 0.24 x 0.30 m ellipsoid shell, scales 1-3 mm, opacities 0.3-1, "
          "head filling 85% of the frame height")
    header = f"{'gaussians':>10} {'image':>9} " + " ".join(f"{b:>9}" for b in backends)
    print(header)
    print("-" * len(header))
    for n in counts:
        for size in sizes:
            scene = head_scene(n, size, size)[:7]
            cells = [_median_ms(_timer(b, scene, size, size), repeats) for b in backends]
            print(f"{n:>10} {f'{size}x{size}':>9} " + " ".join(f"{ms:>9.2f}" for ms in cells), flush=True)

    if not with_avatar:
        return
    if loaded is None:
        print(f"avatar: skipped: {reason}")
        return
    avatar, evaluate_frame = loaded
    g = evaluate_frame()
    label = avatar_path or "default"
    print(f"avatar {label}: {g.means.shape[0]} Gaussians; blendshapes + skinning "
          f"{_median_ms(evaluate_frame, repeats):.2f} ms/frame")
    for size in sizes:
        viewmat, K = _avatar_camera(g.means, size, size)
        scene = (g.means, g.quats, g.scales, g.opacities, g.colors, viewmat, K)
        cells = [_median_ms(_timer(b, scene, size, size), repeats) for b in backends]
        print(f"{'avatar':>10} {f'{size}x{size}':>9} " + " ".join(f"{ms:>9.2f}" for ms in cells), flush=True)

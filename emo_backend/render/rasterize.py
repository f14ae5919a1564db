"""The one splatting entry point: `rasterize(...)`, three backends with identical semantics.

Arguments mean what they mean in `gsplat.rasterization` (activated values: unit or
non-unit wxyz quats, linear scales, opacities in [0, 1]); one camera, RGB colours.

Backends:
  "gsplat"  CUDA via gsplat (packed=False, classic mode, "RGB+ED").
  "cpu"     the numba tile renderer (`cpu.py`), float32, no autograd: previews and final frames.
  "torch"   pure torch (`torch_raster.py`), any dtype, differentiable.
  "numba"   the cpu forward with a numba backward (`numba_autograd.py`), float32, differentiable:
            CPU training. Exactly the cpu backend's images.
  "auto"    gsplat when CUDA works, else cpu.
Depth is camera-space z of the blend, sum(w_i z_i) / alpha where alpha > 0, else 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from emo_backend.errors import DeviceError, EmoSplatError
from emo_backend.render.constants import EPS2D, FAR_PLANE, NEAR_PLANE, TILE_SIZE

Backend = Literal["auto", "gsplat", "cpu", "torch", "numba"]
BACKENDS = ("auto", "gsplat", "cpu", "torch", "numba")


def cuda_works() -> bool:
    try:
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:
        return False


def resolve_backend(backend: str) -> str:
    """'auto' -> the backend that will run; checks the requested one can."""
    if backend not in BACKENDS:
        raise EmoSplatError(f"unknown render backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "gsplat" if cuda_works() else "cpu"
    if backend == "gsplat" and not cuda_works():
        raise DeviceError(
            "render backend 'gsplat' needs a CUDA GPU, and torch sees none here; "
            "use backend 'cpu' (or 'auto'), or run on a machine with an NVIDIA GPU and a CUDA build of torch"
        )
    return backend


def _check_inputs(means, quats, scales, opacities, colors, viewmat, K, width, height, background) -> int:
    n = means.shape[0] if means.dim() == 2 else -1
    expected = {"means": (means, (n, 3)), "quats": (quats, (n, 4)), "scales": (scales, (n, 3)),
                "opacities": (opacities, (n,)), "colors": (colors, (n, 3)), "viewmat": (viewmat, (4, 4)),
                "K": (K, (3, 3))}
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise EmoSplatError(f"rasterize: {name} has shape {tuple(tensor.shape)}, expected {shape} "
                                f"(N = {n} Gaussians from means [N, 3])")
    if background is not None and tuple(background.shape) != (3,):
        raise EmoSplatError(f"rasterize: background has shape {tuple(background.shape)}, expected (3,)")
    if int(width) <= 0 or int(height) <= 0:
        raise EmoSplatError(f"rasterize: image size {width}x{height} must be positive")
    return n


def rasterize(
    means: Tensor,      # [N, 3] world
    quats: Tensor,      # [N, 4] wxyz
    scales: Tensor,     # [N, 3] linear
    opacities: Tensor,  # [N] in [0, 1]
    colors: Tensor,     # [N, 3]
    viewmat: Tensor,    # [4, 4] world-to-camera (OpenCV)
    K: Tensor,          # [3, 3] pixels
    width: int,
    height: int,
    backend: Backend = "auto",
    background: Tensor | None = None,  # [3]
) -> tuple[Tensor, Tensor, Tensor]:
    """Splat Gaussians -> rgb [H, W, 3], alpha [H, W, 1], depth [H, W, 1] (camera z; 0 where alpha is 0).

    Results are on `means.device` (float32; the torch backend keeps means' dtype).
    """
    viewmat, K = torch.as_tensor(viewmat), torch.as_tensor(K)
    if background is not None:
        background = torch.as_tensor(background)
    _check_inputs(means, quats, scales, opacities, colors, viewmat, K, width, height, background)
    width, height = int(width), int(height)
    name = resolve_backend(backend)
    if name == "torch":
        return _torch(means, quats, scales, opacities, colors, viewmat, K, width, height, background)
    if name == "numba":
        from emo_backend.render.numba_autograd import rasterize_numba

        return rasterize_numba(means, quats, scales, opacities, colors, viewmat, K, width, height, background)
    if name == "cpu":
        return _cpu(means, quats, scales, opacities, colors, viewmat, K, width, height, background)
    return _gsplat(means, quats, scales, opacities, colors, viewmat, K, width, height, background)


def _torch(means, quats, scales, opacities, colors, viewmat, K, width, height, background):
    from emo_backend.render.torch_raster import rasterize_torch

    return rasterize_torch(means, quats, scales, opacities, colors, viewmat, K, width, height, background)


def _cpu(means, quats, scales, opacities, colors, viewmat, K, width, height, background):
    from emo_backend.render.cpu import render_cpu_state

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    state = render_cpu_state(arr(means), arr(quats), arr(scales), arr(opacities), arr(colors),
                             viewmat.detach().to("cpu", torch.float64).numpy(),
                             K.detach().to("cpu", torch.float64).numpy(), width, height,
                             None if background is None else arr(background))
    out = (torch.from_numpy(state.rgb), torch.from_numpy(state.alpha)[..., None], torch.from_numpy(state.depth)[..., None])
    return tuple(t.to(means.device) for t in out)


def _gsplat(means, quats, scales, opacities, colors, viewmat, K, width, height, background):
    try:
        from gsplat import rasterization
    except (ImportError, OSError) as err:
        raise DeviceError(f"the gsplat CUDA renderer cannot be loaded ({err}); use backend 'cpu'") from err

    device = means.device if means.device.type == "cuda" else torch.device("cuda")
    f = lambda t: t.to(device, torch.float32)  # noqa: E731
    try:
        return _gsplat_call(rasterization, f, means, quats, scales, opacities, colors, viewmat, K, width, height,
                            background)
    except torch.cuda.OutOfMemoryError as err:
        raise DeviceError(f"CUDA ran out of memory splatting {means.shape[0]} Gaussians at {width}x{height}; "
                          "close other GPU work, lower the resolution, or use backend 'cpu'") from err


def _gsplat_call(rasterization, f, means, quats, scales, opacities, colors, viewmat, K, width, height, background):
    renders, alphas, _ = rasterization(
        f(means), f(quats), f(scales), f(opacities), f(colors), f(viewmat)[None], f(K)[None], width, height,
        near_plane=NEAR_PLANE, far_plane=FAR_PLANE, eps2d=EPS2D, packed=False, tile_size=TILE_SIZE,
        backgrounds=None if background is None else f(background)[None], render_mode="RGB+ED",
        rasterize_mode="classic",
    )
    rgb, depth, alpha = renders[0, ..., :3], renders[0, ..., 3:4], alphas[0]
    depth = torch.where(alpha > 0, depth, torch.zeros_like(depth))
    return rgb.to(means.device), alpha.to(means.device), depth.to(means.device)

"""The differentiable CPU renderer: the numba forward and backward behind one `torch.autograd.Function`.

Forward: `render_cpu_state` (exactly `rasterize(backend="cpu")`'s output). Backward:
`cpu_backward.rasterize_backward` gives the gradients wrt each visible Gaussian's 2D mean,
conic, depth, opacity and colour; `cpu_backward.project_backward` carries them through the
EWA projection to means, quats and scales (the camera is fixed).

Gradients flow from rgb, alpha and depth, to means, quats, scales, opacities, colours
and the background; viewmat and K get none. Computation is float32 whatever the input
dtype (like the cpu backend); gradients are returned in the inputs' dtypes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from emo_backend.render.cpu import render_cpu_state


def _np32(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class NumbaRasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, colors, background, viewmat, K, width, height):
        state = render_cpu_state(_np32(means), _np32(quats), _np32(scales), _np32(opacities), _np32(colors),
                                 viewmat.detach().to("cpu", torch.float64).numpy(),
                                 K.detach().to("cpu", torch.float64).numpy(), width, height,
                                 None if background is None else _np32(background))
        ctx.state = state
        ctx.camera = (viewmat.detach(), K.detach(), width, height)
        ctx.has_background = background is not None
        ctx.save_for_backward(means, quats, scales, opacities, colors, background)
        device = means.device
        rgb = torch.from_numpy(state.rgb).to(device)
        alpha = torch.from_numpy(state.alpha)[..., None].to(device)
        depth = torch.from_numpy(state.depth)[..., None].to(device)
        return rgb, alpha, depth

    @staticmethod
    def backward(ctx, grad_rgb, grad_alpha, grad_depth):
        from emo_backend.render.cpu_backward import rasterize_backward

        means, quats, scales, opacities, colors, background = ctx.saved_tensors
        state = ctx.state
        viewmat, K, width, height = ctx.camera
        grads, grad_bg = rasterize_backward(
            state,
            _np32(grad_rgb) if grad_rgb is not None else np.zeros(state.rgb.shape, np.float32),
            _np32(grad_alpha)[..., 0] if grad_alpha is not None else np.zeros(state.alpha.shape, np.float32),
            None if grad_depth is None else _np32(grad_depth)[..., 0],
            None if background is None else _np32(background),
        )
        device = means.device
        g_means = g_quats = g_scales = None
        if any(ctx.needs_input_grad[:3]):
            from emo_backend.render.cpu_backward import project_backward

            geometry = project_backward(_np32(means), _np32(quats), _np32(scales), state.order,
                                        viewmat.to("cpu", torch.float64).numpy(),
                                        K.to("cpu", torch.float64).numpy(), width, height, grads)
            g_means, g_quats, g_scales = (torch.from_numpy(g).to(device, src.dtype)
                                          for g, src in zip(geometry, (means, quats, scales)))
        g_opacities = torch.from_numpy(grads.opacities).to(device, opacities.dtype) if ctx.needs_input_grad[3] else None
        g_colors = torch.from_numpy(grads.colors).to(device, colors.dtype) if ctx.needs_input_grad[4] else None
        g_background = None
        if ctx.has_background and ctx.needs_input_grad[5]:
            g_background = torch.from_numpy(grad_bg).to(device, background.dtype)
        return (g_means if ctx.needs_input_grad[0] else None, g_quats if ctx.needs_input_grad[1] else None,
                g_scales if ctx.needs_input_grad[2] else None, g_opacities, g_colors, g_background,
                None, None, None, None)


def rasterize_numba(
    means: Tensor,      # [N, 3]
    quats: Tensor,      # [N, 4] wxyz
    scales: Tensor,     # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,     # [N, 3]
    viewmat: Tensor,    # [4, 4]
    K: Tensor,          # [3, 3]
    width: int,
    height: int,
    background: Tensor | None = None,  # [3]
) -> tuple[Tensor, Tensor, Tensor]:
    """-> rgb [H, W, 3], alpha [H, W, 1], depth [H, W, 1] float32 (the cpu backend's), differentiable."""
    return NumbaRasterize.apply(means, quats, scales, opacities, colors, background, viewmat, K, int(width),
                                int(height))

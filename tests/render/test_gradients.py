"""The torch backend is differentiable: gradcheck in float64 on a tiny scene."""

from __future__ import annotations

import torch

from emo_backend.render import rasterize
from render_scenes import random_scene

W, H = 20, 18  # two tiles across, two down: Gaussians span tile borders


def _tiny_scene():
    means, quats, scales, opacities, colors, viewmat, K = random_scene(6, W, H, 11, dtype=torch.float64)
    means = means[1:]  # the first one is placed behind the camera
    opacities = 0.2 + 0.6 * opacities[1:]  # well inside (1/255, 0.999): no clamps, T never reaches 1e-4
    return means, quats[1:], scales[1:] * 2, opacities, colors[1:], viewmat, K


def test_torch_backend_gradcheck():
    means, quats, scales, opacities, colors, viewmat, K = _tiny_scene()
    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors))

    def render(*params):
        rgb, alpha, depth = rasterize(*params, viewmat, K, W, H, backend="torch")
        return rgb, alpha, depth

    with torch.no_grad():
        _, alpha, _ = render(*inputs)
    assert 0.1 < alpha.mean() < 0.99
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradients_reach_every_parameter():
    means, quats, scales, opacities, colors, viewmat, K = _tiny_scene()
    inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors)]
    rgb, alpha, depth = rasterize(*inputs, viewmat, K, W, H, backend="torch", background=torch.tensor([0.1, 0.2, 0.3]))
    (rgb.square().sum() + alpha.sum() + 0.1 * depth.sum()).backward()
    for name, t in zip(("means", "quats", "scales", "opacities", "colors"), inputs):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, name

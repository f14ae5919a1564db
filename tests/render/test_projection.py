"""Projection against gsplat's own pure-torch reference (`gsplat.cuda._torch_impl`, runs on CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

from emo_backend.render.constants import ALPHA_THRESHOLD
from emo_backend.render.cpu import render_cpu_state
from emo_backend.render.projection import project_gaussians
from render_scenes import random_scene

W, H = 97, 71


def gsplat_reference(means, quats, scales, viewmat, K):
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmat[None], K[None], W, H)
    return radii[0], means2d[0], depths[0], conics[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_projection_matches_gsplat_reference(seed):
    means, quats, scales, opacities, _, viewmat, K = random_scene(400, W, H, seed, dtype=torch.float64)
    radii, means2d, depths, conics = gsplat_reference(means, quats, scales, viewmat, K)
    ours = project_gaussians(means, quats, scales, opacities, viewmat, K, W, H, radius_mode="fixed")
    visible = (radii > 0).all(-1)
    assert visible.sum() > 100 and (~visible).sum() > 10  # the scene exercises both
    assert torch.equal(ours.radii, radii.to(torch.int32))
    torch.testing.assert_close(ours.means2d[visible], means2d[visible], atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.conics[visible], conics[visible], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.depths, depths, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_numba_projection_matches_gsplat_reference(seed):
    means, quats, scales, opacities, colors, viewmat, K = random_scene(400, W, H, seed, dtype=torch.float64)
    radii, means2d, depths, conics = gsplat_reference(means, quats, scales, viewmat, K)
    arr = lambda t: t.numpy()  # noqa: E731
    state = render_cpu_state(*map(arr, (means, quats, scales, opacities, colors, viewmat, K)), W, H,
                             opacity_radius=False)
    visible = (radii > 0).all(-1).numpy()
    np.testing.assert_array_equal(state.radii, radii.numpy())
    np.testing.assert_allclose(state.means2d[visible], means2d[visible].numpy(), atol=1e-4, rtol=0)
    # float32 inputs and outputs: relative to the conic's size (the off-diagonal can be near 0)
    ref_conics = conics[visible].numpy()
    scale = np.abs(ref_conics[:, [0, 2]]).max(1, keepdims=True)
    assert (np.abs(state.conics[visible] - ref_conics) <= 2e-6 * scale).all()
    np.testing.assert_allclose(state.depths, depths.numpy(), rtol=1e-6)


def test_opacity_aware_radius():
    """The box reaches where opacity * exp(-power) = 1/255 (gsplat 1.5 with opacities), faint ones culled."""
    means, quats, scales, opacities, colors, viewmat, K = random_scene(400, W, H, 2, dtype=torch.float64)
    fixed = project_gaussians(means, quats, scales, opacities, viewmat, K, W, H, radius_mode="fixed")
    ours = project_gaussians(means, quats, scales, opacities, viewmat, K, W, H, radius_mode="opacity")
    cov_xx = fixed.conics[:, 2] / (fixed.conics[:, 0] * fixed.conics[:, 2] - fixed.conics[:, 1] ** 2)
    extent = torch.sqrt(2 * torch.log(opacities.clamp(min=ALPHA_THRESHOLD) * 255)).clamp(max=3.33)
    expected_x = torch.ceil(extent * cov_xx.sqrt()).to(torch.int32)
    keep = (ours.radii > 0).all(-1)
    assert torch.equal(ours.radii[keep, 0], expected_x[keep])
    assert not keep[opacities < ALPHA_THRESHOLD].any()
    assert (ours.radii <= fixed.radii).all() and (ours.radii < fixed.radii).any()
    state = render_cpu_state(*(t.numpy() for t in (means, quats, scales, opacities, colors, viewmat, K)), W, H)
    np.testing.assert_array_equal(state.radii, ours.radii.numpy())

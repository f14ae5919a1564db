"""The gsplat (CUDA) backend against the same reference as the CPU renderers, and against the numba one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emo_backend.render import rasterize
from emo_backend.render.bench_scene import head_scene
from emo_backend.render.reference import reference_render
from render_scenes import random_scene

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("n,width,height,seed", [(300, 61, 45, 0), (1500, 40, 33, 2)])
def test_gsplat_matches_reference(n, width, height, seed):
    scene = random_scene(n, width, height, seed)
    background = torch.tensor([0.3, 0.1, 0.7])
    rgb_r, alpha_r, depth_r, ambiguous = reference_render(*(t.double().numpy() for t in scene), width, height,
                                                          background.double().numpy(), return_ambiguous=True)
    rgb, alpha, depth = (t.cpu().double().numpy() for t in
                         rasterize(*(t.cuda() for t in scene), width, height, backend="gsplat",
                                   background=background.cuda()))
    exact = ~ambiguous
    assert ambiguous.mean() < 0.005
    # gsplat evaluates exp with CUDA's fast __expf: allow it slightly more than the 1e-4 of the CPU renderers
    assert np.abs(rgb - rgb_r)[exact].max() <= 2e-4
    assert np.abs(alpha - alpha_r)[exact].max() <= 2e-4
    solid = (alpha_r[..., 0] > 0.05) & exact
    assert np.abs(depth - depth_r)[solid].max() <= 1e-3 * np.abs(depth_r[solid]).max()
    assert (depth[alpha_r == 0] == 0).all()


def test_gsplat_matches_cpu_on_head_scene():
    scene = head_scene(20000, 256, 256)
    gpu = rasterize(*scene[:7], 256, 256, backend="gsplat")
    cpu = rasterize(*scene[:7], 256, 256, backend="cpu")
    for name, g, c in zip(("rgb", "alpha", "depth"), gpu, cpu):
        diff = (g.cpu() - c).abs()
        # a handful of pixels may flip a threshold decision in float32; nearly all agree to 1e-4
        assert (diff <= 1e-4 * max(1.0, c.abs().max().item())).float().mean() > 0.995, name
        assert diff.max() < 0.05, name

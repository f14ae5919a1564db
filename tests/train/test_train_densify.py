"""Density control over plain tensors: clone, split on the same triangle, prune, and Adam state surgery."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from emo_backend.avatar.binding import bound_positions
from emo_backend.render.camera import intrinsics_from_fov, look_at, project_points
from emo_backend.train.densify import (
    DensifyConfig,
    DensityStats,
    densify_and_prune,
    prune_mask_only,
    rebind_to_triangles,
    screen_space_gradients,
)

VERTS = torch.tensor([[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0, 0.1, 0]], dtype=torch.float32)
FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])
DIMS = {"delta_means": 1, "delta_colors": 1}


def _problem():
    """Five Gaussians: 0 small+hot (clone), 1 big+hot (split), 2 transparent (prune), 3 idle, 4 huge (prune)."""
    n = 5
    log_scales = torch.log(torch.tensor([0.002, 0.02, 0.002, 0.002, 0.3]))[:, None].expand(n, 3).clone()
    params = {
        "offsets": nn.Parameter(torch.tensor([[0.0, 0, 0.001]] * n)),
        "quats": nn.Parameter(torch.tensor([[1.0, 0, 0, 0]] * n)),
        "log_scales": nn.Parameter(log_scales),
        "opacity_logits": nn.Parameter(torch.tensor([2.0, 2.0, -10.0, 2.0, 2.0])),
        "colors": nn.Parameter(torch.arange(n, dtype=torch.float32)[:, None].expand(n, 3).clone()),  # row tags
        "delta_means": nn.Parameter(torch.arange(n, dtype=torch.float32)[None, :, None].expand(2, n, 3).clone()),
        "delta_colors": nn.Parameter(torch.zeros(2, n, 3)),
    }
    buffers = {"face_ids": torch.tensor([0, 1, 0, 1, 0]), "bary": torch.full((n, 3), 1 / 3),
               "parts": torch.zeros(n, dtype=torch.long)}
    opt = torch.optim.Adam([{"params": [p], "name": k} for k, p in params.items()], lr=1e-3)
    for p in params.values():
        p.grad = torch.ones_like(p) * 0.5
    opt.step()
    stats = DensityStats.zeros(n)
    stats.add(torch.tensor([[1e-3, 0], [0, 1e-3], [0, 0], [1e-6, 0], [0, 0]]), torch.ones(n, dtype=torch.bool),
              torch.tensor([3.0, 5, 1, 1, 40]))
    return params, buffers, opt, stats


def test_clone_split_prune_and_optimizer_state():
    params, buffers, opt, stats = _problem()
    old_avg = {k: opt.state[p]["exp_avg"].clone() for k, p in params.items()}
    old_parent_mean = bound_positions(VERTS, FACES, buffers["face_ids"][1:2], buffers["bary"][1:2],
                                      params["offsets"].detach()[1:2])
    cfg = DensifyConfig(grad_threshold=5e-4, percent_dense=0.05, min_opacity=0.005, max_world_scale=1.0)
    res = densify_and_prune(params, buffers, opt, stats, VERTS, FACES, extent=0.2, config=cfg, gaussian_dims=DIMS,
                            generator=torch.Generator().manual_seed(0))
    assert (res.cloned, res.split) == (1, 1)
    assert res.pruned == 2  # the transparent one and the huge one
    tags = res.params["colors"][:, 0].round().tolist()  # (one Adam step moved them by 1e-3)
    assert tags == [0.0, 3.0, 0.0, 1.0, 1.0]  # survivors 0 and 3, the clone of 0, two children of 1
    assert res.count == 5 and res.stats.grad_sum.shape == (5,) and float(res.stats.count.sum()) == 0

    # Blendshape deltas follow their Gaussians along axis 1; bindings follow along axis 0.
    assert res.params["delta_means"][0, :, 0].round().tolist() == tags
    assert res.buffers["face_ids"].tolist() == [0, 1, 0, 1, 1]
    # Split children: smaller by 1.6, on the parent's triangle, near the parent (within a few sigma).
    assert torch.allclose(res.params["log_scales"][3:], params["log_scales"][1].detach() - math.log(1.6))
    bary = res.buffers["bary"][3:]
    assert (bary >= 0).all() and torch.allclose(bary.sum(-1), torch.ones(2))
    child_means = bound_positions(VERTS, FACES, res.buffers["face_ids"][3:], bary, res.params["offsets"][3:].detach())
    assert ((child_means - old_parent_mean).norm(dim=-1) < 4 * 0.02 * math.sqrt(3)).all()
    assert not torch.allclose(child_means[0], child_means[1])
    # The clone is an exact copy.
    assert torch.equal(res.params["offsets"][2], params["offsets"][0].detach())

    # Adam: the optimizer now holds the new tensors; survivors keep their moments, new Gaussians start at zero.
    held = {g["name"]: g["params"][0] for g in opt.param_groups}
    for name, p in res.params.items():
        assert held[name] is p
        avg = opt.state[p]["exp_avg"]
        gdim = DIMS.get(name, 0)
        rows = avg.movedim(gdim, 0)
        old_rows = old_avg[name].movedim(gdim, 0)
        assert torch.equal(rows[0], old_rows[0]) and torch.equal(rows[1], old_rows[3])
        assert rows[2:].abs().sum() == 0
    for p in res.params.values():
        p.grad = torch.ones_like(p)
    opt.step()  # the surgery left a usable optimizer


def test_prune_only_and_keep_mask():
    params, buffers, opt, stats = _problem()
    res = densify_and_prune(params, buffers, opt, stats, VERTS, FACES, extent=0.2,
                            config=DensifyConfig(grad_threshold=5e-4, max_world_scale=1.0), gaussian_dims=DIMS,
                            densify=False)
    assert (res.cloned, res.split, res.count) == (0, 0, 3)
    params2, buffers2 = prune_mask_only(res.params, res.buffers, opt, torch.tensor([True, False, True]), DIMS)
    assert params2["colors"][:, 0].round().tolist() == [0.0, 3.0]
    assert params2["delta_means"].shape == (2, 2, 3) and buffers2["face_ids"].tolist() == [0, 1]


def test_rebind_roundtrip_stays_on_the_triangle():
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(50, 3, generator=gen) * 0.14 - 0.02  # some project outside their triangle
    fids = torch.randint(0, 2, (50,), generator=gen)
    bary, offsets = rebind_to_triangles(pts, fids, VERTS, FACES)
    assert (bary >= 0).all() and torch.allclose(bary.sum(-1), torch.ones(50))
    assert torch.allclose(bound_positions(VERTS, FACES, fids, bary, offsets), pts, atol=1e-6)


def test_screen_space_gradient_recovers_the_projected_gradient():
    gen = torch.Generator().manual_seed(1)
    means = (torch.rand(20, 3, generator=gen) - 0.5) * 0.2
    K = intrinsics_from_fov(30.0, 64, 48)
    view = look_at(torch.tensor([0.1, 0.05, 0.6]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    weights = torch.randn(20, 2, generator=gen)
    m = means.clone().requires_grad_()
    pixels, _ = project_points(m, view, K)
    (pixels * weights).sum().backward()  # a loss that depends on the projected means only
    got = screen_space_gradients(m.grad, means, view, K, 64, 48)
    torch.testing.assert_close(got, weights * torch.tensor([32.0, 24.0]), rtol=1e-4, atol=1e-4)


def test_stats_accumulate_only_visible():
    stats = DensityStats.zeros(3)
    stats.add(torch.tensor([[3.0, 4.0], [1.0, 0.0], [9.0, 9.0]]), torch.tensor([True, True, False]), torch.tensor([2.0, 7, 9]))
    stats.add(torch.tensor([[0.0, 1.0], [1.0, 0.0], [9.0, 9.0]]), torch.tensor([True, False, False]), torch.tensor([5.0, 1, 9]))
    assert stats.average().tolist() == pytest.approx([3.0, 1.0, 0.0])
    assert stats.max_radius.tolist() == [5.0, 7.0, 0.0]

"""cpu (numba) and torch backends against the brute-force float64 reference, plus depth/background semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emo_backend.errors import DeviceError, EmoSplatError
from emo_backend.render import cuda_works, rasterize, resolve_backend
from emo_backend.render.cpu import render_cpu_state
from emo_backend.render.reference import reference_render
from render_scenes import camera_for, random_scene

TOL = 1e-4


def _ref(scene, width, height, background=None):
    return reference_render(*(t.double().numpy() for t in scene), width, height,
                            None if background is None else background.double().numpy(), return_ambiguous=True)


def _check_against_reference(out, ref, tol=TOL):
    """Max abs difference <= tol on RGB and alpha, except at the (few) pixels where a cut-off decision
    was within float32 noise of its threshold in the reference: there float32 may go either way."""
    rgb, alpha, depth = (t.detach().double().numpy() for t in out)
    ref_rgb, ref_alpha, ref_depth, ambiguous = ref
    assert rgb.shape == ref_rgb.shape and alpha.shape == ref_alpha.shape and depth.shape == ref_depth.shape
    assert ambiguous.mean() < 0.005
    exact = ~ambiguous
    assert np.abs(rgb - ref_rgb)[exact].max() <= tol
    assert np.abs(alpha - ref_alpha)[exact].max() <= tol
    # depth = sum(w z) / alpha: compare where alpha is not tiny (division amplifies float32 noise)
    solid = (ref_alpha[..., 0] > 0.05) & exact
    assert np.abs(depth - ref_depth)[solid].max() <= 1e-4 * np.abs(ref_depth[solid]).max()
    assert (depth[ref_alpha == 0] == 0).all()


# image sizes that are not multiples of the 16-pixel tile, and a dense one where pixels saturate
CASES = [(300, 61, 45, 0), (600, 80, 64, 1), (1500, 40, 33, 2)]


@pytest.mark.parametrize("n,width,height,seed", CASES)
@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_backend_matches_dense_reference(backend, n, width, height, seed):
    scene = random_scene(n, width, height, seed)
    ref = _ref(scene, width, height)
    assert 0.05 < ref[1].mean() and (ref[1] > 0.998).any()  # partly covered, some pixels stop early
    out = rasterize(*scene, width, height, backend=backend)
    assert all(t.dtype == torch.float32 for t in out)
    _check_against_reference(out, ref)


def test_torch_backend_float64_matches_reference_tightly():
    scene = random_scene(300, 48, 40, 5, dtype=torch.float64)
    out = rasterize(*scene, 48, 40, backend="torch")
    assert out[0].dtype == torch.float64
    _check_against_reference(out, _ref(scene, 48, 40), tol=1e-9)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_background(backend):
    scene = random_scene(200, 50, 38, 7)
    background = torch.tensor([0.2, 0.5, 0.9])
    plain = rasterize(*scene, 50, 38, backend=backend)
    over = rasterize(*scene, 50, 38, backend=backend, background=background)
    torch.testing.assert_close(over[0], plain[0] + (1 - plain[1]) * background, atol=1e-6, rtol=0)
    torch.testing.assert_close(over[1], plain[1])
    torch.testing.assert_close(over[2], plain[2])
    _check_against_reference(over, _ref(scene, 50, 38, background))


def _two_plates(z_front: float, z_back: float, opacity_front: float):
    """Two big, flat, camera-facing Gaussians on the optical axis of a camera at the origin."""
    means = torch.tensor([[0.0, 0.0, z_back], [0.0, 0.0, z_front]])  # back one first: order must not matter
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2)
    scales = torch.tensor([[0.5, 0.5, 1e-4], [0.5, 0.5, 1e-4]])
    opacities = torch.tensor([0.9, opacity_front])
    colors = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    K = torch.tensor([[20.0, 0.0, 16.5], [0.0, 20.0, 16.5], [0.0, 0.0, 1.0]])  # axis at pixel (16, 16)'s centre
    return means, quats, scales, opacities, colors, torch.eye(4), K


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_depth_is_alpha_normalised_camera_z(backend):
    # one Gaussian: depth is exactly its camera z wherever it shows, 0 where nothing does
    means, quats, scales, opacities, colors, viewmat, K = _two_plates(2.0, 3.0, 0.5)
    viewmat = viewmat.clone()
    viewmat[2, 3] = 0.5  # camera z = world z + 0.5
    rgb, alpha, depth = rasterize(means[1:], quats[1:], scales[1:], opacities[1:], colors[1:], viewmat, K, 32, 32,
                                  backend=backend)
    shown = alpha[..., 0] > 0
    assert shown.any() and (~shown).any()
    torch.testing.assert_close(depth[shown], torch.full_like(depth[shown], 2.5), rtol=1e-4, atol=0)
    assert (depth[~shown] == 0).all()
    # two: at the centre, front (o=0.5) over back (o=0.9): weights 0.5 and 0.5*0.9
    rgb, alpha, depth = rasterize(means, quats, scales, opacities, colors, torch.eye(4), K, 32, 32, backend=backend)
    w_front, w_back = 0.5, 0.5 * 0.9
    centre = (16, 16)  # on the axis: power 0, alpha = opacity
    expected = (w_front * 2.0 + w_back * 3.0) / (w_front + w_back)
    assert abs(alpha[centre].item() - (w_front + w_back)) < 1e-6
    assert abs(depth[centre].item() - expected) < 1e-5
    assert abs(rgb[centre][0].item() - w_front) < 1e-6 and abs(rgb[centre][2].item() - w_back) < 1e-6


def test_cpu_state_tile_lists_are_front_to_back():
    scene = random_scene(300, 61, 45, 0)
    state = render_cpu_state(*(t.numpy() for t in scene), 61, 45)
    assert state.tiles_x == 4 and state.tiles_y == 3 and len(state.tile_offsets) == 13
    for t in range(12):
        ids = state.tile_ids[state.tile_offsets[t]:state.tile_offsets[t + 1]]
        assert (np.diff(state.depths[ids]) >= 0).all()
        assert (state.radii[ids] > 0).any(-1).all()
    assert state.last_ids.max() < len(state.tile_ids) and state.last_ids.min() >= -1


def test_empty_and_culled_scenes():
    viewmat, K = camera_for(20, 20)
    for n in (0, 3):
        means = torch.zeros(n, 3)
        means[:, 2] = -5  # behind the camera
        scene = (means, torch.tensor([[1.0, 0, 0, 0]] * n).reshape(n, 4), torch.full((n, 3), 0.1), torch.ones(n),
                 torch.ones(n, 3), viewmat, K)
        for backend in ("cpu", "torch"):
            rgb, alpha, depth = rasterize(*scene, 20, 20, backend=backend, background=torch.ones(3))
            assert (rgb == 1).all() and (alpha == 0).all() and (depth == 0).all()


def test_bad_inputs_and_backends():
    scene = list(random_scene(10, 16, 16, 0))
    with pytest.raises(EmoSplatError, match="quats"):
        rasterize(scene[0], scene[1][:, :3], *scene[2:], 16, 16, backend="cpu")
    with pytest.raises(EmoSplatError, match="unknown render backend"):
        rasterize(*scene, 16, 16, backend="vulkan")
    if cuda_works():
        assert resolve_backend("auto") == "gsplat"
    else:
        assert resolve_backend("auto") == "cpu"
        with pytest.raises(DeviceError, match="CUDA"):
            rasterize(*scene, 16, 16, backend="gsplat")


def test_gsplat_call_arguments_and_channels():
    """Without a GPU: the gsplat wrapper asks for gsplat's depth semantics and splits its channels right."""
    from emo_backend.render.rasterize import _gsplat_call

    seen = {}

    def fake_rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kw):
        seen.update(kw, viewmats=viewmats.shape, Ks=Ks.shape, width=width, height=height)
        renders = torch.arange(height * width * 4, dtype=torch.float32).reshape(1, height, width, 4)
        alphas = torch.full((1, height, width, 1), 0.5)
        alphas[0, 0, 0, 0] = 0.0
        return renders, alphas, {}

    scene = random_scene(5, 6, 4, 0)
    rgb, alpha, depth = _gsplat_call(fake_rasterization, lambda t: t.float(), *scene, 6, 4, torch.ones(3))
    assert seen["packed"] is False and seen["render_mode"] == "RGB+ED" and seen["rasterize_mode"] == "classic"
    assert seen["eps2d"] == 0.3 and seen["near_plane"] == 0.01 and seen["tile_size"] == 16
    assert seen["viewmats"] == (1, 4, 4) and seen["Ks"] == (1, 3, 3) and seen["backgrounds"].shape == (1, 3)
    assert rgb.shape == (4, 6, 3) and alpha.shape == (4, 6, 1) and depth.shape == (4, 6, 1)
    assert rgb[1, 2].tolist() == [32.0, 33.0, 34.0] and depth[1, 2, 0] == 35.0
    assert depth[0, 0, 0] == 0.0  # where alpha is 0

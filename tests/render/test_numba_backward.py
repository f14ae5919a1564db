"""The "numba" backend: the cpu forward exactly, with gradients equal to the torch backend's autograd."""

from __future__ import annotations

import pytest
import torch

from emo_backend.errors import EmoSplatError
from emo_backend.render import rasterize, resolve_backend
from emo_backend.render.cpu import render_cpu_state
from emo_backend.train import losses
from render_scenes import random_scene

NAMES = ("means", "quats", "scales", "opacities", "colors", "background")


def _scene(n: int, width: int, height: int, seed: int):
    """random_scene plus what the backward must get right: alphas clamped at 0.999 and pixels that stop early."""
    means, quats, scales, opacities, colors, viewmat, K = random_scene(n, width, height, seed)
    opacities = opacities.clone()
    opacities[n // 15: n // 15 + n // 6] = 1.0   # clamped near their centres
    # a stack of dense, wide Gaussians in front of the camera: T falls below 1e-4 there
    g = torch.Generator().manual_seed(seed)
    k = 10
    cam = torch.stack([0.3 * (torch.rand(k, generator=g) - 0.5), 0.3 * (torch.rand(k, generator=g) - 0.5),
                       1.5 + torch.rand(k, generator=g)], -1)
    # three of them opaque and centred on pixel centres: alpha clamped at 0.999 there
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    centres = torch.tensor([[width // 2, height // 2], [width // 3, height // 2], [width // 2, height // 3]]) + 0.5
    cam[:3, 0] = (centres[:, 0] - cx) / fx * cam[:3, 2]
    cam[:3, 1] = (centres[:, 1] - cy) / fy * cam[:3, 2]
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    stack = {
        "means": (cam - t) @ R,
        "quats": torch.nn.functional.normalize(torch.randn(k, 4, generator=g), dim=-1),
        "scales": 0.15 + 0.1 * torch.rand(k, 3, generator=g),
        "opacities": torch.cat([torch.ones(3), 0.85 + 0.15 * torch.rand(k - 3, generator=g)]),
        "colors": torch.rand(k, 3, generator=g),
    }
    out = [torch.cat([a, stack[name]]) for a, name in
           zip((means, quats, scales, opacities, colors), ("means", "quats", "scales", "opacities", "colors"))]
    return (*out, viewmat, K)


def _weights(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _grads(backend, scene, width, height, loss_fn, background=(0.2, 0.5, 0.7), dtype=torch.float32):
    *params, viewmat, K = scene
    inputs = [t.to(dtype).clone().requires_grad_(True) for t in (*params, torch.tensor(background))]
    rgb, alpha, depth = rasterize(*inputs[:5], viewmat, K, width, height, backend=backend, background=inputs[5])
    loss_fn(rgb.float(), alpha.float(), depth.float()).backward()
    return [t.grad.float() for t in inputs]


def _weighted_all(rgb, alpha, depth):
    w = _weights(rgb.shape[:2] + (5,), 1)
    return (w[..., :3] * rgb).sum() + (w[..., 3:4] * alpha).sum() + 0.1 * (w[..., 4:] * depth).sum()


def _compare(ours, theirs, rel_tol=1e-3, cos_tol=0.999):
    stats = {}
    for name, a, b in zip(NAMES, ours, theirs):
        assert torch.isfinite(a).all(), name
        rel = float((a - b).norm() / b.norm().clamp_min(1e-12))
        cos = float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
        stats[name] = (rel, cos)
        assert b.norm() > 0, f"{name}: the scene gives it no gradient; the test would prove nothing"
        assert rel < rel_tol and cos > cos_tol, f"{name}: relative error {rel:.2e}, cosine {cos:.6f}"
    return stats


def test_backend_is_registered_and_differentiable_on_cpu_only():
    assert resolve_backend("numba") == "numba"
    scene = _scene(30, 40, 30, 0)
    inputs = [t.clone().requires_grad_(True) for t in scene[:5]]
    rgb, alpha, depth = rasterize(*inputs, *scene[5:], 40, 30, backend="numba")
    assert rgb.requires_grad and alpha.requires_grad and depth.requires_grad
    loss = rgb.sum() + alpha.sum()
    loss.backward(retain_graph=True)
    once = [t.grad.clone() for t in inputs]
    loss.backward()  # a retained graph can be walked again
    for a, b in zip(once, inputs):
        assert torch.allclose(2 * a, b.grad)
    # float64 inputs: float32 images (the cpu renderer's), gradients in the inputs' dtype
    inputs = [t.double().requires_grad_(True) for t in scene[:5]]
    rgb, _, _ = rasterize(*inputs, *scene[5:], 40, 30, backend="numba")
    rgb.sum().backward()
    assert rgb.dtype == torch.float32 and all(t.grad.dtype == torch.float64 for t in inputs)


def test_forward_is_the_cpu_backend_exactly():
    scene = _scene(80, 61, 45, 4)
    bg = torch.tensor([0.3, 0.1, 0.9])
    ours = rasterize(*scene, 61, 45, backend="numba", background=bg)
    cpu = rasterize(*scene, 61, 45, backend="cpu", background=bg)
    for a, b in zip(ours, cpu):
        assert torch.equal(a, b)


@pytest.mark.parametrize("seed", [3, 7, 12])
def test_gradients_match_torch_autograd(seed):
    """rgb, alpha and depth terms; clamped alphas and early-stopped pixels are in the scene (checked)."""
    w, h = 61, 45
    scene = _scene(80, w, h, seed)
    state = render_cpu_state(*(t.numpy() for t in scene), w, h)
    assert (state.transmittance < 1e-3).sum() >= 3, "no early-stopped pixels: the scene lost its point"
    stats = _compare(_grads("numba", scene, w, h, _weighted_all), _grads("torch", scene, w, h, _weighted_all))
    assert all(rel < 1e-4 for rel, _ in stats.values()), stats  # in practice ~1e-6


def test_gradients_of_a_training_loss_match_torch():
    """L1 + D-SSIM on the composite plus an alpha-mask term: what stage 1 optimises (no depth gradient)."""
    w, h = 48, 40
    scene = _scene(70, w, h, 21)
    target = _weights((h, w, 3), 5)
    mask = (_weights((h, w, 1), 6) > 0.5).float()

    def loss(rgb, alpha, depth):
        return losses.photometric_loss(rgb, target) + 10 * losses.alpha_mask_loss(alpha, mask)

    _compare(_grads("numba", scene, w, h, loss), _grads("torch", scene, w, h, loss))


def test_clamped_alpha_passes_no_opacity_gradient():
    """At a pixel where o exp(-power) > 0.999 the clamp holds alpha: no opacity or position gradient from it."""
    w, h = 32, 32
    viewmat, K = torch.eye(4), torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])
    # the first projects exactly onto the centre of pixel (16, 16); the second is behind it
    means = torch.tensor([[0.5 / 40 * 2, 0.5 / 40 * 2, 2.0], [0.05, 0.0, 2.5]])
    scene = (means, torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2), torch.tensor([[0.01] * 3, [0.2] * 3]),
             torch.tensor([1.0, 0.5]), torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), viewmat, K)
    pick = torch.zeros(h, w, 1)
    pick[16, 16] = 1

    def loss(rgb, alpha, depth):
        return (pick * rgb).sum() + (pick * alpha).sum()

    ours = _grads("numba", scene, w, h, loss)
    theirs = _grads("torch", scene, w, h, loss)
    assert float(rasterize(*scene, w, h, backend="numba")[0][16, 16, 0]) == pytest.approx(0.999, abs=1e-6)  # w = 0.999
    for grads in (ours, theirs):
        assert grads[3][0] == 0 and grads[0][0].abs().max() == 0  # clamped: no opacity or position gradient
        assert grads[4][0].abs().sum() > 0                         # its colour still counts
    assert torch.allclose(ours[3], theirs[3], rtol=1e-4, atol=1e-7)
    assert torch.allclose(ours[4], theirs[4], rtol=1e-4, atol=1e-7)


def test_directional_finite_difference_in_float64():
    """The numba gradient against central differences of the same image model in float64 (the torch backend)."""
    w, h = 40, 36
    means, quats, scales, opacities, colors, viewmat, K = random_scene(24, w, h, 9, dtype=torch.float64)
    opacities = 0.2 + 0.5 * opacities   # no Gaussian near the 1/255 cut or the 0.999 clamp
    base = [t[2:] for t in (means, quats, scales * 2, opacities, colors)]  # [:2] are behind the camera
    weights = _weights((h, w, 4), 2).double()

    def loss_of(params, backend):
        rgb, alpha, _ = rasterize(*params, viewmat, K, w, h, backend=backend)
        return (weights[..., :3] * rgb.double()).sum() + (weights[..., 3:] * alpha.double()).sum()

    params = [t.float().clone().requires_grad_(True) for t in base]
    loss_of(params, "numba").backward()
    gen = torch.Generator().manual_seed(0)
    for index in range(5):
        direction = torch.randn(base[index].shape, generator=gen, dtype=torch.float64)
        direction = direction / direction.norm()
        eps = 1e-6 * float(base[index].abs().mean())
        shifted = lambda s: [t + s * direction if i == index else t for i, t in enumerate(base)]  # noqa: E731
        with torch.no_grad():
            numeric = float(loss_of(shifted(eps), "torch") - loss_of(shifted(-eps), "torch")) / (2 * eps)
        analytic = float((params[index].grad.double() * direction).sum())
        assert abs(numeric) > 0.1, NAMES[index]
        assert analytic == pytest.approx(numeric, rel=1e-4), NAMES[index]  # in practice ~1e-7


def test_no_gradient_where_nothing_is_visible():
    scene = _scene(20, 32, 24, 1)
    means = scene[0].clone()
    means[:, 2] = -means[:, 2].abs() - 10  # all behind the camera: culled
    # viewmat maps to camera space; push every point behind it in camera space instead
    viewmat = scene[5].clone()
    viewmat[2, 3] -= 100.0
    params = [t.clone().requires_grad_(True) for t in scene[:5]]
    rgb, alpha, depth = rasterize(*params, viewmat, scene[6], 32, 24, backend="numba")
    assert alpha.max() == 0
    (rgb.sum() + alpha.sum() + depth.sum()).backward()
    for name, t in zip(NAMES, params):
        assert torch.equal(t.grad, torch.zeros_like(t)), name


def test_stage1_trains_with_numba_on_cpu(monkeypatch):
    from emo_backend.train import stage1

    monkeypatch.setattr("emo_backend.render.cuda_works", lambda: False)
    assert stage1._resolve_training_backend("auto") == ("numba", torch.device("cpu"))
    assert stage1._resolve_training_backend("torch") == ("torch", torch.device("cpu"))
    assert stage1._resolve_training_backend("numba") == ("numba", torch.device("cpu"))


def test_bench_train_prints_iterations_per_second(capsys):
    import argparse

    from emo_backend.commands import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["train", "--backends", "numba", "torch", "--counts", "400", "--sizes", "32",
                              "--iterations", "2", "--warmup", "1", "--no-avatar"])
    assert bench.run(args) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("synthetic ")]
    assert [r[1:4] for r in rows] == [["numba", "400", "32x32"], ["torch", "400", "32x32"]]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 and float(r[6]) > 0 for r in rows)
    with pytest.raises(EmoSplatError, match="cannot train"):
        bench.run(parser.parse_args(["train", "--backends", "cpu", "--no-avatar"]))

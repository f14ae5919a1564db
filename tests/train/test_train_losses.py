"""Losses: SSIM against a direct float64 evaluation of its definition, the photometric formula, masks,
regularisers, and LPIPS's machinery on weights given by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emo_backend.errors import InvalidFileError
from emo_backend.train import losses


def _ssim_at(x: np.ndarray, y: np.ndarray, r: int, c: int, ch: int) -> float:
    """SSIM at one pixel from its definition: 11×11 Gaussian window (σ 1.5), zero padding, C1/C2 of 3DGS."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    pad = lambda a: np.pad(a[..., ch], 5)  # noqa: E731
    px, py = pad(x)[r : r + 11, c : c + 11], pad(y)[r : r + 11, c : c + 11]
    mx, my = (w * px).sum(), (w * py).sum()
    vx, vy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2
    cov = (w * px * py).sum() - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_ssim_matches_its_definition():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 24, 3, generator=gen)
    y = (x + 0.2 * torch.rand(20, 24, 3, generator=gen)).clamp(0, 1)
    m = losses.ssim_map(x, y).double().numpy()
    for r, c, ch in [(0, 0, 0), (10, 12, 1), (19, 23, 2), (5, 3, 0)]:
        assert m[r, c, ch] == pytest.approx(_ssim_at(x.double().numpy(), y.double().numpy(), r, c, ch), abs=1e-5)
    assert float(losses.ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert float(losses.ssim(x, y)) == pytest.approx(float(losses.ssim(y, x)), abs=1e-6)
    assert float(losses.ssim(x, y)) < 0.99


def test_photometric_loss_is_the_gaussian_blendshapes_formula():
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 16, 16, 3, generator=gen, requires_grad=True)
    gt = torch.rand(2, 16, 16, 3, generator=gen)
    w = 0.2
    expected = (1 - w) * (pred - gt).abs().mean() + w * (1 - losses.ssim(pred, gt))
    loss = losses.photometric_loss(pred, gt)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses.photometric_loss(pred, gt, dssim_weight=0.0).item() == pytest.approx((pred - gt).abs().mean().item())
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        losses.photometric_loss(pred, gt, dssim_weight=1.5)


def test_masked_losses_ignore_the_outside():
    gen = torch.Generator().manual_seed(2)
    pred, gt = torch.rand(16, 16, 3, generator=gen), torch.rand(16, 16, 3, generator=gen)
    mask = torch.zeros(16, 16, 1)
    mask[4:12, 4:12] = 1
    changed = pred.clone()
    changed[:2] = 0.0  # rows 0-1 are outside the mask
    assert float(losses.l1(pred, gt, mask)) == pytest.approx(float(losses.l1(changed, gt, mask)))
    assert float(losses.l1(pred, gt, mask)) == pytest.approx(float((pred - gt)[4:12, 4:12].abs().mean()), rel=1e-6)
    assert float(losses.l1(pred, gt, mask[..., 0])) == pytest.approx(float(losses.l1(pred, gt, mask)))
    with pytest.raises(ValueError):
        losses.l1(pred, gt, torch.ones(8, 8, 1))


def test_alpha_composite_and_regularisers():
    alpha = torch.full((4, 4, 1), 0.25)
    assert float(losses.alpha_mask_loss(alpha, torch.ones(4, 4))) == pytest.approx(0.5625)
    rgb = torch.full((4, 4, 3), 0.1)  # premultiplied
    out = losses.composite_over(rgb, alpha, torch.tensor([0.0, 1.0, 0.4]))
    assert out[0, 0].tolist() == pytest.approx([0.1, 0.85, 0.4])

    face = torch.full((3,), 0.01)
    inside = torch.tensor([[0.005, 0, 0], [0, 0.009, 0], [0, 0, 0]])
    assert float(losses.offset_hinge_loss(inside, face)) == 0.0
    outside = torch.tensor([[0.02, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert float(losses.offset_hinge_loss(outside, face)) == pytest.approx(1.0 / 3)
    small = torch.log(torch.full((3, 3), 0.005))
    assert float(losses.scale_hinge_loss(small, face)) == 0.0
    assert float(losses.scale_hinge_loss(small + np.log(2.0), face)) == pytest.approx(0.4**2, rel=1e-5)
    assert float(losses.isotropy_loss(torch.zeros(5, 3))) == 0.0
    assert float(losses.isotropy_loss(torch.tensor([[0.0, 0.0, -3.0]]))) > 0
    assert float(losses.blendshape_delta_loss(torch.full((2, 3, 3), 0.5))) == pytest.approx(0.25)


def _fake_lpips_files(tmp_path, gen):
    from safetensors.torch import save_file

    from emo_backend.train.perceptual import _vgg16_features

    backbone = {f"features.{k}": torch.randn(v.shape, generator=gen) * 0.05 for k, v in _vgg16_features().state_dict().items()}
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) for i, c in enumerate((64, 128, 256, 512, 512))}
    save_file(backbone, str(tmp_path / "vgg16.safetensors"))
    torch.save(heads, tmp_path / "lin.pth")  # the lpips package ships its heads as a torch state dict
    return tmp_path / "vgg16.safetensors", tmp_path / "lin.pth", heads


def test_lpips_from_local_weights(tmp_path):
    from emo_backend.train.perceptual import load_lpips

    gen = torch.Generator().manual_seed(3)
    backbone, heads_path, heads = _fake_lpips_files(tmp_path, gen)
    lpips = load_lpips(backbone, heads_path)
    x = torch.rand(2, 32, 32, 3, generator=gen)
    y = (x + 0.3 * torch.rand(2, 32, 32, 3, generator=gen)).clamp(0, 1)
    d_same, d_diff = lpips(x, x), lpips(x, y)
    assert d_same.shape == (2,) and torch.allclose(d_same, torch.zeros(2), atol=1e-7)
    assert (d_diff > 0).all()
    assert torch.allclose(lpips(y, x), d_diff, rtol=1e-5)  # symmetric

    with pytest.raises(InvalidFileError, match="not found"):
        load_lpips(tmp_path / "missing.safetensors", heads_path)
    torch.save({k: v[:, :3] for k, v in heads.items()}, tmp_path / "bad.pth")
    with pytest.raises(InvalidFileError, match="lin0"):
        load_lpips(backbone, tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(InvalidFileError, match="cannot read"):
        load_lpips(backbone, tmp_path / "junk.pth")

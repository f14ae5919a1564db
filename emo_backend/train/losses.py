"""Image losses and the regularisers of stage-1 fitting.

Images are channels-last like the renderers' output: `[..., H, W, C]` in [0, 1];
masks are `[..., H, W, 1]` (or `[..., H, W]`) with 1 on the subject.

The photometric term is GaussianBlendshapes' (and 3DGS's) exactly:

    L_rgb = (1 − λ) · L1 + λ · (1 − SSIM),     λ = 0.2

where "D-SSIM" in the 3DGS paper is implemented as (1 − SSIM) in both
reference codebases (their configs: `lambda_dssim = 0.2`). `dssim_weight` is λ.
GaussianBlendshapes adds `alpha_loss = 10 · mean((alpha − mask)²)` (our
`alpha_mask_loss`), keeps LPIPS off by default (`lpips_loss = 0`) and an
optional anisotropy penalty (`isotropic_loss = 0`); the other regularisers here
(offset / scale hinges keeping bound Gaussians near and small relative to their
triangle, and an L2 on blendshape deltas) are GaussianAvatars-style
constraints for Gaussians bound to a mesh; each is off unless weighted.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
DEFAULT_DSSIM_WEIGHT = 0.2  # GaussianBlendshapes' and 3DGS's lambda_dssim


def _to_nchw(image: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """[..., H, W, C] -> ([B, C, H, W], leading shape)."""
    if image.dim() < 3:
        raise ValueError(f"expected an image [..., H, W, C], got shape {tuple(image.shape)}")
    lead = tuple(image.shape[:-3])
    h, w, c = image.shape[-3:]
    return image.reshape(-1, h, w, c).permute(0, 3, 1, 2), lead


def _mask_nhw1(mask: Tensor, like: Tensor) -> Tensor:
    """A mask [..., H, W] or [..., H, W, 1] as [..., H, W, 1] in like's dtype."""
    if mask.dim() == like.dim() - 1:
        mask = mask[..., None]
    if mask.shape[-1] != 1 or mask.shape[:-1] != like.shape[:-1]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match image {tuple(like.shape)}")
    return mask.to(like.dtype)


@functools.lru_cache(maxsize=8)
def _gaussian_1d_cpu(size: int, sigma: float) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()  # [size] float64


@functools.lru_cache(maxsize=8)
def _gaussian_window_cpu(size: int, sigma: float) -> Tensor:
    g = _gaussian_1d_cpu(size, sigma)
    return torch.outer(g, g).to(torch.float32)  # [size, size]


def gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    """[channels, 1, size, size] normalised 2D Gaussian for a depthwise convolution."""
    w = _gaussian_window_cpu(size, sigma).to(device=like.device, dtype=like.dtype)
    return w.expand(channels, 1, size, size).contiguous()


def ssim_map(pred: Tensor, gt: Tensor, window_size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """Per-pixel SSIM [..., H, W, C] of pred vs gt [..., H, W, C] (zero-padded 11×11 Gaussian window, σ = 1.5)."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    x, lead = _to_nchw(pred)
    y, _ = _to_nchw(gt)
    c = x.shape[1]
    # The window is an outer product g g^T: a row pass then a column pass (zero padding
    # both times) equals the 2D zero-padded convolution, at 2x11 instead of 121 taps per pixel;
    # the five blurred maps go through as one stack.
    g = _gaussian_1d_cpu(window_size, sigma).to(device=x.device, dtype=x.dtype)
    pad = window_size // 2
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)
    n = stack.shape[1]
    rows = F.conv2d(stack, g.view(1, 1, 1, -1).expand(n, 1, 1, window_size), padding=(0, pad), groups=n)
    blurred = F.conv2d(rows, g.view(1, 1, -1, 1).expand(n, 1, window_size, 1), padding=(pad, 0), groups=n)
    mu_x, mu_y, blur_xx, blur_yy, blur_xy = blurred.split(c, 1)
    var_x = blur_xx - mu_x**2
    var_y = blur_yy - mu_y**2
    cov = blur_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    out = (num / den).permute(0, 2, 3, 1)
    return out.reshape(*lead, *out.shape[1:])


def _weighted_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of values [..., H, W, C] over the whole batch, or over mask [..., H, W, 1] (broadcast over C)."""
    if mask is None:
        return values.mean()
    weight = mask.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)


def ssim(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean SSIM (scalar) over all pixels, or over the masked pixels."""
    m = _mask_nhw1(mask, pred) if mask is not None else None
    return _weighted_mean(ssim_map(pred, gt), m)


def l1(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error (scalar) over all pixels, or over the masked pixels."""
    m = _mask_nhw1(mask, pred) if mask is not None else None
    return _weighted_mean((pred - gt).abs(), m)


def photometric_loss(
    pred: Tensor,               # [..., H, W, 3]
    gt: Tensor,                 # [..., H, W, 3]
    mask: Tensor | None = None,  # [..., H, W, 1]: average only over the subject
    dssim_weight: float = DEFAULT_DSSIM_WEIGHT,
) -> Tensor:
    """(1 − λ)·L1 + λ·(1 − SSIM), GaussianBlendshapes' L_rgb; λ = dssim_weight."""
    if not 0.0 <= dssim_weight <= 1.0:
        raise ValueError(f"dssim_weight must be in [0, 1], got {dssim_weight}")
    loss = (1 - dssim_weight) * l1(pred, gt, mask)
    if dssim_weight > 0:
        loss = loss + dssim_weight * (1 - ssim(pred, gt, mask))
    return loss


def alpha_mask_loss(alpha: Tensor, mask: Tensor) -> Tensor:
    """mean((alpha − mask)²): the rendered silhouette should match the subject mask (GaussianBlendshapes)."""
    m = _mask_nhw1(mask, alpha)
    return ((alpha - m) ** 2).mean()


def composite_over(rgb_premultiplied: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """Premultiplied rgb [..., H, W, 3] over a background colour [3] (or image [..., H, W, 3])."""
    return rgb_premultiplied + (1 - alpha) * background.to(rgb_premultiplied)


# --- regularisers -----------------------------------------------------------------------------------------


def offset_hinge_loss(offsets: Tensor, face_scale: Tensor, threshold: float = 1.0) -> Tensor:
    """mean(max(|offset| / face_scale − threshold, 0)²): keep bound Gaussians near their triangle.

    offsets [N, 3] in the triangle's frame (metres), face_scale [N] a length of
    the bound triangle (e.g. √(2·area) or its mean edge): distances are measured
    in triangle sizes so the constraint is the same for big and small faces.
    """
    rel = offsets.norm(dim=-1) / face_scale.clamp_min(1e-12)
    return torch.relu(rel - threshold).pow(2).mean()


def scale_hinge_loss(log_scales: Tensor, face_scale: Tensor, threshold: float = 0.6) -> Tensor:
    """mean(max(max_axis_scale / face_scale − threshold, 0)²): no Gaussian much bigger than its triangle."""
    rel = torch.exp(log_scales).amax(-1) / face_scale.clamp_min(1e-12)
    return torch.relu(rel - threshold).pow(2).mean()


def blendshape_delta_loss(deltas: Tensor) -> Tensor:
    """mean(Δ²) over blendshape deltas of any shape: the expression detail the mesh cannot explain stays small."""
    return deltas.pow(2).mean() if deltas.numel() else deltas.sum()


def isotropy_loss(log_scales: Tensor, eps: float = 1e-3) -> Tensor:
    """mean(((max_s + ε)/(min_s + ε) − 1)²): discourages needle-like Gaussians (GaussianBlendshapes' isotropic_loss)."""
    s = torch.exp(log_scales)
    ratio = (s.amax(-1) + eps) / (s.amin(-1) + eps)
    return (ratio - 1).pow(2).mean()

"""Evaluation metrics: PSNR, SSIM, LPIPS (given weights), landmark distances and landmark velocity.

Images are [..., H, W, 3] in [0, 1]. SSIM is the training loss's own (one
implementation, `emo_backend.train.losses.ssim_map`). Landmark metrics use the
head model's 68-point landmarks on the predicted and ground-truth meshes,
projected with each frame's camera, in pixels:

* LMD (`face`, `mouth`): mean 2D distance between predicted and ground-truth
  landmarks over frames and points (all 68 for the face, iBUG 48-67 for the mouth);
* LMV (landmark velocity difference): mean 2D distance between the predicted and
  ground-truth frame-to-frame landmark displacements — motion dynamics, not pose.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emo_backend.head.lbs import landmarks
from emo_backend.head.model import LANDMARK_GROUPS, HeadModel
from emo_backend.render.camera import project_points
from emo_backend.train.losses import _mask_nhw1, ssim_map


def psnr(pred: Tensor, gt: Tensor, mask: Tensor | None = None, max_value: float = 1.0) -> Tensor:
    """Per-image PSNR in dB [...] of pred vs gt [..., H, W, C]; with a mask [..., H, W, 1], over its pixels."""
    err = (pred.clamp(0, max_value) - gt.clamp(0, max_value)) ** 2
    if mask is None:
        mse = err.mean((-3, -2, -1))
    else:
        w = _mask_nhw1(mask, pred).expand_as(err)
        mse = (err * w).sum((-3, -2, -1)) / w.sum((-3, -2, -1)).clamp_min(1e-8)
    return 10 * torch.log10(max_value**2 / mse.clamp_min(1e-12))


def ssim_per_image(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-image mean SSIM [...] (the loss's SSIM map, averaged over pixels or the mask)."""
    s = ssim_map(pred.clamp(0, 1), gt.clamp(0, 1))
    if mask is None:
        return s.mean((-3, -2, -1))
    w = _mask_nhw1(mask, pred).expand_as(s)
    return (s * w).sum((-3, -2, -1)) / w.sum((-3, -2, -1)).clamp_min(1e-8)


def project_landmarks(
    head: HeadModel,
    vertices: Tensor,  # [T, V, 3] posed meshes in the cameras' world
    viewmats: Tensor,  # [T, 4, 4] or [4, 4]
    Ks: Tensor,        # [T, 3, 3] or [3, 3]
) -> Tensor:
    """-> landmark pixels [T, 68, 2] with each frame's camera."""
    lms = landmarks(head, vertices)  # [T, L, 3]
    num = lms.shape[0]
    viewmats = viewmats.expand(num, 4, 4) if viewmats.dim() == 2 else viewmats
    Ks = Ks.expand(num, 3, 3) if Ks.dim() == 2 else Ks
    return torch.stack([project_points(lms[t], viewmats[t].to(lms), Ks[t].to(lms))[0] for t in range(num)])


def landmark_metrics(
    head: HeadModel,
    pred_vertices: Tensor,  # [T, V, 3]
    gt_vertices: Tensor,    # [T, V, 3]
    viewmats: Tensor,       # [T, 4, 4] or [4, 4]
    Ks: Tensor,             # [T, 3, 3] or [3, 3]
) -> dict[str, float]:
    """LMD and landmark-velocity differences in pixels: {"lmd_face", "lmd_mouth", "lmv_face", "lmv_mouth"}."""
    if pred_vertices.shape != gt_vertices.shape:
        raise ValueError(f"predicted {tuple(pred_vertices.shape)} and ground-truth {tuple(gt_vertices.shape)} meshes differ")
    p = project_landmarks(head, pred_vertices, viewmats, Ks)
    g = project_landmarks(head, gt_vertices, viewmats, Ks)
    mouth = list(LANDMARK_GROUPS["mouth"])
    out: dict[str, float] = {}
    for name, idx in (("face", slice(None)), ("mouth", mouth)):
        out[f"lmd_{name}"] = float((p[:, idx] - g[:, idx]).norm(dim=-1).mean())
        if p.shape[0] > 1:
            dp, dg = p[1:, idx] - p[:-1, idx], g[1:, idx] - g[:-1, idx]
            out[f"lmv_{name}"] = float((dp - dg).norm(dim=-1).mean())
        else:
            out[f"lmv_{name}"] = float("nan")  # velocity needs two frames
    return out

"""EWA projection of 3D Gaussians to the image plane, differentiable, in torch.

The same maths as gsplat's `fully_fused_projection` (pinhole, classic mode):
covariance R S S^T R^T, world-to-camera, Jacobian at the mean with x/z and y/z
clamped to 1.3x the field of view, `eps2d` added to the 2D covariance, and a
bounding radius per axis. The numba renderer (`cpu.py`) repeats these formulas in
scalar form; tests check both against gsplat's own reference.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from emo_backend.render.constants import ALPHA_THRESHOLD, EPS2D, FAR_PLANE, FIXED_EXTENT, FOV_CLAMP_MARGIN, NEAR_PLANE

RadiusMode = Literal["opacity", "fixed"]


class Projected(NamedTuple):
    means2d: Tensor  # [N, 2] pixels, +0.5 centre convention
    conics: Tensor   # [N, 3] inverse 2D covariance (a, b, c): [[a, b], [b, c]]
    depths: Tensor   # [N] camera-space z
    radii: Tensor    # [N, 2] int32 bounding half-extent in pixels; 0 = culled


def quats_to_rotmats(quats: Tensor) -> Tensor:
    """quats [N, 4] wxyz (any norm) -> rotation matrices [N, 3, 3]."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(quats.shape[:-1] + (3, 3))


def project_gaussians(
    means: Tensor,      # [N, 3]
    quats: Tensor,      # [N, 4] wxyz
    scales: Tensor,     # [N, 3] linear
    opacities: Tensor,  # [N] in [0, 1]
    viewmat: Tensor,    # [4, 4] world-to-camera
    K: Tensor,          # [3, 3]
    width: int,
    height: int,
    radius_mode: RadiusMode = "opacity",
    eps2d: float = EPS2D,
    near_plane: float = NEAR_PLANE,
    far_plane: float = FAR_PLANE,
) -> Projected:
    """Project Gaussians; differentiable in means2d, conics and depths.

    radius_mode "opacity" (what rendering uses, gsplat 1.5 with opacities): the box
    reaches where opacity * exp(-power) falls to 1/255, capped at 3.33 sigma, and
    Gaussians with opacity < 1/255 are culled. "fixed": always 3.33 sigma (gsplat's
    pure-torch reference), kept for testing against it.
    """
    dtype = means.dtype
    viewmat = viewmat.to(dtype)
    K = K.to(dtype)
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    rot = quats_to_rotmats(quats)
    M = rot * scales[:, None, :]                         # R S
    cov_world = M @ M.transpose(-1, -2)
    means_c = means @ R.T + t                            # [N, 3]
    cov_c = R @ cov_world @ R.T                          # [N, 3, 3]

    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tx, ty, tz = means_c.unbind(-1)
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_x_neg = cx / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_y_pos = (height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy
    lim_y_neg = cy / fy + FOV_CLAMP_MARGIN * tan_fovy
    # Far off-axis Gaussians would get huge, smeared footprints; gsplat clamps the Jacobian's point.
    cl_x = tz * torch.minimum(torch.maximum(tx / tz, -lim_x_neg), lim_x_pos)
    cl_y = tz * torch.minimum(torch.maximum(ty / tz, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * cl_x / tz**2, zero, fy / tz, -fy * cl_y / tz**2], -1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(-1, -2)
    a = cov2d[:, 0, 0] + eps2d
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], -1)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)

    with torch.no_grad():
        extent = torch.full_like(tz, FIXED_EXTENT)
        valid = (det > 0) & (tz >= near_plane) & (tz <= far_plane)
        if radius_mode == "opacity":
            op = opacities.detach().to(dtype)
            valid &= op >= ALPHA_THRESHOLD
            extent = torch.minimum(extent, torch.sqrt(2.0 * torch.log(op.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD)))
        elif radius_mode != "fixed":
            raise ValueError(f"radius_mode must be 'opacity' or 'fixed', not {radius_mode!r}")
        rx = torch.ceil(extent * torch.sqrt(a.detach().clamp(min=0)))
        ry = torch.ceil(extent * torch.sqrt(c.detach().clamp(min=0)))
        mx, my = means2d.detach().unbind(-1)
        valid &= (rx > 0) | (ry > 0)
        valid &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        radii = torch.where(valid[:, None], torch.stack([rx, ry], -1), torch.zeros_like(means2d.detach()))
    return Projected(means2d, conics, tz, radii.to(torch.int32))

"""Quaternion helpers for the avatar (wxyz, DESIGN.md's convention), batched and differentiable.

Kept apart from `head/lbs.py` (which owns the axis-angle -> matrix of the
skeleton) because only Gaussians need quaternions.
"""

from __future__ import annotations

import torch
from torch import Tensor


def unit(x: Tensor, eps: float = 1e-20) -> Tensor:
    """x / |x| over the last dim (faster on CPU than torch.nn.functional.normalize for tiny last dims)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(eps))


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b (rotate by b, then by a). a, b [..., 4] wxyz -> [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def axis_angle_to_quat(aa: Tensor) -> Tensor:
    """aa [..., 3] (angle = norm) -> unit quaternion [..., 4] wxyz; smooth at zero."""
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2.clamp_min(1e-16))
    small = theta2 < 1e-8
    # sin(t/2)/t with a Taylor fallback so the gradient at zero is finite.
    k = torch.where(small, 0.5 - theta2 / 48, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1 - theta2 / 8, torch.cos(theta / 2))
    return torch.cat([w, aa * k], -1)


def quat_to_axis_angle(q: Tensor) -> Tensor:
    """q [..., 4] wxyz (any norm) -> axis-angle [..., 3] with angle in [0, pi]."""
    q = unit(q)
    q = torch.where(q[..., :1] < 0, -q, q)  # shortest rotation
    xyz = q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    scale = torch.where(s < 1e-8, 2 / q[..., :1].clamp_min(1e-8), angle / s.clamp_min(1e-12))
    return xyz * scale


def quat_to_matrix(q: Tensor) -> Tensor:
    """q [..., 4] wxyz (normalised here) -> rotation matrix [..., 3, 3]."""
    w, x, y, z = unit(q).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: Tensor) -> Tensor:
    """Rotation matrix [..., 3, 3] -> unit quaternion [..., 4] wxyz with w >= 0.

    Shepperd's method: take the largest of the four candidate denominators so
    no branch divides by a small number.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    root = torch.sqrt(four_sq.clamp_min(1e-12))  # [..., 4] = 2|w|, 2|x|, 2|y|, 2|z|
    candidates = torch.stack(
        [
            torch.stack([root[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1) / (2 * root[..., 0:1]),
            torch.stack([m21 - m12, root[..., 1] ** 2, m10 + m01, m02 + m20], -1) / (2 * root[..., 1:2]),
            torch.stack([m02 - m20, m10 + m01, root[..., 2] ** 2, m12 + m21], -1) / (2 * root[..., 2:3]),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, root[..., 3] ** 2], -1) / (2 * root[..., 3:4]),
        ],
        -2,
    )  # [..., 4 candidates, 4]
    best = four_sq.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def polar_rotation(m: Tensor) -> Tensor:
    """The rotation part R of the polar decomposition m = R·S ([..., 3, 3]); proper (det +1)."""
    u, _, vh = torch.linalg.svd(m)
    det = torch.det(u @ vh)
    fix = torch.ones_like(u[..., 0, :])
    fix[..., 2] = det.sign().where(det != 0, torch.ones_like(det))
    return (u * fix[..., None, :]) @ vh

"""A synthetic head-like scene for render benchmarks.

N Gaussians on the shell of a 0.24 m wide x 0.30 m tall x 0.26 m deep ellipsoid
(avatar space: +Y up, +Z out of the face), scales 1-3 mm, random rotations,
opacities 0.3-1, skin-ish colours, and a camera in front looking at its centre
with the head filling 85% of the frame height.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from emo_backend.render.camera import intrinsics_from_fov, look_at

HEAD_SEMI_AXES = (0.12, 0.15, 0.13)  # metres: x (width/2), y (height/2), z (depth/2)
FILL_FRACTION = 0.85
FOV_Y_DEG = 20.0


class BenchScene(NamedTuple):
    means: Tensor      # [N, 3]
    quats: Tensor      # [N, 4] unit wxyz
    scales: Tensor     # [N, 3]
    opacities: Tensor  # [N]
    colors: Tensor     # [N, 3]
    viewmat: Tensor    # [4, 4]
    K: Tensor          # [3, 3]
    width: int
    height: int


def head_camera(width: int, height: int, head_height: float = 2 * HEAD_SEMI_AXES[1],
                fill: float = FILL_FRACTION) -> tuple[Tensor, Tensor]:
    """viewmat, K of a camera on +Z looking at the origin, the head's height spanning `fill` of the frame."""
    K = intrinsics_from_fov(FOV_Y_DEG, width, height)
    # silhouette half-height h at distance d projects to fy * h / d pixels
    distance = K[1, 1].item() * (head_height / 2) / (fill * height / 2)
    viewmat = look_at(torch.tensor([0.0, 0.0, distance]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    return viewmat, K


def head_scene(n: int, width: int, height: int, seed: int = 0) -> BenchScene:
    gen = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    means = direction * torch.tensor(HEAD_SEMI_AXES)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1)
    scales = 0.001 + 0.002 * torch.rand(n, 3, generator=gen)
    opacities = 0.3 + 0.7 * torch.rand(n, generator=gen)
    skin = torch.tensor([0.80, 0.60, 0.50])
    colors = (skin + 0.15 * (torch.rand(n, 3, generator=gen) - 0.5)).clamp(0, 1)
    viewmat, K = head_camera(width, height)
    return BenchScene(means, quats, scales, opacities, colors, viewmat, K, width, height)


def scene_extent_pixels(scene: BenchScene) -> float:
    """The head's projected height in pixels at its centre plane (for sanity checks)."""
    distance = -scene.viewmat[2, 3].item()
    return scene.K[1, 1].item() * 2 * HEAD_SEMI_AXES[1] / abs(distance) if distance else math.inf

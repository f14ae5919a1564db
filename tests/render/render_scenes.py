"""Random test scenes for the renderer tests (small: the reference is brute force)."""

from __future__ import annotations

import math

import torch

from emo_backend.render.camera import intrinsics_from_fov, look_at


def random_scene(n: int, width: int, height: int, seed: int, dtype=torch.float32):
    """Gaussians scattered in front of a camera, some behind it, off-screen, faint or very anisotropic.

    -> means, quats, scales, opacities, colors, viewmat, K (world != camera frame, off-centre K).
    """
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    # camera space positions, then mapped to a world frame through a rotated camera
    z = 1.0 + 2.0 * rand(n)
    half_w = 0.5 * width / (1.2 * width) * 1.6  # spreads a bit beyond the frame (off-screen Gaussians)
    xy = (rand(n, 2) * 2 - 1) * z[:, None] * torch.tensor([half_w, half_w * height / width])
    cam_pts = torch.cat([xy, z[:, None]], 1)
    cam_pts[: max(1, n // 20), 2] *= -1          # a few behind the camera
    eye = torch.tensor([0.3, -0.2, -2.0], dtype=torch.float64)
    viewmat = look_at(eye, torch.tensor([0.1, 0.05, 0.0]), torch.tensor([0.0, -1.0, 0.2])).double()
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    means = (cam_pts - t) @ R                     # camera -> world
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=-1)
    quats = quats * (0.5 + rand(n, 1))            # not unit: renderers must normalise
    scales = torch.exp(math.log(0.01) + 2.5 * rand(n, 3)) * z[:, None].abs()
    scales[: n // 10, 0] *= 0.05                  # flat splats
    opacities = rand(n)
    opacities[: n // 15] *= 0.004                 # some under 1/255
    colors = rand(n, 3)
    fy = 1.1 * height
    K = torch.tensor([[fy * 1.05, 0.0, width * 0.47], [0.0, fy, height * 0.53], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = means, quats, scales, opacities, colors, viewmat, K
    return tuple(x.to(dtype) for x in out)


def camera_for(width: int, height: int):
    return look_at(torch.tensor([0.0, 0.0, -3.0]), torch.zeros(3), torch.tensor([0.0, -1.0, 0.0])), \
        intrinsics_from_fov(40.0, width, height)

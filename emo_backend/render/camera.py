"""Cameras in the backend's one convention: OpenCV, exactly gsplat's.

`viewmat` [4, 4] is world-to-camera; the camera looks down +Z with +Y down and
+X right. `K` [3, 3] is in pixels with pixel centres at +0.5 (pixel (0, 0)
covers [0, 1)², its centre is (0.5, 0.5)). Blender cameras are converted on the
add-on side (addon/camera.py) into exactly this.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def intrinsics_from_fov(fov_y_deg: float, width: int, height: int) -> Tensor:
    """K [3, 3] for a vertical field of view, principal point at the image centre."""
    fy = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return torch.tensor([[fy, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)


def look_at(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """World-to-camera viewmat [4, 4] for a camera at `eye` [3] looking at `target` [3].

    `up` [3] is the world's up; it ends up as image −Y (OpenCV's +Y is down).
    """
    eye, target, up = (torch.as_tensor(x, dtype=torch.float32) for x in (eye, target, up))
    forward = torch.nn.functional.normalize(target - eye, dim=0)        # camera +Z
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=0)  # camera +X
    down = torch.linalg.cross(forward, right)                           # camera +Y
    rot = torch.stack([right, down, forward], 0)  # rows: camera axes in world
    viewmat = torch.eye(4)
    viewmat[:3, :3] = rot
    viewmat[:3, 3] = -rot @ eye
    return viewmat


def orbit_viewmat(yaw_deg: float, pitch_deg: float, distance: float, target: Tensor | None = None) -> Tensor:
    """A camera circling an avatar-space target (+Y up, +Z out of the face).

    yaw 0, pitch 0 looks straight at the face from +Z; positive yaw moves the
    camera towards the subject's left (+X).
    """
    target = torch.zeros(3) if target is None else torch.as_tensor(target, dtype=torch.float32)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    offset = torch.tensor(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)], dtype=torch.float32
    )
    return look_at(target + distance * offset, target, torch.tensor([0.0, 1.0, 0.0]))


def project_points(points: Tensor, viewmat: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """points [..., 3] world -> (pixels [..., 2] with the +0.5 centre convention, camera z [...])."""
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[..., 2]
    uv = cam[..., :2] / z[..., None]
    pixels = uv * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])
    return pixels, z


# OpenGL/NeRF cameras look down -Z with +Y up; OpenCV's look down +Z with +Y down: flip camera Y and Z.
_OPENGL_TO_OPENCV_AXES = (1.0, -1.0, -1.0)


def opengl_c2w_to_viewmat(c2w: Tensor) -> Tensor:
    """OpenGL/NeRF camera-to-world [..., 4, 4] (as in transforms.json) -> our OpenCV viewmat [..., 4, 4].

    Flips the camera's Y and Z axes (the columns of the rotation), then inverts
    the rigid transform. Accepts numpy arrays too; returns a float32 tensor.
    """
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    flip = torch.tensor(_OPENGL_TO_OPENCV_AXES, dtype=torch.float64)
    rot = c2w[..., :3, :3] * flip  # scales columns: camera axes expressed in world
    centre = c2w[..., :3, 3]
    viewmat = torch.zeros(c2w.shape[:-2] + (4, 4), dtype=torch.float64)
    rot_t = rot.transpose(-1, -2)
    viewmat[..., :3, :3] = rot_t
    viewmat[..., :3, 3] = -(rot_t @ centre[..., None])[..., 0]
    viewmat[..., 3, 3] = 1.0
    return viewmat.to(torch.float32)

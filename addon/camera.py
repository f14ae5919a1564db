"""Blender camera -> the backend's OpenCV camera (K [3, 3] in pixels, world-to-camera viewmat [4, 4]).

The one place this conversion happens. Blender cameras look down -Z with +Y
up; OpenCV cameras look down +Z with +Y down, so camera space flips Y and Z.
Intrinsics follow Blender's own view plane (BKE_camera_params_compute_viewplane):
the sensor side that fits (AUTO: the wider side, in pixel-aspect-corrected
units), lens shift in units of that side, non-square pixels. Pixel (0, 0)
covers [0, 1)^2 in both conventions, so no half-pixel offset appears.
Tested against `bpy_extras.object_utils.world_to_camera_view`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])  # camera space: flip Y (up->down) and Z (back->forward)


class CameraError(ValueError):
    """The camera cannot be expressed as a pinhole the splatting renderer draws."""


@dataclass(frozen=True)
class CameraSettings:
    """What the conversion reads from Blender, once per frame (plain numbers, testable without bpy)."""

    lens: float            # mm
    sensor_width: float    # mm
    sensor_height: float   # mm
    sensor_fit: str        # "AUTO" | "HORIZONTAL" | "VERTICAL"
    shift_x: float
    shift_y: float
    width: int             # output pixels, resolution percentage applied
    height: int
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    matrix_world: tuple = tuple(map(tuple, np.eye(4)))  # 4x4, camera -> world (Blender)


def render_size(render) -> tuple[int, int]:
    """Output pixels for a scene's render settings (percentage applied the way Blender rounds it)."""
    pct = render.resolution_percentage
    return max(1, render.resolution_x * pct // 100), max(1, render.resolution_y * pct // 100)


def settings_from_blender(camera_object, scene) -> CameraSettings:
    cam = camera_object.data
    if cam.type != "PERSP":
        raise CameraError(f"camera '{camera_object.name}' is {cam.type.lower()}; the avatar renders only with "
                          "perspective cameras (Camera properties > Lens > Type: Perspective)")
    width, height = render_size(scene.render)
    return CameraSettings(
        lens=cam.lens, sensor_width=cam.sensor_width, sensor_height=cam.sensor_height, sensor_fit=cam.sensor_fit,
        shift_x=cam.shift_x, shift_y=cam.shift_y, width=width, height=height,
        pixel_aspect_x=scene.render.pixel_aspect_x, pixel_aspect_y=scene.render.pixel_aspect_y,
        matrix_world=tuple(tuple(row) for row in camera_object.matrix_world),
    )


def intrinsics(s: CameraSettings) -> np.ndarray:
    """K [3, 3] in pixels (OpenCV)."""
    ycor = s.pixel_aspect_y / s.pixel_aspect_x
    fit = s.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if s.pixel_aspect_x * s.width >= s.pixel_aspect_y * s.height else "VERTICAL"
        sensor = s.sensor_width  # AUTO measures the fitted side with sensor_width, whichever side it is
    else:
        sensor = s.sensor_width if fit == "HORIZONTAL" else s.sensor_height
    viewfac = s.width if fit == "HORIZONTAL" else ycor * s.height  # fitted side, in x-pixel units
    fx = s.lens / sensor * viewfac
    fy = fx / ycor
    cx = 0.5 * s.width - s.shift_x * viewfac
    cy = 0.5 * s.height + s.shift_y * viewfac / ycor
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def viewmat(matrix_world) -> np.ndarray:
    """Camera object's matrix_world (scale ignored, like Blender's own projection) -> OpenCV world-to-camera."""
    m = np.asarray(matrix_world, dtype=np.float64)
    rot = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0, keepdims=True)  # drop object scale per axis
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3], cam_to_world[:3, 3] = rot, m[:3, 3]
    return BLENDER_TO_OPENCV_CAMERA @ np.linalg.inv(cam_to_world)


def opencv_camera(s: CameraSettings) -> tuple[np.ndarray, np.ndarray]:
    """(K [3, 3], viewmat [4, 4]) for the backend."""
    return intrinsics(s), viewmat(s.matrix_world)


def project(points: np.ndarray, K: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [N, 3] -> (pixels [N, 2] with +Y down, camera z [N]); the backend's projection, for tests."""
    cam = points @ view[:3, :3].T + view[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3]
    return uv * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]]), cam[:, 2]

"""The compositor merge at the avatar's soft outline: an exact alpha-over, no dark ring (no backend needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.blender

SIZE = 48


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.clip(c, 0.0, None) ** (1 / 2.4) - 0.055)


def test_soft_avatar_edges_are_an_alpha_over_of_the_scene(blender, clean_scene, addon, tmp_path):
    from PIL import Image

    from emo_backend.files.images import write_exr_depth

    bpy = blender
    scene = clean_scene
    scene.frame_start = scene.frame_end = 1
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    shading = scene.display.shading
    shading.light, shading.color_type, shading.single_color = "FLAT", "SINGLE", (0.2, 0.5, 0.3)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.0, -1.0, 0.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = cam
    bpy.ops.mesh.primitive_plane_add(size=10.0, location=(0.0, 1.0, 0.0), rotation=(math.pi / 2, 0.0, 0.0))

    # A baked "avatar": an orange disc whose alpha ramps from 1 to 0 over 8 px, 0.5 m from the camera.
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    radius = np.hypot(xx - SIZE / 2, yy - SIZE / 2)
    alpha = np.clip((18.0 - radius) / 8.0, 0.0, 1.0)
    color = np.array([0.9, 0.55, 0.25])
    rgba = np.concatenate([np.where(alpha[..., None] > 0, color, 0.0), alpha[..., None]], -1)
    Image.fromarray(np.round(rgba * 255).astype(np.uint8), "RGBA").save(tmp_path / "avatar_0001.png")
    write_exr_depth(tmp_path / "avatar_depth_0001.exr", np.where(alpha > 0, 0.5, np.inf).astype(np.float32))

    def render(name: str, composite: bool) -> np.ndarray:
        scene.frame_set(1)
        scene.render.use_compositing = composite
        scene.render.filepath = str(tmp_path / name)
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGB"
        bpy.ops.render.render(write_still=True)
        return np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB")).astype(np.float64) / 255.0

    plain = render("plain", composite=False)
    addon.compositor.wire_compositor(scene, str(tmp_path), "avatar", 1, 1)
    merged = render("merged", composite=True)

    a = np.round(alpha * 255)[..., None] / 255.0  # what the 8-bit PNG holds
    c = np.round(color * 255) / 255.0
    expected = _linear_to_srgb(a * _srgb_to_linear(c) + (1 - a) * _srgb_to_linear(plain))
    err = np.abs(merged - expected).max(-1)
    soft = (alpha > 0) & (alpha < 1)
    assert soft.sum() > 300
    assert err[soft].max() < 4 / 255, f"soft edge off by up to {err[soft].max() * 255:.0f}/255"
    assert err.max() < 4 / 255, f"off by up to {err.max() * 255:.0f}/255 (a ring around the outline?)"

"""Blender camera -> OpenCV K/viewmat, checked against Blender's own projection (world_to_camera_view)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.blender

CASES = [
    # (resolution x, y, percentage, sensor fit, shift x, y, pixel aspect x, y, lens)
    (1920, 1080, 100, "AUTO", 0.0, 0.0, 1.0, 1.0, 50.0),
    (1080, 1920, 100, "AUTO", 0.1, -0.05, 1.0, 1.0, 35.0),       # portrait: AUTO fits the height
    (1920, 1080, 50, "VERTICAL", -0.2, 0.15, 1.0, 1.0, 85.0),
    (1080, 1920, 100, "HORIZONTAL", 0.05, 0.3, 1.0, 1.0, 24.0),
    (1080, 1920, 100, "VERTICAL", 0.0, 0.1, 1.0, 1.0, 50.0),
    (1280, 720, 100, "AUTO", 0.12, 0.07, 2.0, 1.0, 40.0),        # anamorphic pixels
    (720, 1280, 75, "AUTO", -0.1, 0.2, 1.0, 1.5, 30.0),
    (96, 96, 100, "AUTO", 0.25, 0.0, 1.0, 1.0, 50.0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-{c[3]}-shift{c[4]},{c[5]}-pa{c[6]},{c[7]}" for c in CASES])
def test_matches_world_to_camera_view(blender, clean_scene, addon, case):
    bpy = blender
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Euler, Vector

    rx, ry, pct, fit, sx, sy, pax, pay, lens = case
    scene = clean_scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = rx, ry, pct
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = pax, pay
    data = bpy.data.cameras.new("cam")
    data.lens, data.sensor_fit, data.shift_x, data.shift_y = lens, fit, sx, sy
    data.sensor_width, data.sensor_height = 36.0, 24.0
    cam = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(cam)
    cam.location = (1.5, -4.0, 2.0)
    cam.rotation_euler = Euler((math.radians(70), math.radians(5), math.radians(20)))
    cam.scale = (1.3, 1.3, 1.3)  # object scale must not change the projection
    scene.camera = cam
    bpy.context.view_layer.update()

    settings = addon.camera.settings_from_blender(cam, scene)
    K, view = addon.camera.opencv_camera(settings)
    w, h = settings.width, settings.height
    assert (w, h) == (rx * pct // 100, ry * pct // 100)

    # Points spread through the view frustum, at several depths.
    rng = np.random.default_rng(0)
    cam_to_world = np.array(cam.matrix_world.normalized())
    points = []
    for _ in range(40):
        depth = rng.uniform(1.0, 20.0)
        local = np.array([rng.uniform(-0.4, 0.4) * depth, rng.uniform(-0.4, 0.4) * depth, -depth, 1.0])
        points.append((cam_to_world @ local)[:3])
    points = np.array(points)
    pixels, z = addon.camera.project(points, K, view)
    for p, (u, v), zc in zip(points, pixels, z):
        ndc = world_to_camera_view(scene, cam, Vector(p))
        expected = np.array([ndc.x * w, (1.0 - ndc.y) * h])  # Blender: y up from the bottom; OpenCV: down
        assert np.abs(np.array([u, v]) - expected).max() < 0.5, (u, v, expected)
        assert zc == pytest.approx(ndc.z, rel=1e-5)  # OpenCV z = Blender's distance along the view axis


def test_orthographic_camera_is_refused(blender, clean_scene, addon):
    bpy = blender
    data = bpy.data.cameras.new("ortho")
    data.type = "ORTHO"
    cam = bpy.data.objects.new("ortho", data)
    clean_scene.collection.objects.link(cam)
    with pytest.raises(addon.camera.CameraError, match="perspective"):
        addon.camera.settings_from_blender(cam, clean_scene)

"""The add-on and the backend together: IPC refusal, a backend dying mid-bake, and a full bake + composite."""

from __future__ import annotations

import math
import secrets
import sys
from multiprocessing.connection import AuthenticationError, Client
from pathlib import Path

import numpy as np
import pytest
from addon_env import build_test_avatar

pytestmark = pytest.mark.blender

HERE = Path(__file__).resolve().parent


@pytest.fixture
def backend(blender, addon, tmp_path):
    b = addon.ipc.Backend(sys.executable, log_path=tmp_path / "backend.log")
    b.start()
    addon.ipc.set_current(b)
    yield b
    addon.ipc.set_current(None)


def test_backend_refuses_a_wrong_key_and_keeps_serving(backend, addon):
    w = addon.ipc.wire()
    with pytest.raises(AuthenticationError):
        Client((w.HOST, backend.port), authkey=secrets.token_bytes(32))
    reply = backend.request({"type": "ping"})
    assert reply["pong"] is True
    status = backend.request({"type": "status"})
    assert status["protocol"] == w.PROTOCOL_VERSION and isinstance(status["torch_cuda_available"], bool)
    proc = backend.proc
    backend.stop()
    assert proc.poll() is not None  # stopping leaves no process behind


def test_backend_dying_mid_bake_is_an_error_not_a_hang(blender, clean_scene, addon, tmp_path):
    bpy = blender
    scene = clean_scene
    scene.frame_start, scene.frame_end = 1, 3
    scene.render.resolution_x = scene.render.resolution_y = 32
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    bpy.ops.emosplat.add_avatar()
    dying = addon.ipc.Backend(sys.executable, log_path=tmp_path / "backend.log",
                              args=[str(HERE / "fake_backend_dies.py")])
    dying.start()
    addon.ipc.set_current(dying)
    try:
        with pytest.raises(RuntimeError, match="exit code 3"):
            bpy.ops.emosplat.bake(what="SHOT", timeout=30)
        assert scene.emosplat.status.startswith("error: the backend stopped (exit code 3)")
        assert not scene.emosplat.baking
        job = addon.bake.active_job()
        assert job.finished and "simulated crash" in job.error  # the backend's last words reach the artist
        # Blender carries on: Start brings up a fresh (real) backend in place of the dead one.
        assert bpy.ops.emosplat.backend(action="START") == {"FINISHED"}
        assert addon.ipc.current() is not dying and addon.ipc.current().alive
        assert scene.emosplat.status.startswith("backend 0.") and "torch" in scene.emosplat.status
    finally:
        addon.ipc.set_current(None)


def _read_png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGBA")).astype(np.float64) / 255.0


ENGINES = [
    "BLENDER_WORKBENCH",
    "CYCLES",
    pytest.param("BLENDER_EEVEE", marks=pytest.mark.slow),  # ~45 s of shader compilation on a CPU-only machine
]


@pytest.mark.parametrize("engine", ENGINES)
def test_bake_and_composite_put_the_avatar_behind_and_in_front_of_scene_geometry(blender, clean_scene, addon,
                                                                                tmp_path, engine):
    """The key end-to-end test: real backend, real avatar, a real render engine, the compositor merging by depth."""
    bpy = blender
    scene = clean_scene
    scene.render.engine = engine
    if engine == "CYCLES":
        scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 4, False
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.resolution_x = scene.render.resolution_y = 96
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"  # PNG in == PNG out, no filmic curve
    scene.render.film_transparent = True
    shading = scene.display.shading
    shading.light, shading.color_type, shading.single_color = "FLAT", "SINGLE", (1.0, 0.0, 0.0)
    prefs = addon.preferences.get(bpy.context)
    prefs.device = "cpu"
    prefs.cache_folder = str(tmp_path / "cache")

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.0, -0.6, 0.0), (math.pi / 2, 0.0, 0.0)
    cam.data.lens = 75.0  # fx = 75 / 36 * 96 = 200 px
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (math.pi / 2, 0.0, 0.0)  # lights the cube's camera-facing side (Cycles, EEVEE)
    bpy.ops.emosplat.add_avatar()
    avatar = bpy.context.object
    avatar.emosplat.avatar_path = build_test_avatar(tmp_path)
    avatar.emosplat.auto_blink = False
    # A small cube between the camera and the right half of the face.
    bpy.ops.mesh.primitive_cube_add(size=0.04, location=(0.03, -0.3, 0.0))
    cube = bpy.context.object
    bpy.context.view_layer.objects.active = avatar

    def render(name: str, composite: bool = True) -> np.ndarray:
        scene.frame_set(1)
        scene.render.use_compositing = composite
        scene.render.filepath = str(tmp_path / name)
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGBA"
        bpy.ops.render.render(write_still=True)
        return _read_png(tmp_path / f"{name}.png")

    plain = render("scene_only", composite=False)  # the shot without the avatar

    assert bpy.ops.emosplat.bake(what="SHOT", timeout=300) == {"FINISHED"}, scene.emosplat.status
    assert scene.emosplat.status.startswith("baked 2 frames")
    folder = Path(scene.emosplat.last_folder)
    avatar_rgba = _read_png(folder / "avatar_0001.png")
    assert (folder / "avatar_depth_0001.exr").is_file() and (folder / "shot.json").is_file()

    tree = addon.compat.compositor_tree(scene, create=False)
    owned = sorted(n.get("emosplat") for n in tree.nodes if n.get("emosplat"))
    assert owned == ["avatar", "depth", "render_layers", "zcombine"]
    bg = [b for b in cam.data.background_images if b.image is not None]
    assert cam.data.show_background_images and len(bg) == 1 and bg[0].image.source == "SEQUENCE"
    # A second bake reuses every frame and every node: nothing duplicated.
    bpy.ops.emosplat.bake(what="SHOT", timeout=300)
    assert scene.emosplat.status.startswith("baked 2 frames (0 new)")
    assert len(tree.nodes) == 5 and len(cam.data.background_images) == 1

    front = render("cube_in_front")
    # Where the cube lands in the image: its corners through the same camera conversion the bake used.
    K, view = addon.camera.opencv_camera(addon.camera.settings_from_blender(cam, scene))
    corners = np.array([cube.matrix_world @ v.co for v in cube.data.vertices])
    uv, _ = addon.camera.project(corners, K, view)
    (c0, r0), (c1, r1) = np.floor(uv.min(0)).astype(int), np.ceil(uv.max(0)).astype(int)
    cube_mask = np.zeros((96, 96), bool)
    cube_mask[max(r0 - 1, 0):r1 + 1, max(c0 - 1, 0):c1 + 1] = True
    covered = avatar_rgba[..., 3] > 0.99
    inside = np.zeros_like(cube_mask)
    inside[r0 + 2:r1 - 2, c0 + 2:c1 - 2] = True
    head_behind_cube = covered & inside
    assert head_behind_cube.sum() > 50, "test setup: the cube must hide part of the head"
    assert (covered & ~cube_mask).sum() > 500, "test setup: most of the head must stay visible"
    assert (plain[..., 3][inside] > 0.99).all() and plain[..., 0][inside].mean() > 0.2  # the cube is drawn

    # In front: the scene (the cube) wherever the cube hides the head (the head would differ by tens of levels;
    # the compositor's float round trip leaves a few)...
    diff = np.abs(front - plain).max(-1)
    assert np.quantile(diff[head_behind_cube], 0.98) <= 6 / 255
    # ...and the baked head, unchanged, everywhere else it covers (straight alpha, no fringe, no colour shift).
    diff = np.abs(front[..., :3] - avatar_rgba[..., :3]).max(-1)
    assert np.quantile(diff[covered & ~cube_mask], 0.98) < 4 / 255
    assert (front[..., 3][covered] > 0.99).all()

    cube.location.y = 0.3  # now behind the head: the avatar must cover it
    behind = render("cube_behind")
    diff = np.abs(behind[..., :3] - avatar_rgba[..., :3]).max(-1)
    assert np.quantile(diff[head_behind_cube], 0.98) < 4 / 255


def test_bake_frame_then_cancel_a_shot_from_the_timer_path(blender, clean_scene, addon, tmp_path, backend):
    """The UI path without a UI: BakeJob.poll() as the timer calls it; one frame, then a cancelled shot."""
    import time

    bpy = blender
    scene = clean_scene
    scene.frame_start, scene.frame_end, scene.frame_current = 1, 40, 3
    scene.render.resolution_x = scene.render.resolution_y = 32
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.0, -0.6, 0.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = cam
    bpy.ops.emosplat.add_avatar()
    avatar = bpy.context.object
    avatar.emosplat.avatar_path = build_test_avatar(tmp_path)
    folder = str(tmp_path / "frames")

    spec = addon.shot_spec.build_shot_spec(scene, avatar, folder, device="cpu", frames=(3, 3))
    job = addon.bake.BakeJob(backend, scene.name, cam.name, spec, kind="render_frame", frame=3)
    job.start()
    deadline = time.monotonic() + 120
    while job.poll() is not None:  # what the timer does, every POLL_INTERVAL_S
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.error is None and job.result["frames"] == [3], job.error
    assert (tmp_path / "frames" / "avatar_0003.png").is_file()
    assert cam.data.background_images[0].image.source == "SEQUENCE"

    spec = addon.shot_spec.build_shot_spec(scene, avatar, folder, device="cpu")
    job = addon.bake.BakeJob(backend, scene.name, cam.name, spec)
    job.start()
    progressed = False
    while job.poll() is not None:
        assert time.monotonic() < deadline
        if scene.emosplat.progress > 0 and not progressed:
            progressed = True
            job.cancel()
        time.sleep(0.02)
    assert progressed and job.error is None and job.result["type"] == "cancelled"
    assert scene.emosplat.status.startswith("cancelled") and not scene.emosplat.baking
    assert 1 <= len(job.result["frames"]) < 40  # stopped early; finished frames stay for the next bake
    assert backend.request({"type": "ping"})["pong"]  # and the backend is ready for more

"""The Blender demo script end to end on a tiny shot: add-on operators, real backend, compositor, MP4 with sound."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from addon_env import REPO

pytestmark = pytest.mark.blender

SCRIPT = REPO / "scripts" / "blender_demo.py"
SIZE, FRAMES = 64, 8


def _demo_module():
    spec = importlib.util.spec_from_file_location("blender_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no bpy at import time: constants and the camera projection only
    return module


def _read_video(path):
    import av

    with av.open(str(path)) as container:
        has_audio = len(container.streams.audio) > 0
        frames = [f.to_ndarray(format="rgb24").astype(np.float64) / 255.0 for f in container.decode(video=0)]
    return frames, has_audio


def _patch(image: np.ndarray, xy: tuple[float, float], radius: int = 1) -> np.ndarray:
    """Mean colour of the (2 radius + 1)^2 pixels around `xy`."""
    c, r = int(xy[0]), int(xy[1])
    return image[r - radius:r + radius + 1, c - radius:c + radius + 1].reshape(-1, image.shape[-1]).mean(0)


def test_blender_demo_renders_a_composited_mp4_with_sound(tmp_path):
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("bpy is not installed")
    from PIL import Image

    demo = _demo_module()
    out, cache = tmp_path / "demo.mp4", tmp_path / "cache"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--frames", str(FRAMES), "--size",
                           f"{SIZE}x{SIZE}", "--engine", "WORKBENCH", "--cache", str(cache)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"video: {out}" in proc.stdout and "baked 8 frames (8 new)" in proc.stdout

    frames, has_audio = _read_video(out)
    assert len(frames) == FRAMES and has_audio
    first = frames[0]
    (avatar_png,) = cache.glob("*/avatar_0001.png")  # the add-on's bake of frame 1
    avatar = np.asarray(Image.open(avatar_png).convert("RGBA")).astype(np.float64) / 255.0

    # Where the mug hides the head: inside the mug's outline (its front face through the demo camera, shrunk by
    # 2 px against edge blending) and where the baked head is opaque. The video must show the mug there.
    x, y, z = demo.MUG_CENTER
    r, h = demo.MUG_RADIUS, demo.MUG_HEIGHT
    left, top = demo.project_to_pixel((x - r, y, z + h / 2), SIZE, SIZE)  # outline edges at the axis' depth
    right, _ = demo.project_to_pixel((x + r, y, z + h / 2), SIZE, SIZE)
    _, rim = demo.project_to_pixel((x, y - r, z + h / 2), SIZE, SIZE)  # the rim's front edge: lowest in the image
    box = np.zeros((SIZE, SIZE), bool)
    box[int(np.ceil(max(top, rim))) + 2:, int(np.ceil(left)) + 2:int(right) - 2] = True
    hidden = box & (avatar[..., 3] > 0.99)
    assert hidden.sum() >= 12, "test setup: the mug must stand in front of part of the head"
    seen = np.median(first[hidden], axis=0)
    assert seen[2] > seen[0] + 0.3 and seen[2] > seen[1] + 0.15, seen  # the mug's blue (shaded, so by hue)
    assert np.abs(seen - np.median(avatar[hidden][:, :3], axis=0)).max() > 0.3  # not the head's colour

    # The nose tip: nothing in front, so the video shows the baked head there (composited, colours unchanged).
    nose_px = demo.project_to_pixel((0.0, -0.11, 0.0), SIZE, SIZE)
    assert _patch(avatar, nose_px)[3] > 0.99
    seen = _patch(first, nose_px)
    assert np.abs(seen - _patch(avatar, nose_px)[:3]).max() < 0.08, (seen, _patch(avatar, nose_px))
    assert np.abs(seen - _patch(first, (3, 3))).max() > 0.15  # and not the backdrop (the top-left corner)

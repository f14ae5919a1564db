"""Rendering the rig test of `emo_backend.preview` into an MP4 (the `emosplat preview` job)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emo_backend.avatar.gaussians import activate
from emo_backend.files.video import mp4_writer
from emo_backend.preview import rig_test_timeline
from emo_backend.render.camera import intrinsics_from_fov, look_at

BACKGROUND = np.array([0.16, 0.17, 0.19], np.float32)  # a neutral dark grey, like a viewport
FOV_Y_DEG = 18.0  # a portrait lens (~75 mm on full frame)


HEAD_AND_NECK_M = 0.29  # crown to just below the chin: what a portrait frames, whatever the neck stub's length


def frame_avatar(means: Tensor, fov_y_deg: float, fill: float = 0.85) -> Tensor:
    """A front viewmat [4, 4] that makes the neutral head (means [N, 3]) fill `fill` of the frame height."""
    lo, hi = means.min(0).values.clone(), means.max(0).values
    lo[1] = max(float(lo[1]), float(hi[1]) - HEAD_AND_NECK_M)
    centre = (lo + hi) / 2
    height = float(hi[1] - lo[1])
    depth = float(hi[2] - lo[2])
    distance = (height / fill) / 2 / math.tan(math.radians(fov_y_deg) / 2) + depth / 2
    eye = centre + torch.tensor([0.0, 0.0, distance])
    return look_at(eye, centre, torch.tensor([0.0, 1.0, 0.0]))


def _label(image: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    size = max(12, image.shape[0] // 32)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    draw.text((size // 2, image.shape[0] - size * 2), text, fill=(235, 235, 235), font=font)
    return np.asarray(pil)


def render_rig_test(avatar_ref: str, out: Path, size: int = 512, fps: float = 25.0, backend: str = "auto") -> dict:
    from tqdm import tqdm

    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.bundle import load_avatar, resolve_avatar_path
    from emo_backend.render import rasterize, resolve_backend

    avatar = load_avatar(resolve_avatar_path(avatar_ref))
    backend = resolve_backend(backend)
    timeline = rig_test_timeline(avatar.head.expr_names, fps=fps)
    num_frames = timeline.expression.shape[0]

    with torch.no_grad():
        neutral, _ = evaluate(avatar, timeline.expression[:1] * 0, timeline.pose[:1] * 0)
    K = intrinsics_from_fov(FOV_Y_DEG, size, size)
    viewmat = frame_avatar(neutral.means[0], FOV_Y_DEG)

    render_seconds = 0.0
    with mp4_writer(out, fps, size, size) as write, torch.no_grad():
        for f in tqdm(range(num_frames), desc="preview", unit="frame"):
            gaussians, _ = evaluate(avatar, timeline.expression[f : f + 1], timeline.pose[f : f + 1])
            g = activate(gaussians.frame(0))
            start = time.perf_counter()
            rgb, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, viewmat, K, size, size, backend=backend)
            render_seconds += time.perf_counter() - start
            rgb = np.asarray(rgb, np.float32)
            alpha = np.asarray(alpha, np.float32)
            image = np.clip(rgb + (1 - alpha) * BACKGROUND, 0, 1)
            write(_label((image * 255 + 0.5).astype(np.uint8), timeline.labels[f]))
    return {
        "frames": num_frames,
        "seconds": num_frames / fps,
        "ms_per_frame": 1000 * render_seconds / max(1, num_frames),
        "backend": backend,
    }

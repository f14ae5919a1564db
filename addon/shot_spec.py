"""Scene -> shot spec (docs/shot-spec.md): everything the backend needs, sampled per frame.

Each frame is evaluated by Blender itself (`frame_set`), so animated cameras,
parents, constraints, drivers and the emotion F-curves all come out exactly as
Blender shows them.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from . import animation, camera, sound
from .properties import AVATAR_TO_BLENDER

SPEC_VERSION = 1


class ShotError(ValueError):
    """The scene cannot be baked as it is; the message says what to change."""


def output_folder(cache_root: str, scene, avatar) -> str:
    """Per scene and avatar, so two avatars or scenes never overwrite each other's frames."""
    blend = bpy.path.basename(bpy.data.filepath) or "untitled"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{os.path.splitext(blend)[0]}_{scene.name}_"
                   f"{avatar.name}")
    return os.path.join(cache_root, safe)


def build_shot_spec(scene, avatar, folder: str, device: str = "auto", backend: str = "auto",
                    frames: tuple[int, int] | None = None) -> dict:
    """The spec for baking `avatar` seen through the scene camera over the frame range (or `frames`)."""
    cam = scene.camera
    if cam is None:
        raise ShotError("the scene has no active camera; add one and make it active (Ctrl+Numpad 0)")
    start, end = frames if frames is not None else (scene.frame_start, scene.frame_end)
    if end < start:
        raise ShotError(f"frame range {start}-{end} is empty")
    axis = np.array(AVATAR_TO_BLENDER)
    K, views, mats, weights, intensity, blink = [], [], [], [], [], []
    size = None
    original = scene.frame_current
    try:
        for f in range(start, end + 1):
            scene.frame_set(f)
            settings = camera.settings_from_blender(cam, scene)
            size = (settings.width, settings.height)
            k, v = camera.opencv_camera(settings)
            K.append(k.tolist())
            views.append(v.tolist())
            mats.append((np.array(avatar.matrix_world) @ axis).tolist())
            w, i, b = animation.current_channels(avatar)
            weights.append(w.tolist())
            intensity.append(i)
            blink.append(b)
    except camera.CameraError as err:
        raise ShotError(str(err)) from None
    finally:
        scene.frame_set(original)
    strip = sound.find_audio_strip(scene)
    audio = bpy.path.abspath(strip.sound.filepath) if strip is not None and strip.sound is not None else None
    settings = avatar.emosplat
    avatar_path = settings.avatar_path.strip() or "default"
    if avatar_path != "default":
        avatar_path = bpy.path.abspath(avatar_path)
    return {
        "version": SPEC_VERSION,
        "fps": scene.render.fps / scene.render.fps_base,
        "frame_range": [start, end],
        "resolution": list(size),
        "audio": audio,
        "avatar": avatar_path,
        "emotion": {"weights": weights, "intensity": intensity},
        "blink": "auto" if settings.auto_blink else blink,
        "camera": {"K": K, "viewmat": views},
        "avatar_matrix": mats,
        "output": {"folder": folder, "stem": "avatar", "format": "png"},
        "backend": backend,
        "device": device,
        "seed": 0,
    }

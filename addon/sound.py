"""The shot's speech clip as a sound strip in the sequencer, at the scene start."""

from __future__ import annotations

import math
import os

import bpy

from . import compat

STRIP_NAME = "EmoSplat audio"
OWNER_KEY = "emosplat_audio"


def find_audio_strip(scene):
    editor = scene.sequence_editor
    if editor is None:
        return None
    return next((s for s in compat.strips(scene) if s.get(OWNER_KEY)), None)


def load_audio(scene, filepath: str, set_range: bool = True):
    """Add (or replace) the EmoSplat sound strip at the scene start; frame range set to the clip's length."""
    path = bpy.path.abspath(filepath)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; choose a WAV, FLAC, MP3 or OGG speech clip")
    strips = compat.strips(scene)
    old = find_audio_strip(scene)
    channel = old.channel if old is not None else 1
    if old is not None:
        sound = getattr(old, "sound", None)
        strips.remove(old)
        if sound is not None and sound.users == 0:
            bpy.data.sounds.remove(sound)
    strip = strips.new_sound(STRIP_NAME, path, channel, scene.frame_start)
    strip[OWNER_KEY] = True
    if strip.sound is None or strip.frame_final_duration <= 0:
        raise ValueError(f"Blender could not read audio from {path}; convert it to WAV")
    if set_range:
        fps = scene.render.fps / scene.render.fps_base
        seconds = sound_seconds(path, fallback_frames=strip.frame_duration, fps=fps)
        scene.frame_end = scene.frame_start + max(1, math.ceil(seconds * fps - 1e-6)) - 1
    return strip


def sound_seconds(path: str, fallback_frames: int, fps: float) -> float:
    """Exact clip length in seconds through Blender's audio library (aud); the strip's frame count otherwise."""
    try:
        import aud

        sound = aud.Sound(path)
        rate = sound.specs[0]
        if sound.length > 0 and rate > 0:
            return sound.length / rate
    except Exception:  # aud missing (built without audio) or the file is odd: the strip already measured it
        pass
    return fallback_frames / fps

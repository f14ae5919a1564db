"""Emotion keys on the avatar object, and the per-frame values the shot is made from."""

from __future__ import annotations

import numpy as np

from . import compat
from .properties import CHANNEL_PROPS, DATA_PATH_PREFIX, EMOTIONS, WEIGHT_PROPS


def key_emotion(avatar, frame: int, emotion: str, intensity: float) -> None:
    """Key all nine channels at `frame`: `emotion`'s weight 1, the others 0, and `intensity`.

    Keying every channel (not just the one that changes) pins the blend at this
    frame, so moving from one key to the next fades one emotion out while the
    next fades in.
    """
    name = emotion.lower()
    if name not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; one of {', '.join(EMOTIONS)}")
    settings = avatar.emosplat
    for prop, emo in zip(WEIGHT_PROPS, EMOTIONS):
        setattr(settings, prop, 1.0 if emo == name else 0.0)
    settings.intensity = float(intensity)
    for prop in CHANNEL_PROPS:
        avatar.keyframe_insert(data_path=DATA_PATH_PREFIX + prop, frame=frame, group="EmoSplat emotion")


def key_blink(avatar, frame: int, value: float) -> None:
    avatar.emosplat.blink = float(value)
    avatar.keyframe_insert(data_path=DATA_PATH_PREFIX + "blink", frame=frame, group="EmoSplat emotion")


def emotion_fcurves(avatar) -> dict[str, object]:
    """channel name -> F-curve for the channels that are keyed."""
    out = {}
    for prop in (*CHANNEL_PROPS, "blink"):
        fc = compat.find_fcurve(avatar, DATA_PATH_PREFIX + prop)
        if fc is not None:
            out[prop] = fc
    return out


def current_channels(avatar) -> tuple[np.ndarray, float, float]:
    """(weights [8], intensity, blink) as the object holds them now (after frame_set: the animated values)."""
    s = avatar.emosplat
    weights = np.array([getattr(s, prop) for prop in WEIGHT_PROPS], dtype=np.float64)
    if weights.sum() <= 0:  # nothing keyed to a positive weight: the neutral face
        weights[0] = 1.0
    return weights, float(s.intensity), float(s.blink)

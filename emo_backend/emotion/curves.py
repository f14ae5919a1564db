"""Per-frame emotion, intensity and blink curves from keyframes.

The JSON format (documented for users in docs/emotion-curves.md)::

    {
      "fps": 25,                           # optional; needed only to read "frame" keys at another shot fps
      "interpolation": "smooth",           # optional default: smooth | ease | linear | constant
      "keys": [
        {"frame": 0,  "emotion": "neutral"},
        {"time": 1.5, "weights": {"happy": 1}, "intensity": 0.8},
        {"frame": 80, "emotion": "happy:1+surprised:1@0.8", "interpolation": "ease"}
      ],
      "blink": {"auto": true, "seed": 0, "rate_per_min": 17,
                "keys": [{"frame": 40, "value": 0}, {"frame": 44, "value": 1}, {"frame": 60, "value": 1},
                         {"frame": 64, "value": 0}]}
    }

A key has exactly one of "frame" (video frame, may be fractional) or "time"
(seconds), and exactly one of "emotion" (a string in the grammar of
`space.parse_emotion`) or "weights" (name -> non-negative number). "intensity"
(in [0, 1]) overrides the string's intensity; for "weights" it defaults to 1.
"blink" may also be just the list of keys (automatic blinks elsewhere).

What is interpolated: the per-category emotional amounts (intensity x weight
of the seven non-neutral categories), not weights and intensity separately.
A fade from neutral to happy@0.8 thus stays 100 % happy while its intensity
rises 0 -> 0.8, instead of blending in a "neutral" category at half intensity
(which would weaken the emotion twice); happy@1 -> sad@1 passes through
half happy, half sad at full intensity. Sampled weights are renormalised
(non-negative, sum 1), intensity is the summed amount clamped to [0, 1]
(see `space.canonicalize`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emo_backend.audio.features import exact_fps, frame_times
from emo_backend.emotion.blink import DEFAULT_RATE_PER_MIN, blink_curve
from emo_backend.emotion.interpolate import MODES, interpolate_keys
from emo_backend.emotion.space import (
    NUM_EMOTIONS,
    EmotionFrame,
    from_amounts,
    parse_emotion,
    to_amounts,
)
from emo_backend.errors import EmoSplatError, InvalidFileError


@dataclass(frozen=True)
class Key:
    """One key: at `frame` (video frames, at the curve's fps or the shot's) or `time` seconds."""

    value: EmotionFrame | float  # EmotionFrame for emotion keys, AU45 in [0, 1] for blink keys
    frame: float | None = None
    time: float | None = None
    interpolation: str | None = None  # mode of the segment this key starts; None = the curve's default

    def seconds(self, fps: Fraction) -> float:
        return float(self.time) if self.time is not None else float(self.frame) * fps.denominator / fps.numerator


@dataclass
class EmotionCurves:
    """Keyed emotion and blink channels; `sample` turns them into per-frame arrays."""

    keys: list[Key]
    fps: Fraction | None = None  # fps of "frame" keys; None = the shot's fps
    interpolation: str = "smooth"
    blink_keys: list[Key] = field(default_factory=list)
    blink_auto: bool = True
    blink_seed: int = 0
    blink_rate_per_min: float = DEFAULT_RATE_PER_MIN

    def sample(
        self, num_frames: int, fps: float | Fraction
    ) -> tuple[Tensor, Tensor, Tensor]:  # weights [F, 8], intensity [F], blink [F]
        weights, intensity = sample_emotion(self.keys, num_frames, fps, self.interpolation, self.fps)
        keyed = sample_keyed_blink(self.blink_keys, num_frames, fps, self.interpolation, self.fps)
        blink = blink_curve(num_frames, fps, self.blink_seed, keyed, self.blink_rate_per_min, auto=self.blink_auto)
        return weights, intensity, blink


def _key_times(keys: list[Key], key_fps: Fraction) -> np.ndarray:
    times = np.array([k.seconds(key_fps) for k in keys], dtype=np.float64)
    order = np.argsort(times, kind="stable")
    if np.any(np.diff(times[order]) <= 1e-9):
        dup = times[order][np.argmin(np.diff(times[order]))]
        raise EmoSplatError(f"two keys are at the same time ({dup:.4f} s); remove one")
    return times


def sample_emotion(
    keys: list[Key],
    num_frames: int,
    fps: float | Fraction,
    interpolation: str = "smooth",
    key_fps: float | Fraction | None = None,
) -> tuple[Tensor, Tensor]:  # weights [F, 8] (sum 1), intensity [F] in [0, 1]
    """Per-frame canonical weights and intensity from emotion keys (no keys: neutral throughout)."""
    fps = exact_fps(fps)
    if not keys:
        weights = torch.zeros(num_frames, NUM_EMOTIONS)
        weights[:, 0] = 1.0
        return weights, torch.zeros(num_frames)
    key_fps = fps if key_fps is None else exact_fps(key_fps)
    times = _key_times(keys, key_fps)
    order = np.argsort(times)
    values = torch.stack(
        [to_amounts(torch.tensor(keys[i].value.weights), torch.tensor(keys[i].value.intensity)) for i in order]
    ).numpy()  # [K, 7]
    modes = [keys[i].interpolation or interpolation for i in order]
    amounts = interpolate_keys(times[order], values, modes, frame_times(num_frames, fps).numpy())  # [F, 7]
    return from_amounts(torch.from_numpy(amounts.astype(np.float32)))


def sample_keyed_blink(
    keys: list[Key],
    num_frames: int,
    fps: float | Fraction,
    interpolation: str = "smooth",
    key_fps: float | Fraction | None = None,
) -> Tensor:  # [F] AU45 in [0, 1], NaN outside the keyed span
    """The keyed blink channel, defined from the frame of the first key to the frame of the last."""
    out = torch.full((num_frames,), float("nan"))
    if not keys:
        return out
    fps = exact_fps(fps)
    key_fps = fps if key_fps is None else exact_fps(key_fps)
    times = _key_times(keys, key_fps)
    order = np.argsort(times)
    modes = [keys[i].interpolation or interpolation for i in order]
    values = np.array([[float(keys[i].value)] for i in order])
    first = max(0, round(times[order[0]] * float(fps)))
    last = min(num_frames - 1, round(times[order[-1]] * float(fps)))
    if last < first:
        return out
    t = frame_times(num_frames, fps).numpy()[first : last + 1]
    sampled = interpolate_keys(times[order], values, modes, t)[:, 0]
    out[first : last + 1] = torch.from_numpy(np.clip(sampled, 0.0, 1.0).astype(np.float32))
    return out


# ---- JSON ---------------------------------------------------------------------------------------------------


def load_curves(path: str | os.PathLike) -> EmotionCurves:
    """Read an emotion-curves JSON file; errors name the file and the key at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidFileError(f"emotion curves file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidFileError(f"emotion curves file {path} cannot be read ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidFileError(
            f"emotion curves file {path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            "see docs/emotion-curves.md for the format"
        ) from None
    try:
        return parse_curves(data)
    except EmoSplatError as err:
        raise InvalidFileError(f"emotion curves file {path}: {err}") from None


def parse_curves(data: dict) -> EmotionCurves:
    """Build EmotionCurves from the JSON object (see module docstring)."""
    if not isinstance(data, dict):
        raise EmoSplatError("the top level must be an object with a 'keys' list")
    unknown = set(data) - {"fps", "interpolation", "keys", "blink"}
    if unknown:
        raise EmoSplatError(f"unknown field(s) {sorted(unknown)}; allowed: fps, interpolation, keys, blink")
    fps = None if data.get("fps") is None else _fps(data["fps"], "fps")
    interpolation = _mode(data.get("interpolation", "smooth"), "interpolation")
    raw_keys = data.get("keys", [])
    if not isinstance(raw_keys, list):
        raise EmoSplatError("'keys' must be a list of key objects")
    keys = [_emotion_key(k, f"keys[{i}]") for i, k in enumerate(raw_keys)]
    curves = EmotionCurves(keys=keys, fps=fps, interpolation=interpolation)
    blink = data.get("blink")
    if blink is None:
        return curves
    if isinstance(blink, list):
        blink = {"keys": blink}
    if not isinstance(blink, dict):
        raise EmoSplatError("'blink' must be a list of keys or an object {auto, seed, rate_per_min, keys}")
    unknown = set(blink) - {"auto", "seed", "rate_per_min", "keys"}
    if unknown:
        raise EmoSplatError(f"blink: unknown field(s) {sorted(unknown)}; allowed: auto, seed, rate_per_min, keys")
    if not isinstance(blink.get("auto", True), bool):
        raise EmoSplatError("blink.auto must be true or false")
    curves.blink_auto = blink.get("auto", True)
    seed = blink.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise EmoSplatError(f"blink.seed must be a non-negative integer, got {seed!r}")
    curves.blink_seed = seed
    rate = blink.get("rate_per_min", DEFAULT_RATE_PER_MIN)
    if not _is_number(rate) or not 0 < rate <= 120:
        raise EmoSplatError(f"blink.rate_per_min must be a number in (0, 120], got {rate!r}")
    curves.blink_rate_per_min = float(rate)
    raw = blink.get("keys", [])
    if not isinstance(raw, list):
        raise EmoSplatError("blink.keys must be a list of {frame|time, value} objects")
    curves.blink_keys = [_blink_key(k, f"blink.keys[{i}]") for i, k in enumerate(raw)]
    return curves


def curves_to_json(curves: EmotionCurves) -> dict:
    """The JSON object for `curves` (inverse of `parse_curves`)."""

    def place(key: Key) -> dict:
        out = {"frame": key.frame} if key.frame is not None else {"time": key.time}
        if key.interpolation:
            out["interpolation"] = key.interpolation
        return out

    data: dict = {"interpolation": curves.interpolation, "keys": []}
    if curves.fps is not None:
        data["fps"] = float(curves.fps) if curves.fps.denominator != 1 else int(curves.fps)
    for key in curves.keys:
        data["keys"].append({**place(key), "weights": key.value.as_dict(), "intensity": key.value.intensity})
    data["blink"] = {
        "auto": curves.blink_auto,
        "seed": curves.blink_seed,
        "rate_per_min": curves.blink_rate_per_min,
        "keys": [{**place(k), "value": float(k.value)} for k in curves.blink_keys],
    }
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fps(value, where: str) -> Fraction:
    if not _is_number(value) or value <= 0:
        raise EmoSplatError(f"{where} must be a positive number, got {value!r}")
    return exact_fps(value)


def _mode(value, where: str) -> str:
    if value not in MODES:
        raise EmoSplatError(f"{where} must be one of {', '.join(MODES)}, got {value!r}")
    return value


def _place(raw: dict, where: str) -> dict:
    has_frame, has_time = "frame" in raw, "time" in raw
    if has_frame == has_time:
        raise EmoSplatError(f"{where}: give exactly one of 'frame' or 'time'")
    name = "frame" if has_frame else "time"
    value = raw[name]
    if not _is_number(value) or value < 0:
        raise EmoSplatError(f"{where}.{name} must be a number >= 0, got {value!r}")
    interpolation = raw.get("interpolation")
    if interpolation is not None:
        _mode(interpolation, f"{where}.interpolation")
    return {name: float(value), "interpolation": interpolation}


def _emotion_key(raw, where: str) -> Key:
    if not isinstance(raw, dict):
        raise EmoSplatError(f"{where} must be an object like {{\"frame\": 0, \"emotion\": \"happy@0.8\"}}")
    unknown = set(raw) - {"frame", "time", "emotion", "weights", "intensity", "interpolation"}
    if unknown:
        raise EmoSplatError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: frame, time, emotion, weights, intensity, interpolation"
        )
    place = _place(raw, where)
    if ("emotion" in raw) == ("weights" in raw):
        raise EmoSplatError(f"{where}: give exactly one of 'emotion' (e.g. \"happy@0.8\") or 'weights'")
    intensity = raw.get("intensity")
    if intensity is not None and (not _is_number(intensity) or not 0 <= intensity <= 1):
        raise EmoSplatError(f"{where}.intensity must be a number in [0, 1], got {intensity!r}")
    try:
        if "emotion" in raw:
            if not isinstance(raw["emotion"], str):
                raise EmoSplatError(f"'emotion' must be a string like \"happy@0.8\", got {raw['emotion']!r}")
            value = parse_emotion(raw["emotion"])
            if intensity is not None:
                value = EmotionFrame(value.weights, float(intensity))
        else:
            if not isinstance(raw["weights"], dict):
                raise EmoSplatError("'weights' must be an object like {\"happy\": 0.7, \"surprised\": 0.3}")
            value = EmotionFrame.from_dict(raw["weights"], 1.0 if intensity is None else float(intensity))
    except EmoSplatError as err:
        raise EmoSplatError(f"{where}: {err}") from None
    return Key(value=value, **place)


def _blink_key(raw, where: str) -> Key:
    if not isinstance(raw, dict):
        raise EmoSplatError(f"{where} must be an object like {{\"frame\": 10, \"value\": 1}}")
    unknown = set(raw) - {"frame", "time", "value", "interpolation"}
    if unknown:
        raise EmoSplatError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: frame, time, value, interpolation")
    place = _place(raw, where)
    value = raw.get("value")
    if not _is_number(value) or not 0 <= value <= 1:
        raise EmoSplatError(f"{where}.value must be a number in [0, 1] (0 open, 1 closed), got {value!r}")
    return Key(value=float(value), **place)

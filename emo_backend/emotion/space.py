"""The emotion space: eight MEAD categories with weights, plus an intensity.

A frame's emotion is 8 non-negative weights over `EMOTIONS` (normalised to
sum 1; all zero means neutral) and an intensity in [0, 1]. MEAD's levels
1, 2, 3 are intensities 1/3, 2/3, 1. Per-frame arrays are torch float32:
weights [F, 8], intensity [F].

Canonical form (`canonicalize`): a neutral share in the weights is the same
thing as a lower intensity (neutral sits at the origin: "half neutral, half
happy at 1" is "happy at 1/2"). The canonical form folds it into intensity:
weights over the seven emotional categories only, or exactly one-hot neutral
with intensity 0. Curves, valence/arousal and text prompts all produce it.

Emotion strings (command line, shot specs)::

    spec      := mixture [ "@" intensity ]
    mixture   := term { "+" term }
    term      := name [ ":" amount ]
    name      := neutral | angry | contempt | disgusted | fear | happy | sad | surprised
                 (case-insensitive; also anger, contemptuous, disgust, afraid, fearful,
                  scared, happiness, joy, sadness, surprise)
    amount    := number >= 0            (default 1)
    intensity := number in [0, 1] | number "%" | "L1" | "L2" | "L3"   (MEAD levels)

Without "@", the amounts are absolute: their sum is the intensity (it must
not exceed 1) and their ratios are the weights, so "happy:0.7" is happy at
intensity 0.7 and "happy:0.3+sad:0.2" is 60 % happy / 40 % sad at 0.5. A
term without an amount counts 1, so "happy" is happy at full intensity.
With "@", the amounts are only relative weights and the intensity is given:
"happy:1+surprised:1@0.8" is half happy, half surprised at 0.8.
Spaces are ignored. "neutral" alone is neutral at intensity 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from emo_backend.errors import EmoSplatError

EMOTIONS: tuple[str, ...] = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
NUM_EMOTIONS = len(EMOTIONS)
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
NEUTRAL = 0

MEAD_LEVELS: dict[int, float] = {1: 1.0 / 3.0, 2: 2.0 / 3.0, 3: 1.0}

ALIASES: dict[str, str] = {
    "anger": "angry", "mad": "angry",
    "contemptuous": "contempt",
    "disgust": "disgusted",
    "afraid": "fear", "fearful": "fear", "scared": "fear",
    "happiness": "happy", "joy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
    "none": "neutral",
}


def emotion_index(name: str) -> int:
    """Index of a category by name or alias (case-insensitive); clear error listing the names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in EMOTION_INDEX:
        raise EmoSplatError(f"unknown emotion {name!r}; use one of: {', '.join(EMOTIONS)}")
    return EMOTION_INDEX[key]


def mead_level_intensity(level: int) -> float:
    """MEAD intensity level 1, 2 or 3 as an intensity 1/3, 2/3 or 1."""
    if level not in MEAD_LEVELS:
        raise EmoSplatError(f"MEAD intensity level must be 1, 2 or 3, got {level!r}")
    return MEAD_LEVELS[level]


def one_hot(name: str) -> Tensor:  # [8]
    weights = torch.zeros(NUM_EMOTIONS)
    weights[emotion_index(name)] = 1.0
    return weights


def normalize_weights(weights: Tensor) -> Tensor:  # [..., 8] -> [..., 8]
    """Clamp negatives (numerical noise) to 0 and scale to sum 1; an all-zero row becomes neutral."""
    w = torch.as_tensor(weights, dtype=torch.float32).clamp(min=0.0)
    total = w.sum(-1, keepdim=True)
    neutral = torch.zeros_like(w)
    neutral[..., NEUTRAL] = 1.0
    return torch.where(total > 0, w / total.clamp(min=1e-12), neutral)


def canonicalize(
    weights: Tensor,  # [..., 8] non-negative
    intensity: Tensor,  # [...]
) -> tuple[Tensor, Tensor]:  # weights [..., 8], intensity [...]
    """Fold the neutral share into intensity (see module docstring); zero emotion -> one-hot neutral, 0."""
    w = normalize_weights(weights)
    i = torch.as_tensor(intensity, dtype=torch.float32).clamp(0.0, 1.0)
    amounts = w[..., 1:] * i.unsqueeze(-1)  # [..., 7] emotional amount per category
    return from_amounts(amounts)


def from_amounts(amounts: Tensor) -> tuple[Tensor, Tensor]:  # [..., 7] -> weights [..., 8], intensity [...]
    """Canonical weights and intensity from per-category amounts (intensity x weight) of the 7 emotions."""
    amounts = amounts.clamp(min=0.0)
    total = amounts.sum(-1)
    weights = torch.zeros(*amounts.shape[:-1], NUM_EMOTIONS)
    weights[..., 1:] = amounts
    return normalize_weights(weights), total.clamp(0.0, 1.0)


def to_amounts(weights: Tensor, intensity: Tensor) -> Tensor:  # [..., 8], [...] -> [..., 7]
    """Per-category emotional amounts: intensity times each non-neutral weight (after normalising)."""
    w = normalize_weights(weights)
    return w[..., 1:] * torch.as_tensor(intensity, dtype=torch.float32).clamp(0.0, 1.0).unsqueeze(-1)


@dataclass(frozen=True)
class EmotionFrame:
    """One frame's emotion: weights [8] (sum 1, >= 0) and intensity in [0, 1]."""

    weights: tuple[float, ...]
    intensity: float

    def __post_init__(self):
        if len(self.weights) != NUM_EMOTIONS:
            raise EmoSplatError(f"emotion weights need {NUM_EMOTIONS} values ({', '.join(EMOTIONS)}), got {len(self.weights)}")
        if any(not math.isfinite(w) or w < 0 for w in self.weights):
            raise EmoSplatError(f"emotion weights must be finite and >= 0, got {list(self.weights)}")
        if not math.isfinite(self.intensity) or not 0.0 <= self.intensity <= 1.0:
            raise EmoSplatError(f"emotion intensity must be in [0, 1], got {self.intensity}")
        normalised = tuple(float(v) for v in normalize_weights(torch.tensor(self.weights, dtype=torch.float32)))
        object.__setattr__(self, "weights", normalised)

    @classmethod
    def from_name(cls, name: str, intensity: float = 1.0) -> "EmotionFrame":
        return cls(tuple(float(v) for v in one_hot(name)), float(intensity))

    @classmethod
    def from_dict(cls, weights: dict[str, float], intensity: float = 1.0) -> "EmotionFrame":
        """{"happy": 0.7, "surprised": 0.3} -> weights (names or aliases; values >= 0)."""
        w = [0.0] * NUM_EMOTIONS
        for name, value in weights.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise EmoSplatError(f"weight of {name!r} must be a number, got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise EmoSplatError(f"weight of {name!r} must be >= 0, got {value}")
            w[emotion_index(name)] += value
        return cls(tuple(w), float(intensity))

    def __iter__(self):
        """Unpacks as `weights, intensity = frame`."""
        return iter((self.weights, self.intensity))

    def canonical(self) -> "EmotionFrame":
        w, i = canonicalize(torch.tensor(self.weights), torch.tensor(self.intensity))
        return EmotionFrame(tuple(float(v) for v in w), float(i))

    def as_dict(self) -> dict[str, float]:
        """Non-zero weights by name."""
        return {name: w for name, w in zip(EMOTIONS, self.weights) if w > 0}

    def dominant(self) -> str:
        return EMOTIONS[int(np.argmax(self.weights))]

    def __str__(self) -> str:
        terms = "+".join(f"{name}:{w:.3g}" for name, w in self.as_dict().items())
        return f"{terms}@{self.intensity:.3g}"


_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_TERM = re.compile(rf"^([A-Za-z_]+)(?::({_NUMBER}))?$")


def parse_emotion(text: str) -> EmotionFrame:
    """Parse an emotion string (grammar in the module docstring) into an EmotionFrame."""
    if not isinstance(text, str) or not text.strip():
        raise EmoSplatError("empty emotion string; write e.g. 'happy', 'happy:0.7' or 'happy:1+surprised:1@0.8'")
    source = text
    text = "".join(text.split())
    mixture, at, intensity_text = text.partition("@")
    if "@" in intensity_text:
        raise EmoSplatError(f"emotion {source!r} has more than one '@'; write e.g. 'happy+surprised@0.8'")
    weights = [0.0] * NUM_EMOTIONS
    for term in mixture.split("+"):
        match = _TERM.match(term)
        if not match:
            raise EmoSplatError(
                f"cannot read {term!r} in emotion {source!r}; each term is NAME or NAME:AMOUNT, "
                "e.g. 'happy:0.5+surprised:0.5@0.8'"
            )
        name, amount = match.group(1), match.group(2)
        weights[emotion_index(name)] += 1.0 if amount is None else float(amount)
    if at:
        intensity = _parse_intensity(intensity_text, source)
        if sum(weights) == 0:
            raise EmoSplatError(f"emotion {source!r} has all amounts 0; give at least one positive amount")
        return EmotionFrame(tuple(weights), intensity)
    emotional = sum(weights[1:])
    if weights[NEUTRAL] > 0 and emotional == 0:
        return EmotionFrame.from_name("neutral", 0.0)
    total = sum(weights)
    if total > 1.0 + 1e-6:
        raise EmoSplatError(
            f"the amounts in emotion {source!r} add up to {total:g}, more than 1; without '@' they are "
            "absolute (their sum is the intensity): scale them down, or add '@INTENSITY' to make them relative"
        )
    if total == 0:
        return EmotionFrame.from_name("neutral", 0.0)
    # Absolute amounts: a neutral amount counts towards the weights like any other (it lowers the emotion).
    return EmotionFrame(tuple(weights), min(total, 1.0))


def _parse_intensity(text: str, source: str) -> float:
    level = re.fullmatch(r"[Ll]([123])", text)
    if level:
        return MEAD_LEVELS[int(level.group(1))]
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise EmoSplatError(
            f"cannot read intensity {text!r} in emotion {source!r}; use a number in [0, 1], a percentage or L1/L2/L3"
        ) from None
    value = value / 100.0 if percent else value
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise EmoSplatError(f"intensity {text!r} in emotion {source!r} is outside [0, 1]")
    return value


def frames_to_arrays(frames: list[EmotionFrame]) -> tuple[Tensor, Tensor]:  # weights [F, 8], intensity [F]
    weights = torch.tensor([f.weights for f in frames], dtype=torch.float32).reshape(-1, NUM_EMOTIONS)
    intensity = torch.tensor([f.intensity for f in frames], dtype=torch.float32)
    return weights, intensity


def constant_arrays(frame: EmotionFrame, num_frames: int) -> tuple[Tensor, Tensor]:  # [F, 8], [F]
    """The same emotion on every frame."""
    weights = torch.tensor(frame.weights, dtype=torch.float32).expand(num_frames, NUM_EMOTIONS).clone()
    return weights, torch.full((num_frames,), float(frame.intensity))


def validate_arrays(weights: Tensor, intensity: Tensor, what: str = "emotion") -> tuple[Tensor, Tensor]:
    """Check shapes [F, 8] / [F], finiteness and ranges; return normalised float32 copies."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    intensity = torch.as_tensor(intensity, dtype=torch.float32)
    if weights.ndim != 2 or weights.shape[1] != NUM_EMOTIONS:
        raise EmoSplatError(f"{what} weights must have shape [frames, {NUM_EMOTIONS}], got {list(weights.shape)}")
    if intensity.shape != weights.shape[:1]:
        raise EmoSplatError(f"{what} intensity must have shape [{weights.shape[0]}], got {list(intensity.shape)}")
    if not torch.isfinite(weights).all() or not torch.isfinite(intensity).all():
        raise EmoSplatError(f"{what} weights and intensity must be finite")
    if (weights < 0).any():
        raise EmoSplatError(f"{what} weights must be >= 0")
    if ((intensity < 0) | (intensity > 1)).any():
        raise EmoSplatError(f"{what} intensity must be in [0, 1]")
    return normalize_weights(weights), intensity.clone()

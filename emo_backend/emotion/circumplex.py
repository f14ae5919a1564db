"""Valence/arousal <-> emotion weights, on a circumplex.

Placement (Russell, J. A. (1980). A circumplex model of affect. Journal of
Personality and Social Psychology, 39(6), 1161-1178): affect words lie
around a circle whose horizontal axis is valence (pleasure) and vertical axis
arousal; angle = kind of emotion, distance from the centre = how strong.
Angles (degrees, counter-clockwise from +valence) of the eight categories:

    happy       8   Russell's "happy" (7.8)
    surprised  70   Russell's "astonished" (69.8)
    angry      99   Russell's "angry" (99.2)
    fear      117   Russell's "afraid" (116.6)
    disgusted 150   not among Russell's 28 words; our placement: unpleasant,
                    moderately aroused, between anger and sadness
    contempt  170   not among Russell's words; our placement: unpleasant and
                    only slightly aroused (a "cold" emotion), next to disgust
    sad       208   Russell's "sad" (207.5)
    neutral         the origin

valence = intensity * cos(angle), arousal = intensity * sin(angle), both in
[-1, 1].

`va_to_emotion`: intensity = distance from the origin (clamped to 1); the
weights are an angular "hat" kernel between the two neighbouring categories
around the circle (linear in angle, so exactly on a category's angle its
weight is 1). The arc from sad (208) round to happy (368) has no category:
points there (calm, relaxed, tired) mix sad and happy by angle.
`emotion_to_va`: the intensity-weighted sum of the categories' unit vectors
(neutral contributes nothing), so opposite emotions cancel towards neutral as
the circumplex implies. Pure categories round-trip exactly both ways; mixes
of neighbours come back close to, not exactly at, their weights (the sum of
two unit vectors is shorter than the arc).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from emo_backend.emotion.space import EMOTION_INDEX, EMOTIONS, NUM_EMOTIONS, from_amounts, to_amounts

ANGLES_DEG: dict[str, float] = {
    "happy": 8.0,
    "surprised": 70.0,
    "angry": 99.0,
    "fear": 117.0,
    "disgusted": 150.0,
    "contempt": 170.0,
    "sad": 208.0,
}


def category_va(name: str) -> tuple[float, float]:
    """(valence, arousal) of a category at full intensity; neutral is (0, 0)."""
    if name == "neutral":
        return 0.0, 0.0
    angle = math.radians(ANGLES_DEG[name])
    return math.cos(angle), math.sin(angle)


def _unit_vectors() -> Tensor:  # [7, 2] for EMOTIONS[1:]
    return torch.tensor([category_va(name) for name in EMOTIONS[1:]], dtype=torch.float64)


def emotion_to_va(weights: Tensor, intensity: Tensor) -> tuple[Tensor, Tensor]:  # [..., 8], [...] -> [...], [...]
    """Valence and arousal of weighted emotions (see module docstring)."""
    amounts = to_amounts(weights, intensity).to(torch.float64)  # [..., 7]
    va = amounts @ _unit_vectors()  # [..., 2]
    return va[..., 0].float(), va[..., 1].float()


def va_to_emotion(valence: Tensor, arousal: Tensor) -> tuple[Tensor, Tensor]:  # [...], [...] -> [..., 8], [...]
    """Canonical weights and intensity for valence/arousal points (see module docstring)."""
    v = torch.as_tensor(valence, dtype=torch.float64)
    a = torch.as_tensor(arousal, dtype=torch.float64)
    v, a = torch.broadcast_tensors(v, a)
    radius = torch.hypot(v, a).clamp(max=1.0)
    angle = torch.rad2deg(torch.atan2(a, v)) % 360.0  # [...]
    order = sorted(ANGLES_DEG, key=ANGLES_DEG.get)
    anchors = torch.tensor([ANGLES_DEG[n] for n in order], dtype=torch.float64)  # ascending
    # Segment i runs from anchors[i] to anchors[i+1], the last wraps to anchors[0] + 360.
    upper = torch.cat([anchors[1:], anchors[:1] + 360.0])
    shifted = torch.where(angle < anchors[0], angle + 360.0, angle)
    seg = (torch.searchsorted(anchors, shifted.contiguous(), right=True) - 1).clamp(0, len(order) - 1)
    lo, hi = anchors[seg], upper[seg]
    frac = ((shifted - lo) / (hi - lo)).clamp(0.0, 1.0)
    # Snap float32 round-off (~1e-6 degree) so a category's own angle gives exactly that category.
    frac = torch.where(frac < 1e-5, torch.zeros_like(frac), torch.where(frac > 1 - 1e-5, torch.ones_like(frac), frac))
    columns = torch.tensor([EMOTION_INDEX[n] - 1 for n in order])  # index into the 7 emotional amounts
    amounts = torch.zeros(*v.shape, NUM_EMOTIONS - 1, dtype=torch.float64)
    amounts.scatter_(-1, columns[seg].unsqueeze(-1), ((1.0 - frac) * radius).unsqueeze(-1))
    nxt = columns[(seg + 1) % len(order)]
    amounts.scatter_add_(-1, nxt.unsqueeze(-1), (frac * radius).unsqueeze(-1))
    return from_amounts(amounts.float())

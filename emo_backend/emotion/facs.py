"""Emotion -> facial action units: EMFACS prototypes scaled by intensity.

The explicit, documented emotion pose used by the synthetic actor and when no
A2ET model is loaded. Recipes follow the EMFACS prototypes (Friesen & Ekman,
1983; as summarised in Ekman, Friesen & Hager, FACS Investigator's Guide,
2002). The amplitudes (coefficient of each expression basis at intensity 1,
in the head model's 0..1 AU units) are our choice, set so full emotions read
clearly without the bases saturating:

    happy      AU6 0.6, AU12 0.8
    sad        AU1 0.6, AU4 0.4, AU15 0.6
    surprised  AU1 0.8, AU2 0.8, AU5 0.6, AU26 (jaw 0.25 rad) + AU25 0.6
    fear       AU1 0.7, AU2 0.5, AU4 0.4, AU5 0.7, AU7 0.4, AU20 0.6, AU26 (jaw 0.15 rad) + AU25 0.5
    angry      AU4 0.8, AU5 0.5, AU7 0.6, AU23 0.6
    disgusted  AU9 0.8, AU15 0.4, AU16 0.4
    contempt   AU12R 0.5, AU14R 0.6  (unilateral: the subject's right side)
    neutral    nothing

AU names without a side drive both L and R bases. AU25 (lips part) is added
where EMFACS has AU26 because a dropped jaw parts the lips; AU26 is not a
basis, it is returned as `jaw_open` (radians of jaw rotation, positive =
open; the head model maps it onto its jaw joint axis).

The pose is linear in each category's amount (intensity x weight), so every
AU and the jaw are non-decreasing in intensity, and mixtures blend recipes by
weight. Values stay in [0, 1] because amounts sum to at most 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emo_backend.emotion.space import EMOTIONS, NUM_EMOTIONS, to_amounts
from emo_backend.head.expressions import ACTION_UNITS, au_indices

RECIPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "angry": {"AU4": 0.8, "AU5": 0.5, "AU7": 0.6, "AU23": 0.6},
    "contempt": {"AU12R": 0.5, "AU14R": 0.6},
    "disgusted": {"AU9": 0.8, "AU15": 0.4, "AU16": 0.4},
    "fear": {"AU1": 0.7, "AU2": 0.5, "AU4": 0.4, "AU5": 0.7, "AU7": 0.4, "AU20": 0.6, "AU25": 0.5},
    "happy": {"AU6": 0.6, "AU12": 0.8},
    "sad": {"AU1": 0.6, "AU4": 0.4, "AU15": 0.6},
    "surprised": {"AU1": 0.8, "AU2": 0.8, "AU5": 0.6, "AU25": 0.6},
}
JAW_OPEN_RAD: dict[str, float] = {"surprised": 0.25, "fear": 0.15}  # AU26 jaw drop at intensity 1


def recipe_matrix() -> tuple[Tensor, Tensor]:  # [8, E], [8]
    """AU coefficients and jaw opening of each category at intensity 1 (rows in EMOTIONS order)."""
    matrix = torch.zeros(NUM_EMOTIONS, len(ACTION_UNITS))
    jaw = torch.zeros(NUM_EMOTIONS)
    for row, name in enumerate(EMOTIONS):
        for au, amplitude in RECIPES[name].items():
            matrix[row, au_indices(au)] = amplitude
        jaw[row] = JAW_OPEN_RAD.get(name, 0.0)
    return matrix, jaw


def emotion_to_expression(
    weights: Tensor,  # [F, 8]
    intensity: Tensor,  # [F]
) -> tuple[Tensor, Tensor]:  # expression [F, E] over ACTION_UNITS, jaw_open [F] radians
    """The EMFACS emotion pose for each frame (see module docstring)."""
    amounts = to_amounts(weights, intensity)  # [F, 7]
    matrix, jaw = recipe_matrix()
    return amounts @ matrix[1:], amounts @ jaw[1:]

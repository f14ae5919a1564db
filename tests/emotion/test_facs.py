"""EMFACS recipes: the right action units per emotion, monotone in intensity."""

from __future__ import annotations

import pytest
import torch

from emo_backend.emotion.facs import RECIPES, emotion_to_expression
from emo_backend.emotion.space import EMOTIONS, one_hot
from emo_backend.head.expressions import ACTION_UNITS, AU_INDEX, au_indices

EXPECTED = {
    "happy": {"AU6", "AU12"},
    "sad": {"AU1", "AU4", "AU15"},
    "surprised": {"AU1", "AU2", "AU5", "AU25"},
    "fear": {"AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU25"},
    "angry": {"AU4", "AU5", "AU7", "AU23"},
    "disgusted": {"AU9", "AU15", "AU16"},
    "contempt": {"AU12R", "AU14R"},
    "neutral": set(),
}


def _active(expression: torch.Tensor) -> set[str]:
    names = {ACTION_UNITS[i] for i in torch.nonzero(expression > 0).flatten().tolist()}
    # report bilateral units by their FACS number
    out = set()
    for name in names:
        base = name.rstrip("LR") if name[-1] in "LR" else name
        if name[-1] in "LR" and base + "L" in names and base + "R" in names:
            out.add(base)
        else:
            out.add(name)
    return out


@pytest.mark.parametrize("name", EMOTIONS)
def test_recipe_units(name):
    expression, jaw = emotion_to_expression(one_hot(name)[None], torch.tensor([1.0]))
    assert expression.shape == (1, len(ACTION_UNITS)) and jaw.shape == (1,)
    assert _active(expression[0]) == EXPECTED[name]
    assert (jaw[0] > 0) == (name in ("surprised", "fear"))  # AU26 jaw drop
    assert ((expression >= 0) & (expression <= 1)).all()


def test_contempt_is_unilateral_right():
    expression, _ = emotion_to_expression(one_hot("contempt")[None], torch.tensor([1.0]))
    assert expression[0, AU_INDEX["AU12R"]] > 0 and expression[0, AU_INDEX["AU12L"]] == 0
    assert expression[0, AU_INDEX["AU14R"]] > 0 and expression[0, AU_INDEX["AU14L"]] == 0


@pytest.mark.parametrize("name", EMOTIONS[1:])
def test_monotone_in_intensity(name):
    levels = torch.linspace(0, 1, 11)
    expression, jaw = emotion_to_expression(one_hot(name).expand(11, 8), levels)
    assert (expression.diff(dim=0) >= 0).all() and (jaw.diff() >= 0).all()
    assert (expression[0] == 0).all() and jaw[0] == 0
    assert expression[-1].max() > 0.5


def test_full_happy_amplitudes_and_mixture():
    expression, _ = emotion_to_expression(one_hot("happy")[None], torch.tensor([1.0]))
    assert expression[0, au_indices("AU12")].tolist() == pytest.approx([0.8, 0.8])
    mix = (one_hot("happy") + one_hot("sad"))[None] / 2
    mixed, _ = emotion_to_expression(mix, torch.tensor([1.0]))
    assert mixed[0, AU_INDEX["AU12L"]] == pytest.approx(0.4)
    assert mixed[0, AU_INDEX["AU4"]] == pytest.approx(RECIPES["sad"]["AU4"] / 2)

"""Valence/arousal <-> emotion on Russell's circumplex."""

from __future__ import annotations

import math

import pytest
import torch

from emo_backend.emotion.circumplex import ANGLES_DEG, category_va, emotion_to_va, va_to_emotion
from emo_backend.emotion.space import EMOTION_INDEX, EMOTIONS, one_hot


@pytest.mark.parametrize("name", EMOTIONS[1:])
@pytest.mark.parametrize("intensity", [1 / 3, 2 / 3, 1.0])
def test_pure_categories_round_trip_exactly(name, intensity):
    v, a = emotion_to_va(one_hot(name), torch.tensor(intensity))
    w, i = va_to_emotion(v, a)
    assert w[EMOTION_INDEX[name]] == 1.0 and w.sum() == 1.0
    assert i == pytest.approx(intensity, abs=1e-6)
    assert math.hypot(float(v), float(a)) == pytest.approx(intensity, abs=1e-6)


def test_neutral_is_the_origin():
    v, a = emotion_to_va(one_hot("neutral"), torch.tensor(1.0))
    assert float(v) == 0 and float(a) == 0
    w, i = va_to_emotion(torch.tensor(0.0), torch.tensor(0.0))
    assert w[0] == 1 and i == 0


def test_quadrants_follow_russell():
    happy, sad, angry = category_va("happy"), category_va("sad"), category_va("angry")
    assert happy[0] > 0.9 and sad[0] < 0 and sad[1] < 0 and angry[0] < 0 and angry[1] > 0.9
    assert sorted(ANGLES_DEG, key=ANGLES_DEG.get) == ["happy", "surprised", "angry", "fear", "disgusted", "contempt", "sad"]


def test_between_neighbours_mixes_the_two():
    angle = math.radians((ANGLES_DEG["angry"] + ANGLES_DEG["fear"]) / 2)
    w, i = va_to_emotion(torch.tensor(0.5 * math.cos(angle)), torch.tensor(0.5 * math.sin(angle)))
    assert w[EMOTION_INDEX["angry"]] == pytest.approx(0.5, abs=1e-5)
    assert w[EMOTION_INDEX["fear"]] == pytest.approx(0.5, abs=1e-5)
    assert i == pytest.approx(0.5)


def test_wrap_around_gap_and_clamp():
    # 300 degrees: between sad (208) and happy (368): more happy than sad
    w, i = va_to_emotion(torch.tensor(2 * math.cos(math.radians(300))), torch.tensor(2 * math.sin(math.radians(300))))
    assert i == 1.0  # clamped
    assert w[EMOTION_INDEX["happy"]] > w[EMOTION_INDEX["sad"]] > 0
    assert w.sum() == pytest.approx(1.0)
    # exactly at 0 degrees (just below happy's 8) still between sad and happy
    w, _ = va_to_emotion(torch.tensor(1.0), torch.tensor(0.0))
    assert w[EMOTION_INDEX["happy"]] > 0.9


def test_batched_and_opposites_cancel():
    v = torch.linspace(-1, 1, 11)
    a = torch.linspace(1, -1, 11)
    w, i = va_to_emotion(v, a)
    assert w.shape == (11, 8) and i.shape == (11,)
    assert torch.allclose(w.sum(-1), torch.ones(11))
    mix = one_hot("happy") + one_hot("sad")
    v, a = emotion_to_va(mix, torch.tensor(1.0))
    assert math.hypot(float(v), float(a)) < 0.5

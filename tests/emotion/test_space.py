"""The emotion space: names, normalisation, canonical form, the emotion-string grammar."""

from __future__ import annotations

import pytest
import torch

from emo_backend.emotion.space import (
    EMOTIONS,
    EmotionFrame,
    canonicalize,
    constant_arrays,
    emotion_index,
    mead_level_intensity,
    normalize_weights,
    parse_emotion,
    validate_arrays,
)
from emo_backend.errors import EmoSplatError


def test_design_order_and_mead_levels():
    assert EMOTIONS == ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
    assert [mead_level_intensity(level) for level in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    with pytest.raises(EmoSplatError):
        mead_level_intensity(4)
    assert emotion_index("Anger") == 1 and emotion_index("surprise") == 7
    with pytest.raises(EmoSplatError, match="unknown emotion 'joyous'.*neutral, angry"):
        emotion_index("joyous")


def test_normalize_weights():
    w = normalize_weights(torch.tensor([[0.0, 2.0, 0, 0, 0, 2.0, 0, 0], [0.0] * 8, [-1e-9, 0, 0, 0, 0, 0, 1.0, 0]]))
    assert torch.allclose(w.sum(-1), torch.ones(3))
    assert w[0, 1] == pytest.approx(0.5) and w[1, 0] == 1.0 and w[2, 0] == 0.0 and w[2, 6] == 1.0


def test_canonical_form_folds_neutral_into_intensity():
    w, i = canonicalize(torch.tensor([0.5, 0, 0, 0, 0, 0.5, 0, 0]), torch.tensor(1.0))
    assert w[5] == pytest.approx(1.0) and w[0] == 0 and i == pytest.approx(0.5)
    w, i = canonicalize(torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]), torch.tensor(0.8))
    assert w[0] == 1.0 and i == 0.0
    w, i = canonicalize(torch.zeros(8), torch.tensor(0.7))
    assert w[0] == 1.0 and i == 0.0


@pytest.mark.parametrize(
    "text,weights,intensity",
    [
        ("happy", {"happy": 1.0}, 1.0),
        ("happy:0.7", {"happy": 1.0}, 0.7),
        ("happy:0.5+surprised:0.5@0.8", {"happy": 0.5, "surprised": 0.5}, 0.8),
        (" Happy : 0.3 + SAD:0.2 ", {"happy": 0.6, "sad": 0.4}, 0.5),
        ("happy:3+surprised:1@0.4", {"happy": 0.75, "surprised": 0.25}, 0.4),
        ("anger@L2", {"angry": 1.0}, 2 / 3),
        ("fear@70%", {"fear": 1.0}, 0.7),
        ("neutral", {"neutral": 1.0}, 0.0),
        ("happy:0", {"neutral": 1.0}, 0.0),
        ("happy+surprised", None, None),
    ],
)
def test_parse_emotion(text, weights, intensity):
    if weights is None:
        with pytest.raises(EmoSplatError, match="add up to 2"):
            parse_emotion(text)
        return
    frame = parse_emotion(text)
    assert frame.as_dict() == pytest.approx(weights)
    assert frame.intensity == pytest.approx(intensity)


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty emotion"),
        ("hapy", "unknown emotion 'hapy'"),
        ("happy:-0.5", "NAME:AMOUNT"),
        ("happy:abc", "NAME:AMOUNT"),
        ("happy@1.5", "outside \\[0, 1\\]"),
        ("happy@loud", "cannot read intensity"),
        ("happy@0.5@0.5", "more than one '@'"),
        ("happy+", "cannot read ''"),
        ("happy:0@0.5", "all amounts 0"),
        ("happy:0.8+sad:0.5", "add up to 1.3"),
    ],
)
def test_parse_errors_are_clear(text, message):
    with pytest.raises(EmoSplatError, match=message):
        parse_emotion(text)


def test_emotion_frame_validation_and_roundtrip():
    frame = EmotionFrame.from_dict({"happy": 2, "surprise": 2}, 0.5)
    assert frame.as_dict() == pytest.approx({"happy": 0.5, "surprised": 0.5})
    assert parse_emotion(str(frame)) == frame
    weights, intensity = frame  # unpacks like a (weights, intensity) pair
    assert len(weights) == 8 and intensity == 0.5
    assert frame.dominant() in ("happy", "surprised")
    with pytest.raises(EmoSplatError, match="8 values"):
        EmotionFrame((1.0,), 0.5)
    with pytest.raises(EmoSplatError, match=r"\[0, 1\]"):
        EmotionFrame.from_name("sad", 1.2)
    with pytest.raises(EmoSplatError, match=">= 0"):
        EmotionFrame.from_dict({"sad": -1})


def test_arrays():
    w, i = constant_arrays(parse_emotion("sad@0.5"), 4)
    assert w.shape == (4, 8) and i.shape == (4,) and (w[:, 6] == 1).all()
    validate_arrays(w, i)
    with pytest.raises(EmoSplatError, match="shape"):
        validate_arrays(w[:, :7], i)
    with pytest.raises(EmoSplatError, match=r"\[0, 1\]"):
        validate_arrays(w, i + 1)
    with pytest.raises(EmoSplatError, match="finite"):
        validate_arrays(w * float("nan"), i)

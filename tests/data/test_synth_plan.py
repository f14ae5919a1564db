"""The synthetic actor's corpus plan."""

from __future__ import annotations

import collections
import ctypes

import pytest

from emo_backend.data.schema import EMOTIONS, check_clip_id
from emo_backend.head.expressions import ACTION_UNITS
from emo_backend.data.synth import (
    HELDOUT_SENTENCES, SENTENCES, TRAIN_SENTENCES, conditions, plan_corpus,
)


def test_plan_covers_every_condition_and_holds_sentences_out():
    specs = plan_corpus()
    assert len(conditions()) == 22 and len(specs) == 22 * (4 + 1 + 1 + 1)
    assert len({s.clip_id for s in specs}) == len(specs)
    for s in specs:
        check_clip_id(s.clip_id)
        assert s.emotion in EMOTIONS and 0.0 <= s.intensity <= 1.0 and 80 <= s.rate_wpm <= 450
        assert SENTENCES[s.sentence_index] == s.sentence
        assert (s.sentence in HELDOUT_SENTENCES) == (s.split == "test")
    by_condition = collections.Counter((s.identity, s.emotion, s.intensity, s.split) for s in specs)
    assert by_condition[("synth_a", "happy", 1.0, "train")] == 4 and by_condition[("synth_b", "sad", 1 / 3, "test")] == 1
    assert {s.identity for s in specs if s.split == "test"} == {"synth_a", "synth_b"}
    # Sentences are spread over conditions, not tied to an emotion.
    emotions_per_sentence = collections.defaultdict(set)
    for s in specs:
        emotions_per_sentence[s.sentence].add(s.emotion)
    assert max(len(v) for k, v in emotions_per_sentence.items() if k in TRAIN_SENTENCES) >= 2
    assert len({s.sentence for s in specs if s.split == "train"}) >= 40


def test_plan_is_deterministic_and_prosody_follows_emotion():
    assert plan_corpus(seed=3) == plan_corpus(seed=3) and plan_corpus(seed=3) != plan_corpus(seed=4)
    specs = [s for s in plan_corpus() if s.identity == "synth_a"]
    mean = lambda key, emo, inten: sum(getattr(s, key) for s in specs if s.emotion == emo and s.intensity == inten) / 5
    assert mean("rate_wpm", "sad", 1.0) < mean("rate_wpm", "sad", 1 / 3) < mean("rate_wpm", "angry", 1.0)
    assert mean("pitch", "surprised", 1.0) > mean("pitch", "neutral", 0.0) > mean("pitch", "sad", 1.0)
    with pytest.raises(ValueError, match="held-out"):
        plan_corpus(train_sentences=TRAIN_SENTENCES, heldout_sentences=TRAIN_SENTENCES[:2])


def test_sentences_are_sixty_distinct_and_speakable():
    assert len(SENTENCES) == 60 and len(set(SENTENCES)) == 60 and len(HELDOUT_SENTENCES) == 10
    try:
        ctypes.CDLL("libespeak-ng.so.1")
    except OSError:
        pytest.skip("libespeak-ng.so.1 not installed")
    from emo_backend.data.speech.espeak import synthesize
    from emo_backend.data.speech.visemes import PHONEME_VISEMES

    unknown = collections.Counter()
    for sentence in SENTENCES:
        _, _, phonemes = synthesize(sentence, voice="en-us", rate_wpm=220)
        assert len(phonemes) > 10
        unknown.update(p.symbol for p in phonemes if p.symbol not in PHONEME_VISEMES)
    assert not unknown, unknown  # every phoneme espeak uses here has an explicit viseme


def test_speech_track_of_a_planned_clip():
    try:
        ctypes.CDLL("libespeak-ng.so.1")
    except OSError:
        pytest.skip("libespeak-ng.so.1 not installed")
    from emo_backend.data.synth import speech_track

    spec = next(s for s in plan_corpus() if s.emotion == "sad" and s.intensity == 1.0)
    track = speech_track(spec, fps=25.0)
    assert abs(len(track.samples) / track.sample_rate - track.num_frames / 25.0) < 1.0 / 25.0
    assert track.expression.shape == (track.num_frames, len(ACTION_UNITS)) and track.jaw.max() > 0.1
    assert abs(track.jaw[-1]) < 0.01  # settled by the end

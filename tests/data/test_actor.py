"""The synthetic actor's performance (no espeak needed: speech tracks are built from hand-made phonemes)."""

from __future__ import annotations

import numpy as np
import pytest

from emo_backend.data.actor import (
    JAW_LIMIT_RAD, ActorMotion, combine_speech_and_emotion, perform_clip, smooth_noise,
)
from emo_backend.data.speech.espeak import Phoneme
from emo_backend.data.speech.visemes import viseme_curves
from emo_backend.data.synth import ClipSpec, SpeechTrack
from emo_backend.head.expressions import ACTION_UNITS, au_indices

FPS = 25.0
# "b aa m aa p" : bilabial closures at 0.25, 0.65, 1.05 s; open vowels in between.
PHONEMES = [Phoneme("b", 0.20, 0.30), Phoneme("A:", 0.30, 0.60), Phoneme("m", 0.60, 0.70),
            Phoneme("A:", 0.70, 1.00), Phoneme("p", 1.00, 1.10)]


def _track(seconds: float = 1.4) -> SpeechTrack:
    frames = int(seconds * FPS)
    expression, jaw = viseme_curves(PHONEMES, FPS, frames)
    t = np.arange(int(seconds * 16000)) / 16000
    samples = (8000 * np.sin(2 * np.pi * 150 * t) * ((t > 0.2) & (t < 1.1))).astype(np.int16)
    return SpeechTrack(samples, 16000, PHONEMES, expression, jaw, FPS)


def _spec(emotion: str, intensity: float) -> ClipSpec:
    return ClipSpec(f"test_{emotion}", "bob", 0, "en-us", 160, 50, emotion, intensity, "synth_a", 1, "train")


def _frame(t: float) -> int:
    return int(round(t * FPS))


@pytest.mark.parametrize("emotion,intensity", [("neutral", 0.0), ("surprised", 1.0), ("happy", 1.0)])
def test_mouth_opens_on_vowels_and_seals_on_bilabials(emotion, intensity):
    perf = perform_clip(_spec(emotion, intensity), _track())
    au25 = perf.expression[:, au_indices("AU25")[0]]
    for t in (0.45, 0.85):  # vowel centres
        assert perf.jaw[_frame(t)] > 0.12
        assert au25[_frame(t)] > 0.6
    for t in (0.25, 0.65, 1.05):  # bilabial centres: lips sealed, even when the emotion opens the mouth
        assert perf.closure[_frame(t)] == pytest.approx(1.0)
        assert perf.jaw[_frame(t)] < 0.03
        assert au25[_frame(t)] < 0.1


def test_performance_shapes_ranges_and_determinism():
    spec = _spec("angry", 2 / 3)
    a, b = perform_clip(spec, _track(), seed=3), perform_clip(spec, _track(), seed=3)
    f = a.num_frames
    assert a.expression.shape == (f, len(ACTION_UNITS)) and a.pose.shape == (f, 5, 3) and a.translation.shape == (f, 3)
    assert a.expression.dtype == np.float32 and 0.0 <= a.expression.min() and a.expression.max() <= 1.0
    np.testing.assert_array_equal(a.expression, b.expression)
    np.testing.assert_array_equal(a.pose, b.pose)
    c = perform_clip(spec, _track(), seed=4)
    assert not np.array_equal(a.pose[:, 1], c.pose[:, 1])  # other seed, other head motion
    # Angry recipe is on (AU4), brows not raised.
    assert a.expression[:, au_indices("AU4")].min() > 0.3
    assert a.expression[:, au_indices("AU1")].max() == 0.0
    # Head motion: natural, a few degrees, and it moves.
    neck_deg = np.degrees(np.abs(a.pose[:, 1])).max()
    assert 0.2 < neck_deg < 12.0
    assert np.abs(a.translation).max() < 0.01
    # Eyes move together and only a little.
    np.testing.assert_array_equal(a.pose[:, 3], a.pose[:, 4])
    assert np.degrees(np.abs(a.pose[:, 3])).max() < 12.0


def test_blinks_reach_closure_and_match_the_blink_field():
    track = _track(seconds=8.0)  # long enough for several blinks at ~17/min
    perf = perform_clip(_spec("neutral", 0.0), track, seed=0)
    left = perf.expression[:, ACTION_UNITS.index("AU45L")]
    np.testing.assert_array_equal(perf.blink[:, 0], left)
    np.testing.assert_array_equal(perf.blink[:, 0], perf.blink[:, 1])
    assert left.max() == pytest.approx(1.0) and (left > 0.5).mean() < 0.2


def test_combination_rule_adds_clamps_and_soft_unions_the_jaw():
    frames, e = 4, len(ACTION_UNITS)
    speech = np.zeros((frames, e), np.float32)
    emotion = np.zeros((frames, e), np.float32)
    au12, au25, au18 = au_indices("AU12"), au_indices("AU25"), au_indices("AU18")
    emotion[:, au12] = 0.8
    speech[:, au12] = [[0.0, 0.0], [0.1, 0.1], [0.5, 0.5], [0.0, 0.0]]
    speech[3, au18] = 1.0  # rounding damps the smile
    emotion[:, au25] = 0.6
    closure = np.array([0.0, 0.0, 0.0, 1.0])
    expr, jaw = combine_speech_and_emotion(speech, np.array([0.0, 0.1, 0.3, 0.0]), emotion,
                                           np.full(frames, 0.25), closure)
    np.testing.assert_allclose(expr[0, au12], 0.8, atol=1e-6)   # speech silent: the emotion alone
    np.testing.assert_allclose(expr[1, au12], 0.9, atol=1e-6)   # added
    np.testing.assert_allclose(expr[2, au12], 1.0, atol=1e-6)   # clamped
    np.testing.assert_allclose(expr[3, au12], 0.4, atol=1e-6)   # damped by rounding
    assert expr[3, au25[0]] == 0.0                                # sealed: emotion's lip parting gated
    assert jaw[0] == pytest.approx(0.25) and jaw[3] == pytest.approx(0.0)
    assert 0.3 < jaw[2] < JAW_LIMIT_RAD  # soft union: more than either, less than the limit (and the sum)


def test_smooth_noise_has_unit_std_and_is_smooth():
    rng = np.random.default_rng(0)
    noise = smooth_noise(5000, 25.0, rng, 2, 0.5)
    assert 0.8 < noise.std() < 1.2
    assert np.abs(np.diff(noise, axis=0)).max() < 0.5


def test_motion_amplitudes_scale():
    still = ActorMotion(neck_deg=(0, 0, 0), root_deg=(0, 0, 0), sway_m=0.0, nod_rad=0.0, gaze_deg=(0, 0), drift_deg=0.0)
    perf = perform_clip(_spec("neutral", 0.0), _track(), motion=still)
    assert np.abs(perf.pose[:, [0, 1, 3, 4]]).max() == 0.0 and np.abs(perf.translation).max() == 0.0

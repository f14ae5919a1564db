"""Speech for the synthetic actor: espeak-ng phoneme timings and the coarticulated viseme curves."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from emo_backend.data.speech.visemes import (
    CHANNELS, PHONEME_VISEMES, VISEMES, phoneme_visemes, viseme_channels, viseme_curves,
)
from emo_backend.head.expressions import AU_INDEX, au_indices


def _espeak_loadable() -> bool:
    try:
        ctypes.CDLL("libespeak-ng.so.1")
        return True
    except OSError:
        return False


needs_espeak = pytest.mark.skipif(not _espeak_loadable(), reason="libespeak-ng.so.1 not installed (apt-get install espeak-ng)")

# "Bob, maybe you'll buy a bowl" by hand: (mnemonic, start, end), seconds.
HAND = [("b", 0.10, 0.16), ("0", 0.16, 0.30), ("b", 0.30, 0.36), ("m", 0.45, 0.53), ("eI", 0.53, 0.66),
        ("b", 0.66, 0.71), ("i:", 0.71, 0.80), ("j", 0.80, 0.85), ("u:", 0.85, 1.00), ("l", 1.00, 1.05),
        ("b", 1.05, 1.10), ("aI", 1.10, 1.30), ("@", 1.30, 1.36), ("b", 1.36, 1.42), ("oU", 1.42, 1.62),
        ("l", 1.62, 1.70)]


def _frame_near(t: float, fps: float) -> int:
    return int(round(t * fps))


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_bilabials_close_the_lips(fps):
    expression, jaw = viseme_curves(HAND, fps, int(1.9 * fps))
    au25, au24, au23 = (expression[:, AU_INDEX[n]] for n in ("AU25", "AU24", "AU23"))
    for symbol, start, end in HAND:
        if symbol in ("p", "b", "m"):
            i = _frame_near(0.5 * (start + end), fps)
            assert au25[i] < 1e-6 and abs(jaw[i]) < 1e-6, (symbol, start, au25[i], jaw[i])
            assert au24[i] > 0.75 and au23[i] > 0.45
    # Vowels between bilabials still open the mouth.
    vowel = _frame_near(0.23, fps)  # "0" of Bob
    assert jaw[vowel] > 0.1 and au25[vowel] > 0.5


def test_rounded_vowels_pucker_and_open_vowels_drop_the_jaw():
    fps = 100.0
    expression, jaw = viseme_curves(HAND, fps, 190)
    pucker = expression[:, AU_INDEX["AU18"]] + expression[:, AU_INDEX["AU22"]]
    u, i, a = _frame_near(0.93, fps), _frame_near(0.76, fps), _frame_near(1.16, fps)
    assert pucker[u] > 1.0 and pucker[i] < 0.3        # u: rounds, i: spreads
    assert expression[i, AU_INDEX["AU20L"]] > 0.3 and expression[i, AU_INDEX["AU20R"]] == expression[i, AU_INDEX["AU20L"]]
    assert jaw[a] > 2 * jaw[u] and jaw[a] > 0.15       # aI opens the jaw


def test_blend_is_smooth_not_a_step_per_phoneme():
    fps = 100.0
    times = np.arange(190) / fps
    blended = viseme_channels(HAND, times)
    # The same phonemes as a step function: each frame shows its phoneme's first viseme.
    steps = np.zeros_like(blended)
    for symbol, start, end in HAND:
        steps[(times >= start) & (times < end)] = VISEMES[phoneme_visemes(symbol)[0]].target()
    second = np.abs(np.diff(blended, 2, axis=0)).max(0)
    second_steps = np.abs(np.diff(steps, 2, axis=0)).max(0)
    jaw = CHANNELS.index("jaw")
    # Bounded acceleration (per frame^2 at 100 fps): AUs < 1200 /s^2, jaw < 300 rad/s^2.
    assert second.max() < 0.12, dict(zip(CHANNELS, second.round(3)))
    assert second[jaw] < 0.03
    assert (second <= 0.35 * np.maximum(second_steps, 1e-9) + 1e-6).all()
    # Anticipatory rounding: the /t/ of "stew" is rounded, the /t/ of "steep" is not.
    au18 = CHANNELS.index("AU18")
    t_of = np.array([0.33])
    stew = viseme_channels([("s", 0.2, 0.3), ("t", 0.3, 0.36), ("u:", 0.36, 0.56)], t_of)[0, au18]
    steep = viseme_channels([("s", 0.2, 0.3), ("t", 0.3, 0.36), ("i:", 0.36, 0.56), ("p", 0.56, 0.6)], t_of)[0, au18]
    assert stew > 0.3 and steep < 0.05


def test_silence_rests_and_curves_have_the_right_shapes():
    expression, jaw = viseme_curves([("h", 1.0, 1.1), ("A:", 1.1, 1.4)], 25.0, 60)
    assert expression.shape == (60, len(AU_INDEX)) and jaw.shape == (60,) and expression.dtype == np.float32
    assert np.abs(expression[:10]).max() < 0.02 and np.abs(jaw[:10]).max() < 0.01      # before speech
    assert np.abs(expression[55:]).max() < 0.02                                        # after
    untouched = [i for n in ("AU1", "AU4", "AU6", "AU45") for i in au_indices(n)]
    assert not expression[:, untouched].any()
    assert viseme_curves([], 25.0, 5)[0].sum() == 0
    with pytest.raises(ValueError):
        viseme_curves([("a", 1.0, 0.5)], 25.0, 5)


def test_table_covers_visemes_and_falls_back_on_stems():
    assert all(v in VISEMES for names in PHONEME_VISEMES.values() for v in names)
    assert phoneme_visemes("t#") == ("DD",) and phoneme_visemes("p") == ("PP",)
    assert phoneme_visemes("u:3") == ("UU",)  # unlisted variant: its stem "u:"
    assert 12 <= len(VISEMES) <= 16


@needs_espeak
def test_espeak_synthesis_gives_monotone_phonemes_within_the_audio():
    from emo_backend.data.speech.espeak import synthesize

    text = "Peter bought a warm bowl of soup. Maybe the judge will thank you."
    samples, rate, phonemes = synthesize(text, voice="en-us", rate_wpm=160, pitch=50)
    duration = len(samples) / rate
    assert samples.dtype == np.int16 and rate > 8000 and 2.0 < duration < 8.0
    assert np.abs(samples.astype(np.float32)).max() > 1000  # audible
    starts = np.array([p.start_s for p in phonemes])
    ends = np.array([p.end_s for p in phonemes])
    assert len(phonemes) > 30 and (np.diff(starts) >= 0).all() and (ends > starts).all()
    assert ends.max() <= duration + 1e-9 and starts.min() >= 0
    assert (starts[1:] >= ends[:-1] - 1e-9).all()  # no overlaps
    symbols = [p.symbol for p in phonemes]
    assert symbols[0] == "p" and "b" in symbols and "m" in symbols
    # Event times line up with the samples: the pause between the sentences is silent, vowels are loud.
    x = samples.astype(np.float32) / 32768.0
    rms = lambda a, b: float(np.sqrt(np.mean(x[int(a * rate) : int(b * rate)] ** 2)))
    gaps = [(a.end_s, b.start_s) for a, b in zip(phonemes, phonemes[1:]) if b.start_s - a.end_s > 0.08]
    vowels = [rms(p.start_s, p.end_s) for p in phonemes if p.symbol in ("O:", "oU", "u:", "aU", "eI", "i:")]
    assert gaps and all(rms(a + 0.01, b - 0.01) < 0.05 * np.median(vowels) for a, b in gaps)
    unknown = sorted({s for s in symbols if s not in PHONEME_VISEMES})
    assert not unknown, unknown
    # Voices, rates and pitches change the output.
    fast = synthesize(text, voice="en-us", rate_wpm=260)
    assert len(fast[0]) < 0.8 * len(samples)
    other = synthesize(text, voice="en-us+f3", pitch=70)
    assert other[1] == rate and not np.array_equal(other[0][: len(samples)], samples[: len(other[0])])
    # Lips are closed on the frames of espeak's bilabials.
    fps = 25.0
    expression, jaw = viseme_curves(phonemes, fps, int(np.ceil(duration * fps)))
    for p in phonemes:
        if p.symbol in ("p", "b", "m"):
            i = int(round(0.5 * (p.start_s + p.end_s) * fps))
            assert expression[i, AU_INDEX["AU25"]] < 1e-6 and abs(jaw[i]) < 1e-6


@needs_espeak
def test_espeak_bad_input():
    from emo_backend.data.speech.espeak import synthesize
    from emo_backend.errors import EmoSplatError

    with pytest.raises(EmoSplatError, match="no voice"):
        synthesize("hello", voice="xx-nonexistent")
    with pytest.raises(EmoSplatError, match="rate"):
        synthesize("hello", rate_wpm=20)
    with pytest.raises(EmoSplatError, match="empty"):
        synthesize("   ")


def test_arpabet_phones_from_aligners():
    from emo_backend.data.speech.visemes import ARPABET_TO_ESPEAK, arpabet_to_espeak

    assert all(v in PHONEME_VISEMES for v in ARPABET_TO_ESPEAK.values())
    assert arpabet_to_espeak("AH0") == "@" and arpabet_to_espeak("AH1") == "V" and arpabet_to_espeak("SIL") == "_"
    # "SIL Bob SIL" as a forced aligner gives it; ARPAbet "D"/"T"/"S" are not espeak's D/T/S.
    phones = [("SIL", 0.0, 0.2), ("B", 0.2, 0.28), ("AA1", 0.28, 0.45), ("B", 0.45, 0.52), ("SIL", 0.52, 1.0)]
    expression, jaw = viseme_curves(phones, 50.0, 50, alphabet="arpabet")
    assert expression[12, AU_INDEX["AU25"]] == 0 and jaw[24] == 0 and jaw[18] > 0.15
    assert np.abs(expression[45:]).max() < 0.05
    s_arpa = viseme_channels([("S", 0.2, 0.4)], np.array([0.3]), alphabet="arpabet")
    s_espeak = viseme_channels([("s", 0.2, 0.4)], np.array([0.3]))
    np.testing.assert_allclose(s_arpa, s_espeak)
    with pytest.raises(ValueError, match="alphabet"):
        viseme_curves(phones, 25.0, 10, alphabet="ipa")

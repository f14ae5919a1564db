"""`emosplat synth --small`: a tiny corpus builds, validates, re-renders exactly from its tracking, resumes."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from emo_backend.data.build_corpus import (
    SYNTH_JSON, ClipRenderer, SynthOptions, build_corpus, corpus_plan, effect_amounts,
)
from emo_backend.data.dataset import check_dataset, load_dataset
from emo_backend.errors import EmoSplatError


def _espeak_loads() -> bool:
    try:
        ctypes.CDLL("libespeak-ng.so.1")
        return True
    except OSError:
        return False


needs_espeak = pytest.mark.skipif(not _espeak_loads(), reason="libespeak-ng.so.1 cannot be loaded")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "small"
    if not _espeak_loads():
        pytest.skip("libespeak-ng.so.1 cannot be loaded")
    options = SynthOptions(out=out, size=64, small=True, workers=1)
    report = build_corpus(options, progress=False)
    return options, report


def test_small_plan_is_two_clips_neutral_and_happy():
    specs = corpus_plan(SynthOptions(out=None, small=True))
    assert [(s.emotion, s.intensity) for s in specs] == [("neutral", 0.0), ("happy", 1.0)]
    assert {s.split for s in specs} == {"train", "test"}


def test_full_plan_matches_the_corpus_design():
    specs = corpus_plan(SynthOptions(out=None))
    assert len(specs) == 22 * 5 + 22 * 2 and len({s.clip_id for s in specs}) == len(specs)
    with pytest.raises(EmoSplatError, match="identities"):
        corpus_plan(SynthOptions(out=None, identities=9))


@needs_espeak
def test_small_corpus_builds_and_validates(corpus):
    options, report = corpus
    assert report.built == 2 and report.frames == 50  # 2 clips x 1 s at 25 fps
    check = check_dataset(options.out)
    assert check.ok, check.problems
    ds = load_dataset(options.out)
    assert ds.info.head_model == "open-head-v1" and ds.info.resolution == (64, 64)
    for clip_id in ds.clip_ids():
        tracking = ds.load_tracking(clip_id)
        assert tracking.landmarks2d is not None and tracking.blink is not None
        frame, mask = ds.load_frame(clip_id, 10), ds.load_mask(clip_id, 10)
        inside = mask > 0.99
        assert 0.2 < inside.mean() < 0.8
        assert np.abs(frame[inside].astype(int) - frame[mask == 0][0]).sum(1).mean() > 30
        # Landmarks fall on the head (pixel x covers [x, x+1)); the jaw contour (0-16) lies on the silhouette.
        lm = np.clip(np.floor(tracking.landmarks2d[10]).astype(int), 0, 63)
        on_mask = mask[lm[:, 1], lm[:, 0]]
        assert on_mask[17:].min() > 0.99 and (on_mask[:17] > 0).mean() > 0.8
        samples, rate = ds.load_audio(clip_id)
        assert abs(len(samples) / rate - ds.clip(clip_id).num_frames / ds.info.fps) < 0.1


@needs_espeak
def test_tracking_rerenders_the_saved_frames_exactly(corpus):
    options, _ = corpus
    ds = load_dataset(options.out)
    renderer = ClipRenderer(options)
    specs = {s.clip_id: s for s in corpus_plan(options)}
    for clip_id in ds.clip_ids():
        tracking = ds.load_tracking(clip_id)
        arrays = {"expression": tracking.expression, "pose": tracking.pose, "translation": tracking.translation,
                  "identity": tracking.identity, "K": tracking.K, "viewmat": tracking.viewmat}
        clip = ds.clip(clip_id)
        angry, fear = effect_amounts(clip.emotion, clip.intensity)
        actor = renderer.renderer(specs[clip_id].identity_seed)
        for i in (0, 12, clip.num_frames - 1):
            rgb, mask = actor.render_tracking(arrays, i, angry, fear)
            np.testing.assert_array_equal(rgb, ds.load_frame(clip_id, i))
            np.testing.assert_array_equal(mask.astype(np.float32) / 255.0, ds.load_mask(clip_id, i))


@needs_espeak
def test_happy_clip_differs_from_neutral(corpus):
    options, _ = corpus
    ds = load_dataset(options.out)
    neutral = ds.load_tracking("synth_a_neutral_l0_train00")
    happy = ds.load_tracking("synth_a_happy_l3_test00")
    au12 = ds.info.expression_names.index("AU12L")
    assert happy.expression[:, au12].min() > 0.5 and neutral.expression[:, au12].max() < 0.3


@needs_espeak
def test_resume_skips_finished_clips_and_refuses_other_options(corpus):
    options, _ = corpus
    again = build_corpus(options, progress=False)
    assert again.built == 0 and again.skipped == 2
    assert (options.out / SYNTH_JSON).exists()
    with pytest.raises(EmoSplatError, match="other synth options"):
        build_corpus(SynthOptions(out=options.out, size=32, small=True, workers=1), progress=False)


@needs_espeak
def test_espeak_clip_opens_on_vowels_and_closes_on_bilabials():
    from emo_backend.data.actor import perform_clip
    from emo_backend.data.speech.visemes import phoneme_visemes
    from emo_backend.data.synth import SENTENCES, ClipSpec, speech_track

    spec = ClipSpec("bob_surprised", SENTENCES[21], 21, "en-us", 165, 45, "surprised", 1.0, "synth_a", 1, "train")
    assert "Bob bought" in spec.sentence
    track = speech_track(spec, 25.0)
    perf = perform_clip(spec, track)
    sealed = opened = 0
    for p in track.phonemes:
        frame = int(round(0.5 * (p.start_s + p.end_s) * 25.0))
        if phoneme_visemes(p.symbol) == ("PP",):
            assert perf.jaw[frame] < 0.04, p
            sealed += 1
        elif phoneme_visemes(p.symbol)[0] == "AA" and p.end_s - p.start_s > 0.06:
            assert perf.jaw[frame] > 0.1, p
            opened += 1
    assert sealed >= 5 and opened >= 2


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    from emo_backend.data.speech import espeak

    monkeypatch.setattr(espeak, "espeak_available", lambda: False)
    with pytest.raises(EmoSplatError, match="apt-get install espeak-ng"):
        build_corpus(SynthOptions(out=tmp_path / "x", small=True, workers=1), progress=False)
    assert not (tmp_path / "x").exists()

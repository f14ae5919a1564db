"""Automatic blinks: natural rate and shape, seeded, fps-independent; keys win."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emo_backend.emotion.blink import blink_curve, blink_events
from emo_backend.errors import EmoSplatError


def _count_blinks(track: torch.Tensor) -> int:
    closed = (track >= 0.999).int()
    return int((closed.diff() == 1).sum() + closed[0])


def test_rate_and_intervals_are_natural():
    events = blink_events(3600.0, seed=0)
    per_min = len(events) / 60.0
    assert 15.0 <= per_min <= 20.0
    intervals = np.diff(events[:, 0])
    assert intervals.min() >= 0.35
    cv = intervals.std() / intervals.mean()
    assert 0.45 < cv < 0.7  # gamma shape 3: cv = 1/sqrt(3); neither periodic nor Poisson
    assert ((events[:, 1] >= 0.1) & (events[:, 1] <= 0.15)).all()


@pytest.mark.parametrize("fps", [23.976, 25, 30, 60])
def test_every_blink_has_a_closed_frame_and_short_duration(fps):
    track = blink_curve(int(60 * fps), fps, seed=1)
    assert ((track >= 0) & (track <= 1)).all()
    events = blink_events(60.0, seed=1)
    inside = int((events[:, 0] < 60.0).sum())
    assert abs(_count_blinks(track) - inside) <= 1  # a blink at the very end may be cut
    # each blink lasts <= 150 ms: few frames are more than barely closed
    above = (track > 0.01).float().sum().item() / fps
    assert above <= inside * (0.15 + 2 / fps)


def test_seeded_deterministic_and_prefix_stable():
    a = blink_curve(500, 25, seed=7)
    assert torch.equal(a, blink_curve(500, 25, seed=7))
    assert torch.equal(a[:200], blink_curve(200, 25, seed=7))
    assert not torch.equal(a, blink_curve(500, 25, seed=8))


def test_same_blinks_at_any_fps():
    """Closure peaks sit at the same times (within a frame) at 24 and 60 fps."""
    slow, fast = blink_curve(24 * 30, 24, seed=3), blink_curve(60 * 30, 60, seed=3)
    peaks_slow = torch.nonzero(slow >= 0.999).flatten().float() / 24
    peaks_fast = torch.nonzero(fast >= 0.999).flatten().float() / 60
    assert len(peaks_slow) == len(peaks_fast) > 3
    assert (peaks_slow - peaks_fast).abs().max() < 1 / 24


def test_keys_win_and_auto_blinks_near_keys_are_dropped():
    auto = blink_curve(300, 25, seed=2)
    first_peak = int(torch.nonzero(auto >= 0.999)[0])
    keyed = torch.full((300,), float("nan"))
    keyed[first_peak - 1 : first_peak + 2] = 0.0  # artist keys eyes open right where a blink would be
    keyed[200:210] = 1.0  # and a held close later
    track = blink_curve(300, 25, seed=2, keyed=keyed)
    assert (track[first_peak - 3 : first_peak + 4] == 0).all()  # no half blink around the keys either
    assert (track[200:210] == 1).all()
    untouched = torch.ones(300, dtype=torch.bool)
    untouched[first_peak - 6 : first_peak + 7] = False
    untouched[195:215] = False
    assert torch.equal(track[untouched], auto[untouched])


def test_auto_off_and_errors():
    assert (blink_curve(100, 25, auto=False) == 0).all()
    with pytest.raises(EmoSplatError, match="100 frames"):
        blink_curve(50, 25, keyed=torch.zeros(100))
    with pytest.raises(EmoSplatError, match=r"\[0, 1\]"):
        blink_curve(3, 25, keyed=torch.tensor([0.0, 2.0, float("nan")]))
    with pytest.raises(EmoSplatError, match="rate"):
        blink_events(10, 0, rate_per_min=0)

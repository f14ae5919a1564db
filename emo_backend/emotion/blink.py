"""Eye blinks (AU45): a seeded natural blink process, overridden where keyed.

Automatic blinks model spontaneous blinking at rest/speech:
* rate: `rate_per_min` (default 17, inside the 15-20 /min typical of adults
  in conversation);
* inter-blink intervals drawn from a gamma distribution with shape 3 (right
  skewed like measured intervals) and mean 60 / rate seconds, never shorter
  than the blink itself plus 0.25 s;
* each blink lasts 100-150 ms (uniform): the lid closes in the first 40 %
  and reopens in the remaining 60 % (reopening is slower), each phase a
  smoothstep; the moment of full closure is snapped to the nearest video frame
  so every blink shows at least one fully closed frame at any fps.
Event times depend only on the seed, never on fps or clip length: the same
seed gives the same blinks at 24 and 60 fps, and a longer clip begins with
the same blinks as a shorter one.

Keyed blinks: `keyed` is a per-frame AU45 track in [0, 1] with NaN where the
artist set no key. Keyed frames win; automatic blinks that would overlap a
keyed frame are dropped whole, so no half blink appears at the edge.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from emo_backend.audio.features import exact_fps
from emo_backend.errors import EmoSplatError

DEFAULT_RATE_PER_MIN = 17.0
GAMMA_SHAPE = 3.0
DURATION_RANGE_S = (0.10, 0.15)
CLOSING_SHARE = 0.4


def blink_events(duration_s: float, seed: int, rate_per_min: float = DEFAULT_RATE_PER_MIN) -> np.ndarray:
    """[N, 2] (time of full closure in s, blink duration in s) for blinks within [0, duration_s]."""
    if not rate_per_min > 0:
        raise EmoSplatError(f"blink rate must be > 0 per minute, got {rate_per_min}")
    rng = np.random.default_rng(seed)
    mean_interval = 60.0 / rate_per_min
    events = []
    # Start part-way into an interval so a shot does not always open on a blink.
    t = rng.uniform(0.1, 1.0) * mean_interval
    while t <= duration_s + 1.0:
        length = rng.uniform(*DURATION_RANGE_S)
        events.append((t, length))
        interval = rng.gamma(GAMMA_SHAPE, mean_interval / GAMMA_SHAPE)
        t += max(interval, length + 0.25)
    return np.array(events, dtype=np.float64).reshape(-1, 2)


def _profile(u: np.ndarray, length: float) -> np.ndarray:
    """Closure (0 open .. 1 closed) at times u relative to full closure, for one blink."""
    close, reopen = CLOSING_SHARE * length, (1.0 - CLOSING_SHARE) * length
    rising = np.clip((u + close) / close, 0.0, 1.0)
    falling = np.clip(1.0 - u / reopen, 0.0, 1.0)
    s = np.where(u < 0, rising, falling)
    return s * s * (3.0 - 2.0 * s)


def blink_curve(
    num_frames: int,
    fps: float | Fraction,
    seed: int = 0,
    keyed: Tensor | np.ndarray | None = None,  # [F] AU45 in [0, 1], NaN where not keyed
    rate_per_min: float = DEFAULT_RATE_PER_MIN,
    auto: bool = True,
) -> Tensor:  # [F] AU45 in [0, 1]
    """Per-frame blink (AU45) track: automatic blinks (unless `auto` is False) with keys on top."""
    rate = exact_fps(fps)
    frame_s = rate.denominator / rate.numerator
    times = np.arange(num_frames, dtype=np.float64) * frame_s
    keyed_np = None
    if keyed is not None:
        keyed_np = np.asarray(keyed.detach().cpu() if isinstance(keyed, Tensor) else keyed, dtype=np.float64).reshape(-1)
        if keyed_np.shape[0] != num_frames:
            raise EmoSplatError(f"keyed blink track has {keyed_np.shape[0]} frames, the shot has {num_frames}")
        finite = keyed_np[~np.isnan(keyed_np)]
        if ((finite < 0) | (finite > 1)).any() or np.isinf(keyed_np).any():
            raise EmoSplatError("keyed blink values must be in [0, 1]")
    out = np.zeros(num_frames, dtype=np.float64)
    if auto and num_frames > 0:
        keyed_times = times[~np.isnan(keyed_np)] if keyed_np is not None else np.zeros(0)
        for peak, length in blink_events(times[-1] + frame_s, seed, rate_per_min):
            peak = round(peak / frame_s) * frame_s  # a fully closed frame at any fps
            start, end = peak - CLOSING_SHARE * length, peak + (1.0 - CLOSING_SHARE) * length
            if keyed_times.size and ((keyed_times >= start - frame_s) & (keyed_times <= end + frame_s)).any():
                continue
            lo, hi = max(0, int(np.floor(start / frame_s))), min(num_frames, int(np.ceil(end / frame_s)) + 1)
            if lo < hi:
                out[lo:hi] = np.maximum(out[lo:hi], _profile(times[lo:hi] - peak, length))
    if keyed_np is not None:
        out = np.where(np.isnan(keyed_np), out, keyed_np)
    return torch.from_numpy(out.astype(np.float32))

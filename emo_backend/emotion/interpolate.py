"""Keyframe interpolation shared by the emotion and blink curves.

Modes (per segment, chosen by the key that starts it, like Blender's F-curves):
* "smooth": monotone cubic Hermite (Fritsch-Carlson slopes as in PCHIP) with
  zero slope at the first and last key and at every local extremum, so values
  never overshoot the keys (weights stay >= 0, intensity stays in range) and
  motion eases in from and out to the held ends. With two keys it is
  smoothstep.
* "ease": smoothstep between every pair of keys (zero slope at every key).
* "linear": straight lines.
* "constant": hold each key until the next.
Before the first key and after the last, the end key's value is held.
"""

from __future__ import annotations

import numpy as np

MODES = ("smooth", "ease", "linear", "constant")


def monotone_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # x [K], y [K, C] -> [K, C]
    """Fritsch-Carlson slopes; 0 at both ends and wherever the data turns."""
    slopes = np.zeros_like(y, dtype=np.float64)
    if x.shape[0] < 3:
        return slopes
    h = np.diff(x)[:, None]  # [K-1, 1]
    secant = np.diff(y, axis=0) / h  # [K-1, C]
    d0, d1 = secant[:-1], secant[1:]
    h0, h1 = h[:-1], h[1:]
    w0, w1 = 2 * h1 + h0, h1 + 2 * h0
    same_sign = (d0 * d1) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w0 + w1) / (w0 / d0 + w1 / d1)
    slopes[1:-1] = np.where(same_sign, harmonic, 0.0)
    return slopes


def interpolate_keys(
    key_times: np.ndarray,  # [K] strictly increasing
    key_values: np.ndarray,  # [K, C]
    key_modes: list[str],  # [K] mode of the segment each key starts
    times: np.ndarray,  # [F]
) -> np.ndarray:  # [F, C]
    """Sample keyed channels at `times` (see module docstring for the modes)."""
    x = np.asarray(key_times, dtype=np.float64)
    y = np.asarray(key_values, dtype=np.float64).reshape(x.shape[0], -1)
    t = np.asarray(times, dtype=np.float64)
    if x.shape[0] == 1 or t.shape[0] == 0:
        return np.broadcast_to(y[:1], (t.shape[0], y.shape[1])).copy()
    seg = np.clip(np.searchsorted(x, t, side="right") - 1, 0, x.shape[0] - 2)  # [F]
    h = x[seg + 1] - x[seg]
    s = np.clip((t - x[seg]) / h, 0.0, 1.0)[:, None]  # [F, 1]; clipping holds the ends
    y0, y1 = y[seg], y[seg + 1]
    slopes = monotone_slopes(x, y)
    m0, m1 = slopes[seg] * h[:, None], slopes[seg + 1] * h[:, None]
    s2, s3 = s * s, s * s * s
    smooth = (2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * m0 + (-2 * s3 + 3 * s2) * y1 + (s3 - s2) * m1
    ease = y0 + (y1 - y0) * (3 * s2 - 2 * s3)
    linear = y0 + (y1 - y0) * s
    constant = np.where(s >= 1.0, y1, y0)
    modes = np.array([MODES.index(m) for m in key_modes])[seg][:, None]
    return np.choose(modes, [smooth, ease, linear, constant])

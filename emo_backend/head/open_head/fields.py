"""Small smooth scalar fields the open head's sculpting, rig, bases and appearance are written with."""

from __future__ import annotations

import numpy as np


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 below e0, 1 above e1, C1-smooth in between (e0 > e1 gives the falling edge)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(p: np.ndarray, centre, radii) -> np.ndarray:
    """An anisotropic Gaussian bump at `centre` with per-axis `radii`. p [N, 3] -> [N]"""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    return np.exp(-(q * q).sum(-1))


def fold_x(p: np.ndarray) -> np.ndarray:
    """Mirror to +X so left/right symmetric patches are written once. p [N, 3] -> [N, 3]"""
    q = p.copy()
    q[:, 0] = np.abs(q[:, 0])
    return q

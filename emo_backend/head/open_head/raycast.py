"""Find the skin surface along rays by sphere tracing the signed distance field from outside."""

from __future__ import annotations

from typing import Callable

import numpy as np

Field = Callable[[np.ndarray], np.ndarray]


def cast_last_exit(
    sdf: Field,
    origins: np.ndarray,  # [N, 3]
    dirs: np.ndarray,     # [N, 3] unit
    t_min: float | np.ndarray,
    t_max: float | np.ndarray,
    iters: int = 80,
    refine: int = 22,
) -> np.ndarray:
    """Distance along each ray to its outermost surface crossing in [t_min, t_max] -> t [N].

    Marches inwards from t_max (outside) by a fraction of the field's distance,
    so the first crossing met is the last exit seen from the origin: small
    pockets inside the head cannot catch the ray. The crossing is then refined
    by bisection. Rays that never meet the surface return t_min.
    """
    n = origins.shape[0]
    t_min = np.broadcast_to(np.asarray(t_min, dtype=np.float64), (n,)).copy()
    t = np.broadcast_to(np.asarray(t_max, dtype=np.float64), (n,)).copy()
    t_out = t.copy()
    active = np.ones(n, dtype=bool)
    hit = np.zeros(n, dtype=bool)
    for _ in range(iters):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        d = sdf(origins[idx] + dirs[idx] * t[idx, None])
        inside = d < 0
        hit[idx[inside]] = True
        active[idx[inside]] = False
        out = idx[~inside]
        t_out[out] = t[out]
        step = np.maximum(0.8 * d[~inside], 2e-4)
        t[out] = t[out] - step
        done = t[out] <= t_min[out]
        t[out[done]] = t_min[out[done]]
        active[out[done]] = False
    lo, hi = t.copy(), t_out.copy()  # lo inside, hi outside
    for _ in range(refine):
        mid = 0.5 * (lo + hi)
        m_in = sdf(origins + dirs * mid[:, None]) < 0
        lo = np.where(m_in, mid, lo)
        hi = np.where(m_in, hi, mid)
    return np.where(hit, 0.5 * (lo + hi), t_min)

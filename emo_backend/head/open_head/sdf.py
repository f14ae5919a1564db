"""The skin's shape as a signed distance field, sculpted from smooth primitives.

Negative inside. Distances are approximate (smooth unions of ellipsoids), good
enough to ray-cast the skin surface from the head centre. All positions are in
metres in avatar space (+Y up, +Z out of the face, +X the subject's left,
origin midway between the ear canals). Everything here is numpy float64 so the
build is deterministic across machines.
"""

from __future__ import annotations

import numpy as np

from emo_backend.head.open_head.anatomy import ANATOMY as A


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union) with blend width k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (smooth intersection / subtraction with -b)."""
    return -smin(-a, -b, k)


def ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid. p [..., 3]."""
    r = np.asarray(radii, dtype=np.float64)
    q = (p - np.asarray(centre)) / r
    k0 = np.sqrt(np.einsum("...i,...i->...", q, q))
    q2 = q / r
    k1 = np.sqrt(np.einsum("...i,...i->...", q2, q2))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def super_ellipsoid(p: np.ndarray, centre, radii, n: float) -> np.ndarray:
    """Approximate signed distance to an ellipsoid whose horizontal sections are superellipses of power n."""
    q = np.abs((p - np.asarray(centre)) / np.asarray(radii))
    horiz = (q[..., 0] ** n + q[..., 2] ** n) ** (2.0 / n)
    k = np.sqrt(horiz + q[..., 1] ** 2)
    return (k - 1.0) * float(np.min(radii))


def round_cone(p: np.ndarray, a, b, ra: float, rb: float) -> np.ndarray:
    """Distance to a capsule whose radius goes from ra at a to rb at b (approximate, fine for small taper)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    diff = p - (a + t[..., None] * ab)
    return np.sqrt(np.einsum("...i,...i->...", diff, diff)) - (ra + (rb - ra) * t)


def mirror_x(p: np.ndarray) -> np.ndarray:
    """Fold the left/right halves together: symmetric features are written for +X only."""
    q = p.copy()
    q[..., 0] = np.abs(q[..., 0])
    return q


def arch_coords(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates around the dental arch (a vertical cylinder): (arc length u, height y, outward w)."""
    dx = p[..., 0]
    dz = p[..., 2] - (A.mouth_z - A.arch_radius)
    r = np.sqrt(dx * dx + dz * dz)
    u = A.arch_radius * np.arctan2(dx, dz)
    return u, p[..., 1], r - A.arch_radius


def head_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance of the skin (without ears, eyeballs and mouth interior). p [..., 3] -> [...]."""
    q = mirror_x(p)
    # Skull and face masses.
    d = ellipsoid(p, (0.0, 0.030, -0.010), (0.077, 0.100, 0.099))
    d = smin(d, super_ellipsoid(p, (0.0, -0.008, 0.016), (0.065, 0.060, 0.071), 3.0), 0.02)
    d = smin(d, super_ellipsoid(p, (0.0, -0.054, 0.018), (0.052, 0.048, 0.070), 2.2), 0.02)
    # The muzzle over the teeth, the upper lip's slope under the nose, the cheeks beside the mouth.
    d = smin(d, ellipsoid(p, (0.0, -0.060, 0.058), (0.033, 0.032, 0.034)), 0.012)
    d = smin(d, ellipsoid(p, (0.0, -0.043, 0.084), (0.017, 0.016, 0.0135)), 0.008)
    d = smin(d, ellipsoid(q, (0.034, -0.046, 0.057), (0.015, 0.020, 0.021)), 0.015)
    # Jaw line: from the angle of the jaw to the chin, both sides.
    d = smin(d, round_cone(q, (0.050, -0.068, -0.002), (0.014, -0.099, 0.058), 0.007, 0.007), 0.022)
    d = smin(d, ellipsoid(p, (0.0, -0.095, 0.068), (0.026, 0.020, 0.020)), 0.012)
    # Neck: an elliptic cylinder stub capped inside the skull.
    neck = np.sqrt(p[..., 0] ** 2 + ((p[..., 2] + 0.024) / 1.08) ** 2) - 0.050
    neck = smax(neck, p[..., 1] + 0.02, 0.01)
    d = smin(d, neck, 0.03)
    # Cheekbones and brow ridge.
    d = smin(d, ellipsoid(q, (0.046, -0.006, 0.066), (0.017, 0.012, 0.016)), 0.014)
    d = smin(d, round_cone(q, (0.0, 0.031, 0.085), (0.050, 0.034, 0.068), 0.009, 0.007), 0.012)
    # Eye sockets carved, then the eyelids draped over the eyeballs.
    sock = ellipsoid(q, (A.eye_x, A.eye_y - 0.001, A.eye_z + 0.013), (0.018, 0.0125, 0.0135))
    d = smax(d, -sock, 0.008)
    rel = q - np.array([A.eye_x, A.eye_y, A.eye_z])
    lids = np.sqrt(np.einsum("...i,...i->...", rel, rel)) - (A.eye_radius + A.lid_gap)
    d = smin(d, lids, 0.004)
    # Nose: bridge, tip, wings; nostrils pressed in from below.
    nose = round_cone(p, (0.0, 0.019, 0.083), (0.0, -0.022, 0.104), 0.0055, 0.0085)
    nose = smin(nose, ellipsoid(p, (0.0, -0.027, 0.105), (0.0095, 0.0085, 0.0105)), 0.006)
    nose = smin(nose, ellipsoid(q, (0.0130, -0.0335, 0.0930), (0.0050, 0.0050, 0.0070)), 0.007)
    d = smin(d, nose, 0.006)
    nostril = ellipsoid(q, (0.0065, -0.0375, 0.100), (0.0035, 0.0022, 0.0055))
    d = smax(d, -nostril, 0.0015)
    # Lips around the dental arch, a crease between them, corners pressed in.
    u, y, w = arch_coords(p)
    lip_p = np.stack([u, y, w], -1)
    upper = ellipsoid(lip_p, (0.0, A.mouth_y + 0.0045, 0.0), (0.025, 0.0056, 0.0062))
    lower = ellipsoid(lip_p, (0.0, A.mouth_y - 0.0062, -0.001), (0.023, 0.0068, 0.0068))
    d = smin(d, smin(upper, lower, 0.002), 0.004)
    crease = ellipsoid(lip_p, (0.0, A.mouth_y, 0.007), (0.028, 0.0008, 0.008))
    d = smax(d, -crease, 0.0015)
    corner = ellipsoid(q, (A.mouth_corner_x + 0.001, A.mouth_y, A.mouth_corner_z + 0.003), (0.003, 0.0035, 0.004))
    d = smax(d, -corner, 0.003)
    # Philtral columns down the upper lip; soft folds from the nose wings towards the mouth corners.
    d = smin(d, round_cone(q, (0.0035, -0.039, 0.0975), (0.0050, A.mouth_y + 0.0085, 0.0985), 0.0018, 0.0020), 0.003)
    fold = round_cone(q, (0.0205, -0.031, 0.089), (0.0305, A.mouth_y - 0.002, 0.0815), 0.0012, 0.0010)
    d = smax(d, -fold, 0.004)
    # Chin and the groove above it.
    d = smin(d, ellipsoid(p, (0.0, -0.093, 0.078), (0.016, 0.013, 0.014)), 0.008)
    return d

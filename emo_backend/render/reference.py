"""Brute-force float64 splatting: every Gaussian at every pixel, no tiles, no bounding boxes.

The yardstick the real renderers are tested against. It shares nothing with them
but the constants: its own projection (numpy, matrix inverse for the conic), its
own compositing loop. A pixel outside a Gaussian's opacity-aware box gets
alpha < 1/255 there anyway, so leaving out tiles and boxes changes nothing but speed.
Slow by design: use small scenes.
"""

from __future__ import annotations

import numpy as np

from emo_backend.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FAR_PLANE, FOV_CLAMP_MARGIN, MAX_ALPHA, NEAR_PLANE, TRANSMITTANCE_STOP,
)


def _rotation(q: np.ndarray) -> np.ndarray:  # q [4] wxyz -> [3, 3]
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
    ])


def reference_render(
    means: np.ndarray,      # [N, 3]
    quats: np.ndarray,      # [N, 4] wxyz
    scales: np.ndarray,     # [N, 3]
    opacities: np.ndarray,  # [N]
    colors: np.ndarray,     # [N, 3]
    viewmat: np.ndarray,    # [4, 4]
    K: np.ndarray,          # [3, 3]
    width: int,
    height: int,
    background: np.ndarray | None = None,  # [3]
    return_ambiguous: bool = False,
    ambiguity: float = 1e-4,
):
    """-> rgb [H, W, 3], alpha [H, W, 1], depth [H, W, 1] (sum w z / alpha; 0 where alpha is 0), float64.

    With `return_ambiguous`, also a bool mask [H, W] of pixels where a cut-off decision
    (alpha vs 1/255, T(1-alpha) vs 1e-4) was within a relative `ambiguity` of its
    threshold: there a float32 renderer may rightly decide the other way.
    """
    args = [np.asarray(a, dtype=np.float64) for a in (means, quats, scales, opacities, colors, viewmat, K)]
    means, quats, scales, opacities, colors, viewmat, K = args
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x = (cx / fx + FOV_CLAMP_MARGIN * 0.5 * width / fx, (width - cx) / fx + FOV_CLAMP_MARGIN * 0.5 * width / fx)
    lim_y = (cy / fy + FOV_CLAMP_MARGIN * 0.5 * height / fy, (height - cy) / fy + FOV_CLAMP_MARGIN * 0.5 * height / fy)

    splats = []  # (depth, index, mean2d, conic, opacity)
    for i in range(len(means)):
        p = viewmat[:3, :3] @ means[i] + viewmat[:3, 3]
        if not (NEAR_PLANE <= p[2] <= FAR_PLANE) or opacities[i] < ALPHA_THRESHOLD:
            continue
        rs = _rotation(quats[i]) @ np.diag(scales[i])
        cov = viewmat[:3, :3] @ rs @ rs.T @ viewmat[:3, :3].T
        u = np.clip(p[0] / p[2], -lim_x[0], lim_x[1])
        v = np.clip(p[1] / p[2], -lim_y[0], lim_y[1])
        J = np.array([[fx / p[2], 0.0, -fx * u / p[2]], [0.0, fy / p[2], -fy * v / p[2]]])
        cov2 = J @ cov @ J.T + EPS2D * np.eye(2)
        if np.linalg.det(cov2) <= 0:
            continue
        mean2 = np.array([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])
        splats.append((p[2], i, mean2, np.linalg.inv(cov2), opacities[i]))
    splats.sort(key=lambda s: (s[0], s[1]))  # front to back; ties by index, like gsplat's stable sort

    px, py = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    T = np.ones((height, width))
    rgb = np.zeros((height, width, 3))
    depth_sum = np.zeros((height, width))
    done = np.zeros((height, width), dtype=bool)
    ambiguous = np.zeros((height, width), dtype=bool)
    for z, i, m, inv, o in splats:
        d = np.stack([px - m[0], py - m[1]], -1)
        power = 0.5 * np.einsum("...i,ij,...j->...", d, inv, d)
        alpha = np.minimum(MAX_ALPHA, o * np.exp(-power))
        hit = ~done & (power >= 0) & (alpha >= ALPHA_THRESHOLD)
        next_T = T * (1 - alpha)
        ambiguous |= ~done & (np.abs(alpha / ALPHA_THRESHOLD - 1) < ambiguity)
        ambiguous |= ~done & (alpha >= ALPHA_THRESHOLD) & (np.abs(next_T / TRANSMITTANCE_STOP - 1) < ambiguity)
        stop = hit & (next_T <= TRANSMITTANCE_STOP)
        done |= stop
        hit &= ~stop
        w = np.where(hit, alpha * T, 0.0)
        rgb += w[..., None] * colors[i]
        depth_sum += w * z
        T = np.where(hit, next_T, T)
    alpha_img = 1 - T
    if background is not None:
        rgb += T[..., None] * np.asarray(background, dtype=np.float64)
    depth = np.where(alpha_img > 0, depth_sum / np.maximum(alpha_img, 1e-10), 0.0)
    if return_ambiguous:
        return rgb, alpha_img[..., None], depth[..., None], ambiguous
    return rgb, alpha_img[..., None], depth[..., None]

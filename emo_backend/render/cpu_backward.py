"""The numba backward pass of the cpu renderer: image gradients -> per-Gaussian gradients.

Two stages, as gsplat's: `rasterize_backward` (image -> 2D mean, conic, opacity, colour,
depth per Gaussian) and `project_backward` (2D -> means, quats, scales; camera fixed).

gsplat's `rasterize_to_pixels_bwd`, on CPU cores: per tile (parallel over tiles) the
Gaussians of the tile's sorted list are walked back to front, starting at the last
contributor of any pixel of the tile (`CpuRenderState.last_ids`). Each pixel starts
from its exact final transmittance and divides it back, T_i = T_(i+1) / (1 - alpha_i),
keeping the feature sum of everything behind; alpha is recomputed with the forward's
own float32 formula, so the set of contributors is the forward's. A 16-pixel row is
one branch-free vector loop, like the forward.

For a pixel with contributors i (front to back), weights w_i = alpha_i T_i, features
f_i (r, g, b, z) and the loss's gradients G (wrt sum w f) and gT (wrt the final T):
    dL/df_i     = w_i G
    dL/dalpha_i = T_i G.f_i - (sum_{j>i} w_j G.f_j + gT T_final) / (1 - alpha_i)
and alpha_i = min(0.999, o exp(-power)) gives the opacity and power gradients (none
where the clamp is active), power the conic and 2D-mean ones.

Each entry of the tile lists gets its own gradient row (no two threads write one
place), summed per Gaussian afterwards.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from emo_backend.render.constants import ALPHA_THRESHOLD, EPS2D, FOV_CLAMP_MARGIN, MAX_ALPHA, TILE_SIZE
from emo_backend.render.cpu import (
    P_A, P_B, P_BLUE, P_C, P_G, P_OPACITY, P_POWER_CUT, P_R, P_RY, P_X, P_Y, P_Z, PARALLEL_LOCK, CpuRenderState,
    _exp_neg,
)

# Gradient columns per tile-list entry / per Gaussian.
G_MX, G_MY, G_A, G_B, G_C, G_OPACITY, G_R, G_G, G_BLUE, G_Z = range(10)
GRAD_WIDTH = 10

# Per-tile state: channel c of row r is state[r, c*16 : c*16+16] (contiguous lanes, as the forward).
B_T, B_BEHIND, B_GR, B_GG, B_GB, B_GZ, B_GTF, B_LAST = (c * TILE_SIZE for c in range(8))
BSTATE_WIDTH = 8 * TILE_SIZE


@njit(parallel=True, fastmath=True, cache=True)
def _rasterize_backward(
    rec, offsets, ids, last_ids, trans,   # forward: records [N,16], tile lists, [H,W] int32, [H,W] f32 final T
    grad_feat, grad_tf,                   # [H,W,4] dL/d(sum w (r,g,b,z)), [H,W] dL/dT_final (f32)
    width, height, tiles_x, n_blocks,
    out,                                  # [n_isects, 10] f32 per tile-list entry (G_* columns)
):
    n_tiles = offsets.shape[0] - 1
    thr = np.float32(ALPHA_THRESHOLD)
    amax = np.float32(MAX_ALPHA)
    half = np.float32(0.5)
    zero = np.float32(0)
    one = np.float32(1)
    n_blocks = max(1, n_blocks)
    block = (n_tiles + n_blocks - 1) // n_blocks
    for i in prange(block * n_blocks):
        t = (i % block) * n_blocks + i // block  # tiles from all over the image for every thread
        if t >= n_tiles:
            continue
        start = offsets[t]
        if offsets[t + 1] == start:
            continue
        x_start = (t % tiles_x) * TILE_SIZE
        y_start = (t // tiles_x) * TILE_SIZE
        n_cols = min(x_start + TILE_SIZE, width) - x_start
        n_rows = min(y_start + TILE_SIZE, height) - y_start
        state = np.zeros((TILE_SIZE, BSTATE_WIDTH), dtype=np.float32)
        row_last = np.full(TILE_SIZE, -1, dtype=np.int64)
        tile_last = -1
        for r in range(TILE_SIZE):
            for j in range(TILE_SIZE):
                state[r, B_T + j] = 1
                state[r, B_LAST + j] = -1
            if r >= n_rows:
                continue
            y = y_start + r
            for j in range(n_cols):
                x = x_start + j
                last = last_ids[y, x]
                local = -1 if last < 0 else last - start
                state[r, B_LAST + j] = np.float32(local)
                state[r, B_T + j] = trans[y, x]
                state[r, B_GR + j] = grad_feat[y, x, 0]
                state[r, B_GG + j] = grad_feat[y, x, 1]
                state[r, B_GB + j] = grad_feat[y, x, 2]
                state[r, B_GZ + j] = grad_feat[y, x, 3]
                state[r, B_GTF + j] = grad_tf[y, x] * trans[y, x]
                row_last[r] = max(row_last[r], local)
            tile_last = max(tile_last, row_last[r])
        px = np.empty(TILE_SIZE, dtype=np.float32)
        for j in range(TILE_SIZE):
            px[j] = np.float32(x_start + j) + half
        for local_i in range(tile_last, -1, -1):
            k = start + local_i
            g = ids[k]
            my = rec[g, P_Y]
            y0 = max(0, int(math.ceil(my - rec[g, P_RY] - half)) - y_start)
            y1 = min(n_rows, int(math.floor(my + rec[g, P_RY] - half)) + 1 - y_start)
            mx = rec[g, P_X]
            ca = rec[g, P_A]
            half_a = half * ca
            cb = rec[g, P_B]
            cc = rec[g, P_C]
            op = rec[g, P_OPACITY]
            cut = rec[g, P_POWER_CUT]
            cr = rec[g, P_R]
            cg = rec[g, P_G]
            cbl = rec[g, P_BLUE]
            z = rec[g, P_Z]
            local_k = np.float32(local_i)
            d_mx = zero
            d_my = zero
            d_a = zero
            d_b = zero
            d_c = zero
            d_op = zero
            d_r = zero
            d_g = zero
            d_bl = zero
            d_z = zero
            for row in range(y0, y1):
                if row_last[row] < local_i:
                    continue
                dy = my - (np.float32(y_start + row) + half)
                row_power = half * cc * dy * dy
                bdy = cb * dy
                s = state[row]
                for j in range(TILE_SIZE):
                    dx = mx - px[j]
                    power = half_a * dx * dx + row_power + bdy * dx
                    e = _exp_neg(min(max(power, zero), np.float32(8)))
                    raw = op * e
                    a = min(amax, raw)
                    hit = (power <= cut) & (power >= zero) & (a >= thr) & (local_k <= s[B_LAST + j])
                    T_after = s[B_T + j]
                    inv_one_minus = one / (one - a)  # a <= 0.999: finite
                    T_i = T_after * inv_one_minus
                    w = a * T_i
                    gr = s[B_GR + j]
                    gg = s[B_GG + j]
                    gb = s[B_GB + j]
                    gz = s[B_GZ + j]
                    gf = gr * cr + gg * cg + gb * cbl + gz * z
                    behind = s[B_BEHIND + j]
                    d_alpha = T_i * gf - (behind + s[B_GTF + j]) * inv_one_minus
                    # the clamp at 0.999 passes no gradient to opacity and power
                    d_raw = d_alpha if (hit & (raw <= amax)) else zero
                    w_hit = w if hit else zero
                    d_r += w_hit * gr
                    d_g += w_hit * gg
                    d_bl += w_hit * gb
                    d_z += w_hit * gz
                    d_op += d_raw * e
                    d_power = -d_raw * raw
                    d_a += d_power * half * dx * dx
                    d_b += d_power * dx * dy
                    d_c += d_power * half * dy * dy
                    d_mx += d_power * (ca * dx + cb * dy)
                    d_my += d_power * (cc * dy + cb * dx)
                    s[B_BEHIND + j] = behind + w_hit * gf
                    s[B_T + j] = T_i if hit else T_after
            out[k, G_MX] = d_mx
            out[k, G_MY] = d_my
            out[k, G_A] = d_a
            out[k, G_B] = d_b
            out[k, G_C] = d_c
            out[k, G_OPACITY] = d_op
            out[k, G_R] = d_r
            out[k, G_G] = d_g
            out[k, G_BLUE] = d_bl
            out[k, G_Z] = d_z


@njit(cache=True)
def _sum_per_gaussian(ids, per_entry, n):
    """[n_isects, 10] per tile-list entry -> [n, 10] per Gaussian (float64 sums)."""
    total = np.zeros((n, per_entry.shape[1]), np.float64)
    for k in range(ids.shape[0]):
        g = ids[k]
        for c in range(per_entry.shape[1]):
            total[g, c] += per_entry[k, c]
    return total


class Gradients2D(NamedTuple):
    """dL/d(everything the rasterizer reads per Gaussian), float64 sums; zero for culled Gaussians."""

    means2d: np.ndarray    # [N, 2] pixels
    conics: np.ndarray     # [N, 3] (a, b, c) of [[a, b], [b, c]]
    opacities: np.ndarray  # [N]
    colors: np.ndarray     # [N, 3]
    depths: np.ndarray     # [N] camera z (through the depth image)


def rasterize_backward(
    state: CpuRenderState,
    grad_rgb: np.ndarray,            # [H, W, 3] dL/d rgb
    grad_alpha: np.ndarray,          # [H, W] dL/d alpha
    grad_depth: np.ndarray | None,   # [H, W] dL/d depth, or None
    background: np.ndarray | None,   # [3] as given to the forward
) -> tuple[Gradients2D, np.ndarray]:
    """-> per-Gaussian 2D gradients, dL/d background [3] (float64)."""
    height, width = state.alpha.shape
    trans = state.transmittance
    grad_rgb = np.asarray(grad_rgb, np.float32)
    grad_alpha = np.asarray(grad_alpha, np.float32).reshape(height, width)
    grad_feat = np.zeros((height, width, 4), np.float32)
    grad_feat[..., :3] = grad_rgb
    # alpha = 1 - T_final; rgb = sum w c + T_final bg; depth = sum w z / max(alpha, 1e-10)
    grad_tf = -grad_alpha
    bg = None if background is None else np.asarray(background, np.float32).reshape(3)
    if bg is not None:
        grad_tf = grad_tf + grad_rgb @ bg
    if grad_depth is not None:
        grad_depth = np.asarray(grad_depth, np.float32).reshape(height, width)
        alpha = state.alpha
        covered = alpha >= np.float32(1e-10)
        grad_feat[..., 3] = grad_depth / np.maximum(alpha, np.float32(1e-10))
        # d depth / d alpha = -depth / alpha where the clamp is inactive; alpha = 1 - T_final
        grad_tf = grad_tf + np.where(covered, grad_depth * state.depth / np.where(covered, alpha, 1), 0)
    grad_tf = np.ascontiguousarray(grad_tf, np.float32)
    per_entry = np.zeros((state.tile_ids.shape[0], GRAD_WIDTH), np.float32)  # entries behind every last stay 0
    with PARALLEL_LOCK:
        _rasterize_backward(state.records, state.tile_offsets, state.tile_ids, state.last_ids, trans, grad_feat,
                            grad_tf, int(width), int(height), state.tiles_x, numba.get_num_threads(), per_entry)
    total = _sum_per_gaussian(state.tile_ids, per_entry, state.records.shape[0])
    grads = Gradients2D(total[:, G_MX:G_MY + 1], total[:, G_A:G_C + 1], total[:, G_OPACITY],
                        total[:, G_R:G_BLUE + 1], total[:, G_Z])
    grad_bg = np.zeros(3) if bg is None else (grad_rgb.astype(np.float64) * trans[..., None]).sum((0, 1))
    return grads, grad_bg


@njit(inline="always", cache=True)
def _mm(a, b):
    """3x3 (row-major 9-tuples) a @ b."""
    return (a[0] * b[0] + a[1] * b[3] + a[2] * b[6], a[0] * b[1] + a[1] * b[4] + a[2] * b[7],
            a[0] * b[2] + a[1] * b[5] + a[2] * b[8],
            a[3] * b[0] + a[4] * b[3] + a[5] * b[6], a[3] * b[1] + a[4] * b[4] + a[5] * b[7],
            a[3] * b[2] + a[4] * b[5] + a[5] * b[8],
            a[6] * b[0] + a[7] * b[3] + a[8] * b[6], a[6] * b[1] + a[7] * b[4] + a[8] * b[7],
            a[6] * b[2] + a[7] * b[5] + a[8] * b[8])


@njit(inline="always", cache=True)
def _t(a):
    """3x3 transpose."""
    return (a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8])


@njit(cache=True)
def _project_backward_one(mx, my, mz, qw, qx, qy, qz, sx, sy, sz, W, t, fx, fy, lims, eps2d, g):
    """One Gaussian's projection backward; g = its G_* row. -> (dmeans 3, dquats 4, dscales 3) tuples."""
    lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg = lims
    tx = W[0] * mx + W[1] * my + W[2] * mz + t[0]
    ty = W[3] * mx + W[4] * my + W[5] * mz + t[1]
    tz = W[6] * mx + W[7] * my + W[8] * mz + t[2]
    q_len = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
    w, x, y, z = qw / q_len, qx / q_len, qy / q_len, qz / q_len
    Rq = (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
          2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
          2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))
    M = (Rq[0] * sx, Rq[1] * sy, Rq[2] * sz, Rq[3] * sx, Rq[4] * sy, Rq[5] * sz, Rq[6] * sx, Rq[7] * sy, Rq[8] * sz)
    sigma_c = _mm(_mm(W, _mm(M, _t(M))), _t(W))
    rz = 1.0 / tz
    u_raw = tx * rz
    v_raw = ty * rz
    u = min(lim_x_pos, max(-lim_x_neg, u_raw))
    v = min(lim_y_pos, max(-lim_y_neg, v_raw))
    J = (fx * rz, 0.0, -fx * u * rz, 0.0, fy * rz, -fy * v * rz, 0.0, 0.0, 0.0)  # 2x3, zero third row
    cov = _mm(_mm(J, sigma_c), _t(J))
    a = cov[0] + eps2d
    b = 0.5 * (cov[1] + cov[3])
    c = cov[4] + eps2d
    inv_det = 1.0 / (a * c - b * b)
    inv_det2 = inv_det * inv_det
    ga, gb, gc = g[G_A], g[G_B], g[G_C]
    # conic = (c, -b, a) / det, det = a c - b^2
    g_a = ga * (-c * c * inv_det2) + gb * (b * c * inv_det2) + gc * (inv_det - a * c * inv_det2)
    g_b = ga * (2 * b * c * inv_det2) + gb * (-inv_det - 2 * b * b * inv_det2) + gc * (2 * a * b * inv_det2)
    g_c = ga * (inv_det - a * c * inv_det2) + gb * (a * b * inv_det2) + gc * (-a * a * inv_det2)
    g_cov = (g_a, 0.5 * g_b, 0.0, 0.5 * g_b, g_c, 0.0, 0.0, 0.0, 0.0)
    g_sigma_c = _mm(_mm(_t(J), g_cov), J)
    g_J = _mm(_mm(g_cov, J), sigma_c)          # times 2 below (g_cov and sigma_c symmetric)
    g_sigma = _mm(_mm(_t(W), g_sigma_c), W)
    g_M = _mm(g_sigma, M)                      # times 2
    g_R = (2 * g_M[0] * sx, 2 * g_M[1] * sy, 2 * g_M[2] * sz, 2 * g_M[3] * sx, 2 * g_M[4] * sy, 2 * g_M[5] * sz,
           2 * g_M[6] * sx, 2 * g_M[7] * sy, 2 * g_M[8] * sz)
    d_sx = 2 * (g_M[0] * Rq[0] + g_M[3] * Rq[3] + g_M[6] * Rq[6])
    d_sy = 2 * (g_M[1] * Rq[1] + g_M[4] * Rq[4] + g_M[7] * Rq[7])
    d_sz = 2 * (g_M[2] * Rq[2] + g_M[5] * Rq[5] + g_M[8] * Rq[8])
    gw = 2 * (-z * g_R[1] + y * g_R[2] + z * g_R[3] - x * g_R[5] - y * g_R[6] + x * g_R[7])
    gx = 2 * (y * g_R[1] + z * g_R[2] + y * g_R[3] - 2 * x * g_R[4] - w * g_R[5] + z * g_R[6] + w * g_R[7]
              - 2 * x * g_R[8])
    gy = 2 * (-2 * y * g_R[0] + x * g_R[1] + w * g_R[2] + x * g_R[3] + z * g_R[5] - w * g_R[6] + z * g_R[7]
              - 2 * y * g_R[8])
    gz = 2 * (-2 * z * g_R[0] - w * g_R[1] + x * g_R[2] + w * g_R[3] - 2 * z * g_R[4] + y * g_R[5] + x * g_R[6]
              + y * g_R[7])
    dot = w * gw + x * gx + y * gy + z * gz  # through the normalisation q / |q|
    d_q = ((gw - w * dot) / q_len, (gx - x * dot) / q_len, (gy - y * dot) / q_len, (gz - z * dot) / q_len)
    # camera point: through J (u, v held), through u, v where unclamped, the 2D mean and the depth
    gJ00, gJ02, gJ11, gJ12 = 2 * g_J[0], 2 * g_J[2], 2 * g_J[4], 2 * g_J[5]
    g_tx = 0.0
    g_ty = 0.0
    g_tz = g[G_Z] + (-(gJ00 * fx + gJ11 * fy) + gJ02 * fx * u + gJ12 * fy * v) * rz * rz
    g_u = -gJ02 * fx * rz
    g_v = -gJ12 * fy * rz
    if -lim_x_neg < u_raw < lim_x_pos:
        g_tx += g_u * rz
        g_tz -= g_u * tx * rz * rz
    if -lim_y_neg < v_raw < lim_y_pos:
        g_ty += g_v * rz
        g_tz -= g_v * ty * rz * rz
    gmx, gmy = g[G_MX], g[G_MY]
    g_tx += gmx * fx * rz
    g_ty += gmy * fy * rz
    g_tz -= (gmx * fx * tx + gmy * fy * ty) * rz * rz
    d_m = (W[0] * g_tx + W[3] * g_ty + W[6] * g_tz, W[1] * g_tx + W[4] * g_ty + W[7] * g_tz,
           W[2] * g_tx + W[5] * g_ty + W[8] * g_tz)
    return d_m, d_q, (d_sx, d_sy, d_sz)


@njit(parallel=True, cache=True)
def _project_backward(
    means, quats, scales, visible,              # [N,3] [N,4] [N,3] f32, [V] int32 ids that were rendered
    viewmat, fx, fy, cx, cy, width, height, eps2d,
    g2d,                                        # [N, 10] per-Gaussian G_* gradients (f64)
    g_means, g_quats, g_scales,                 # outputs [N,3] [N,4] [N,3] f64 (rows of `visible` written)
):
    """The EWA projection's backward (camera fixed), float64, as gsplat's fully_fused_projection_bwd.

    Forward, per Gaussian: q/|q| -> rotation Rq; M = Rq diag(s); Sigma = M M^T; p = W m + t;
    Sigma_c = W Sigma W^T; J at p with x/z, y/z clamped; cov = J Sigma_c J^T + eps2d I;
    conic = cov^-1; mean2d = (fx x/z + cx, fy y/z + cy); depth = z.
    """
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lims = ((width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx, cx / fx + FOV_CLAMP_MARGIN * tan_fovx,
            (height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy, cy / fy + FOV_CLAMP_MARGIN * tan_fovy)
    W = (viewmat[0, 0], viewmat[0, 1], viewmat[0, 2], viewmat[1, 0], viewmat[1, 1], viewmat[1, 2],
         viewmat[2, 0], viewmat[2, 1], viewmat[2, 2])
    t = (viewmat[0, 3], viewmat[1, 3], viewmat[2, 3])
    for k in prange(visible.shape[0]):
        i = visible[k]
        d_m, d_q, d_s = _project_backward_one(
            np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2]),
            np.float64(quats[i, 0]), np.float64(quats[i, 1]), np.float64(quats[i, 2]), np.float64(quats[i, 3]),
            np.float64(scales[i, 0]), np.float64(scales[i, 1]), np.float64(scales[i, 2]),
            W, t, fx, fy, lims, eps2d, g2d[i])
        for r in range(3):
            g_means[i, r] = d_m[r]
            g_scales[i, r] = d_s[r]
        for r in range(4):
            g_quats[i, r] = d_q[r]


def project_backward(
    means: np.ndarray,     # [N, 3]
    quats: np.ndarray,     # [N, 4] wxyz
    scales: np.ndarray,    # [N, 3]
    visible: np.ndarray,   # [V] int32 ids the forward rendered (CpuRenderState.order)
    viewmat: np.ndarray,   # [4, 4]
    K: np.ndarray,         # [3, 3]
    width: int,
    height: int,
    grads: Gradients2D,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> dL/d means [N, 3], quats [N, 4], scales [N, 3] (float32; zero outside `visible`)."""
    n = means.shape[0]
    g2d = np.zeros((n, GRAD_WIDTH), np.float64)
    g2d[:, G_MX:G_MY + 1] = grads.means2d
    g2d[:, G_A:G_C + 1] = grads.conics
    g2d[:, G_Z] = grads.depths
    g_means, g_quats, g_scales = np.zeros((n, 3)), np.zeros((n, 4)), np.zeros((n, 3))
    viewmat = np.ascontiguousarray(viewmat, np.float64)
    K = np.asarray(K, np.float64)
    with PARALLEL_LOCK:
        _project_backward(np.ascontiguousarray(means, np.float32), np.ascontiguousarray(quats, np.float32),
                          np.ascontiguousarray(scales, np.float32), np.ascontiguousarray(visible, np.int32),
                          viewmat, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width),
                          int(height), EPS2D, g2d, g_means, g_quats, g_scales)
    return g_means.astype(np.float32), g_quats.astype(np.float32), g_scales.astype(np.float32)

"""The numba splatting renderer: gsplat's forward pass on CPU cores, parallel over tiles.

Four compiled stages with no Python work between them beyond allocation:
  1. `_project`        (parallel over Gaussians): EWA projection in float64 into one float32
                       record (cache line) per Gaussian.
  2. `_sorted_visible` visible ids by (depth, id): a stable radix sort of the depth bits.
  3. `_bin`            per-tile lists, filled front to back by bands of tile rows in parallel.
  4. `_rasterize`      (parallel over tiles): front-to-back compositing, 16-pixel rows as vector code.

`render_cpu_state` is what `rasterize(backend="cpu")` calls; it returns the per-tile sorted
lists and per-pixel last contributors so a backward pass can reuse them. Compiled functions are
cached on disk (`cache=True`, in numba's cache dir: __pycache__ or NUMBA_CACHE_DIR), so compile
cost is paid once per machine.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from emo_backend.parallel import PARALLEL_LOCK, numba_threads, threading_layer  # noqa: F401  (re-exported)
from emo_backend.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FAR_PLANE, FIXED_EXTENT, FOV_CLAMP_MARGIN, MAX_ALPHA, NEAR_PLANE, TILE_SIZE,
    TRANSMITTANCE_STOP,
)



# One record per Gaussian, one 64-byte cache line: what the rasterizer reads.
P_X, P_Y, P_A, P_B, P_C, P_OPACITY, P_POWER_CUT, P_RX, P_RY, P_R, P_G, P_BLUE, P_Z = range(13)
RECORD = 16


@njit(cache=True)
def _tile_rect(mx, my, rx, ry, tiles_x, tiles_y):
    """Tiles [x0, x1) x [y0, y1) that a box touches, as gsplat's isect_tiles computes them."""
    x0 = min(max(0, int(math.floor((mx - rx) / TILE_SIZE))), tiles_x)
    y0 = min(max(0, int(math.floor((my - ry) / TILE_SIZE))), tiles_y)
    x1 = min(max(0, int(math.ceil((mx + rx) / TILE_SIZE))), tiles_x)
    y1 = min(max(0, int(math.ceil((my + ry) / TILE_SIZE))), tiles_y)
    return x0, y0, x1, y1


@njit(parallel=True, cache=True)
def _project(
    means, quats, scales, opacities, colors,  # [N,3] [N,4] [N,3] [N] [N,3] float32
    viewmat, fx, fy, cx, cy, width, height, eps2d, near, far, opacity_radius, tiles_x, tiles_y,
    records, depths, radii, rects,            # outputs: [N,16] f32 (P_* columns), [N] f32, [N,2] i32, [N,4] i32
):
    """EWA projection (float64 maths) straight into the rasterizer's records; radii 0 = culled.

    `rects` [N, 4] is the tile rectangle x0, y0, x1, y1 (exclusive) each Gaussian touches.
    """
    n = means.shape[0]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_x_neg = cx / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_y_pos = (height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy
    lim_y_neg = cy / fy + FOV_CLAMP_MARGIN * tan_fovy
    for i in prange(n):
        radii[i, 0] = 0
        radii[i, 1] = 0
        rects[i, 0] = 0
        rects[i, 1] = 0
        rects[i, 2] = 0
        rects[i, 3] = 0
        mx = np.float64(means[i, 0])
        my = np.float64(means[i, 1])
        mz = np.float64(means[i, 2])
        tx = viewmat[0, 0] * mx + viewmat[0, 1] * my + viewmat[0, 2] * mz + viewmat[0, 3]
        ty = viewmat[1, 0] * mx + viewmat[1, 1] * my + viewmat[1, 2] * mz + viewmat[1, 3]
        tz = viewmat[2, 0] * mx + viewmat[2, 1] * my + viewmat[2, 2] * mz + viewmat[2, 3]
        depths[i] = tz
        if not (tz >= near and tz <= far):
            continue
        op = np.float64(opacities[i])
        if opacity_radius and not (op >= ALPHA_THRESHOLD):
            continue
        # rotation from the normalised quaternion (scalars only: no allocation in the parallel loop)
        qw = np.float64(quats[i, 0])
        qx = np.float64(quats[i, 1])
        qy = np.float64(quats[i, 2])
        qz = np.float64(quats[i, 3])
        inv_qn = 1.0 / max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
        qw *= inv_qn
        qx *= inv_qn
        qy *= inv_qn
        qz *= inv_qn
        r00 = 1 - 2 * (qy * qy + qz * qz)
        r01 = 2 * (qx * qy - qw * qz)
        r02 = 2 * (qx * qz + qw * qy)
        r10 = 2 * (qx * qy + qw * qz)
        r11 = 1 - 2 * (qx * qx + qz * qz)
        r12 = 2 * (qy * qz - qw * qx)
        r20 = 2 * (qx * qz - qw * qy)
        r21 = 2 * (qy * qz + qw * qx)
        r22 = 1 - 2 * (qx * qx + qy * qy)
        sx = np.float64(scales[i, 0])
        sy = np.float64(scales[i, 1])
        sz = np.float64(scales[i, 2])
        # camera-space R S, row by row: m_r = (W_r0 R_0c + W_r1 R_1c + W_r2 R_2c) s_c
        w0, w1, w2 = viewmat[0, 0], viewmat[0, 1], viewmat[0, 2]
        m00 = (w0 * r00 + w1 * r10 + w2 * r20) * sx
        m01 = (w0 * r01 + w1 * r11 + w2 * r21) * sy
        m02 = (w0 * r02 + w1 * r12 + w2 * r22) * sz
        w0, w1, w2 = viewmat[1, 0], viewmat[1, 1], viewmat[1, 2]
        m10 = (w0 * r00 + w1 * r10 + w2 * r20) * sx
        m11 = (w0 * r01 + w1 * r11 + w2 * r21) * sy
        m12 = (w0 * r02 + w1 * r12 + w2 * r22) * sz
        w0, w1, w2 = viewmat[2, 0], viewmat[2, 1], viewmat[2, 2]
        m20 = (w0 * r00 + w1 * r10 + w2 * r20) * sx
        m21 = (w0 * r01 + w1 * r11 + w2 * r21) * sy
        m22 = (w0 * r02 + w1 * r12 + w2 * r22) * sz
        rz = 1.0 / tz
        u = min(lim_x_pos, max(-lim_x_neg, tx * rz))
        v = min(lim_y_pos, max(-lim_y_neg, ty * rz))
        # rows of J (2x3) times cm -> 2x3, then cov2d = (J cm)(J cm)^T
        j00 = fx * rz
        j02 = -fx * u * rz
        j11 = fy * rz
        j12 = -fy * v * rz
        a0 = j00 * m00 + j02 * m20
        a1 = j00 * m01 + j02 * m21
        a2 = j00 * m02 + j02 * m22
        b0 = j11 * m10 + j12 * m20
        b1 = j11 * m11 + j12 * m21
        b2 = j11 * m12 + j12 * m22
        ca = a0 * a0 + a1 * a1 + a2 * a2 + eps2d
        cb = a0 * b0 + a1 * b1 + a2 * b2
        cc = b0 * b0 + b1 * b1 + b2 * b2 + eps2d
        det = ca * cc - cb * cb
        if not (det > 0):
            continue
        # power beyond ln(255 o) means alpha < 1/255: the box's reach, and the rasterizer's cut
        power_cut = math.log(max(op, 1e-30) / ALPHA_THRESHOLD)
        extent = FIXED_EXTENT
        if opacity_radius:
            extent = min(extent, math.sqrt(2.0 * power_cut))
        rx = math.ceil(extent * math.sqrt(ca))
        ry = math.ceil(extent * math.sqrt(cc))
        px = fx * tx * rz + cx
        py = fy * ty * rz + cy
        if rx <= 0 and ry <= 0:
            continue
        if px + rx <= 0 or px - rx >= width or py + ry <= 0 or py - ry >= height:
            continue
        records[i, P_X] = px
        records[i, P_Y] = py
        inv_det = 1.0 / det
        records[i, P_A] = cc * inv_det
        records[i, P_B] = -cb * inv_det
        records[i, P_C] = ca * inv_det
        records[i, P_OPACITY] = op
        records[i, P_POWER_CUT] = power_cut
        records[i, P_RX] = rx
        records[i, P_RY] = ry
        records[i, P_R] = colors[i, 0]
        records[i, P_G] = colors[i, 1]
        records[i, P_BLUE] = colors[i, 2]
        records[i, P_Z] = tz
        radii[i, 0] = np.int32(rx)
        radii[i, 1] = np.int32(ry)
        x0, y0, x1, y1 = _tile_rect(records[i, P_X], records[i, P_Y], records[i, P_RX], records[i, P_RY],
                                    tiles_x, tiles_y)
        rects[i, 0] = x0
        rects[i, 1] = y0
        rects[i, 2] = x1
        rects[i, 3] = y1


RADIX_BITS = 11  # three passes cover the 31 bits of a positive float32


@njit(cache=True)
def _sorted_visible(depths, radii):
    """Visible Gaussian ids ordered by (depth, id): gsplat's stable depth order.

    A stable LSD radix sort on the float32 depth's bits (depth > 0 after culling, so the
    bits order as the values do), starting from ids in increasing order: ties keep id order.
    """
    n = depths.shape[0]
    bits = depths.view(np.uint32)
    n_vis = 0
    for i in range(n):
        if radii[i, 0] > 0 or radii[i, 1] > 0:
            n_vis += 1
    order = np.empty(n_vis, np.int32)
    keys = np.empty(n_vis, np.uint32)
    k = 0
    for i in range(n):
        if radii[i, 0] > 0 or radii[i, 1] > 0:
            order[k] = i
            keys[k] = bits[i]
            k += 1
    order_tmp = np.empty_like(order)
    keys_tmp = np.empty_like(keys)
    n_buckets = 1 << RADIX_BITS
    mask = np.uint32(n_buckets - 1)
    for shift in range(0, 32, RADIX_BITS):
        counts = np.zeros(n_buckets + 1, np.int64)
        for k in range(n_vis):
            counts[((keys[k] >> shift) & mask) + 1] += 1
        if counts.max() == n_vis:  # every key has the same digit here: nothing to move
            continue
        for b in range(n_buckets):
            counts[b + 1] += counts[b]
        for k in range(n_vis):
            d = (keys[k] >> shift) & mask
            dest = counts[d]
            counts[d] += 1
            keys_tmp[dest] = keys[k]
            order_tmp[dest] = order[k]
        keys, keys_tmp = keys_tmp, keys
        order, order_tmp = order_tmp, order
    return order


@njit(parallel=True, cache=True)
def _bin(rects, order, tiles_x, tiles_y, n_bands):
    """-> offsets [tiles+1] int64, ids [n_isects] int32: per tile, Gaussian ids front to back.

    Each band of tile rows works on its own thread: it counts its tiles' entries (in id
    order, a sequential read), then walks `order` (front to back) filling only its tiles,
    so every tile's list comes out sorted without atomics.
    """
    n_tiles = tiles_x * tiles_y
    n = rects.shape[0]
    n_bands = max(1, min(n_bands, tiles_y))
    band_rows = np.linspace(0, tiles_y, n_bands + 1).astype(np.int64)
    counts = np.zeros(n_tiles + 1, dtype=np.int64)
    for b in prange(n_bands):
        r0, r1 = band_rows[b], band_rows[b + 1]
        for i in range(n):  # culled Gaussians have an empty rectangle
            y0 = max(rects[i, 1], r0)
            y1 = min(rects[i, 3], r1)
            for ty in range(y0, y1):
                for tx in range(rects[i, 0], rects[i, 2]):
                    counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    ids = np.empty(offsets[-1], dtype=np.int32)
    n_vis = order.shape[0]
    for b in prange(n_bands):
        r0, r1 = band_rows[b], band_rows[b + 1]
        fill = offsets[r0 * tiles_x:r1 * tiles_x].copy()
        for k in range(n_vis):
            i = order[k]
            y0 = max(rects[i, 1], r0)
            y1 = min(rects[i, 3], r1)
            for ty in range(y0, y1):
                for tx in range(rects[i, 0], rects[i, 2]):
                    t = ty * tiles_x + tx - r0 * tiles_x
                    ids[fill[t]] = i
                    fill[t] += 1
    return offsets, ids


@njit(inline="always", fastmath=True, cache=True)
def _exp_neg(power):
    """exp(-power) for power in [0, 8] (float32, relative error ~2e-6): a degree-7 polynomial
    of exp(-power/16) squared four times. Branch-free, so a 16-pixel row vectorises."""
    x = power * np.float32(1.0 / 16.0)
    e = np.float32(1) - x * (np.float32(1) - x * (np.float32(1 / 2) - x * (np.float32(1 / 6) - x * (
        np.float32(1 / 24) - x * (np.float32(1 / 120) - x * (np.float32(1 / 720) - x * np.float32(1 / 5040)))))))
    e = e * e
    e = e * e
    e = e * e
    return e * e


# Per-tile state: one row of 16 pixels is one contiguous slice of 7 channels x 16 lanes, so the
# compiler sees the channels cannot alias and turns the pixel loop into vector code.
S_T, S_ALIVE, S_R, S_G, S_B, S_DEPTH, S_LAST = (c * TILE_SIZE for c in range(7))
STATE_WIDTH = 8 * TILE_SIZE
RECOUNT_EVERY = 32  # Gaussians between recounts of a tile's live rows


@njit(parallel=True, fastmath=True, cache=True)
def _rasterize(
    rec, offsets, ids, width, height, tiles_x, background,  # records [N, 16], tile lists, bg [3] f32
    n_blocks,                                                 # numba's thread count
    rgb, alpha_out, depth_out, last_out,                      # [H,W,3] [H,W] [H,W] f32, [H,W] int32
    trans_out,                                                # [H,W] f32 final transmittance
):
    """Front-to-back compositing per tile, parallel over tiles.

    For each Gaussian (front to back) and each tile row its box covers, all 16 pixels of
    the row are updated branch-free (vector code): pixels outside the Gaussian's reach
    fail the power cut (alpha < 1/255). Finished pixels (T would drop to <= 1e-4: that
    Gaussian excluded, as gsplat) are marked dead; dead rows are skipped, a dead tile stops.
    `last_out` is the index into `ids` of each pixel's last contributing Gaussian (-1: none).
    """
    n_tiles = offsets.shape[0] - 1
    thr = np.float32(ALPHA_THRESHOLD)
    amax = np.float32(MAX_ALPHA)
    tstop = np.float32(TRANSMITTANCE_STOP)
    half = np.float32(0.5)
    zero = np.float32(0)
    # prange gives each thread one contiguous block of iterations; map block b, step j to tile
    # j * n_blocks + b so every thread gets tiles from all over the image (a face is not uniform)
    n_blocks = max(1, n_blocks)
    block = (n_tiles + n_blocks - 1) // n_blocks
    for i in prange(block * n_blocks):
        t = (i % block) * n_blocks + i // block
        if t >= n_tiles:
            continue
        x_start = (t % tiles_x) * TILE_SIZE
        y_start = (t // tiles_x) * TILE_SIZE
        n_cols = min(x_start + TILE_SIZE, width) - x_start
        n_rows = min(y_start + TILE_SIZE, height) - y_start
        start = offsets[t]
        state = np.zeros((TILE_SIZE, STATE_WIDTH), dtype=np.float32)
        row_alive = np.zeros(TILE_SIZE, dtype=np.float32)
        for r in range(TILE_SIZE):
            for j in range(TILE_SIZE):
                state[r, S_T + j] = 1
                state[r, S_LAST + j] = -1
                if r < n_rows and j < n_cols:  # pixels past the image edge start dead
                    state[r, S_ALIVE + j] = 1
                    row_alive[r] += 1
        tile_alive = np.float32(n_rows * n_cols)
        px = np.empty(TILE_SIZE, dtype=np.float32)
        for j in range(TILE_SIZE):
            px[j] = np.float32(x_start + j) + half
        for k in range(start, offsets[t + 1]):
            g = ids[k]
            my = rec[g, P_Y]
            y0 = max(0, int(math.ceil(my - rec[g, P_RY] - half)) - y_start)
            y1 = min(n_rows, int(math.floor(my + rec[g, P_RY] - half)) + 1 - y_start)
            mx = rec[g, P_X]
            half_a = half * rec[g, P_A]
            cb = rec[g, P_B]
            cc = rec[g, P_C]
            op = rec[g, P_OPACITY]
            cut = rec[g, P_POWER_CUT]
            cr = rec[g, P_R]
            cg = rec[g, P_G]
            cbl = rec[g, P_BLUE]
            z = rec[g, P_Z]
            local_k = np.float32(k - start)  # exact in float32 up to 2^24 entries per tile
            for row in range(y0, y1):
                if row_alive[row] == 0:
                    continue
                dy = my - (np.float32(y_start + row) + half)
                row_power = half * cc * dy * dy
                bdy = cb * dy
                s = state[row]
                for j in range(TILE_SIZE):
                    dx = mx - px[j]
                    power = half_a * dx * dx + row_power + bdy * dx
                    a = min(amax, op * _exp_neg(min(max(power, zero), np.float32(8))))
                    alive = s[S_ALIVE + j]
                    # power > cut  <=>  opacity * exp(-power) < 1/255 (cut = ln(255 opacity) <= 5.55 < 8)
                    hit = (power <= cut) & (power >= zero) & (a >= thr) & (alive > zero)
                    T = s[S_T + j]
                    next_T = T * (np.float32(1) - a)
                    use = hit & (next_T > tstop)
                    w = a * T if use else zero
                    s[S_R + j] += w * cr
                    s[S_G + j] += w * cg
                    s[S_B + j] += w * cbl
                    s[S_DEPTH + j] += w * z
                    s[S_T + j] = next_T if use else T
                    s[S_LAST + j] = local_k if use else s[S_LAST + j]
                    s[S_ALIVE + j] = zero if (hit & (next_T <= tstop)) else alive
            if (k - start) % RECOUNT_EVERY == RECOUNT_EVERY - 1:  # recount live pixels (a reduction: not per row)
                tile_alive = zero
                for r in range(n_rows):
                    n_alive = zero
                    for j in range(TILE_SIZE):
                        n_alive += state[r, S_ALIVE + j]
                    row_alive[r] = n_alive
                    tile_alive += n_alive
                if tile_alive == 0:
                    break
        for r in range(n_rows):
            for j in range(n_cols):
                T = state[r, S_T + j]
                a = np.float32(1) - T
                y = y_start + r
                x = x_start + j
                rgb[y, x, 0] = state[r, S_R + j] + T * background[0]
                rgb[y, x, 1] = state[r, S_G + j] + T * background[1]
                rgb[y, x, 2] = state[r, S_B + j] + T * background[2]
                alpha_out[y, x] = a
                trans_out[y, x] = T  # exact, unlike 1 - alpha when T is small: the backward starts from it
                depth_out[y, x] = state[r, S_DEPTH + j] / max(a, np.float32(1e-10))
                local = state[r, S_LAST + j]
                last_out[y, x] = -1 if local < 0 else start + np.int32(local)


class CpuRenderState(NamedTuple):
    """Everything the forward pass computed; a backward pass reuses the tile lists and `last_ids`."""

    records: np.ndarray    # [N, 16] float32 per-Gaussian render data (P_* columns); valid where radii > 0
    depths: np.ndarray     # [N] float32 camera z
    radii: np.ndarray      # [N, 2] int32, 0 = culled
    order: np.ndarray      # [n_visible] int32 visible Gaussian ids front to back (depth, then id)
    tile_offsets: np.ndarray  # [tiles_y * tiles_x + 1] int64: tile t's entries are tile_ids[off[t]:off[t+1]]
    tile_ids: np.ndarray   # [n_isects] int32 Gaussian ids, front to back within each tile
    tiles_x: int
    tiles_y: int
    rgb: np.ndarray        # [H, W, 3] float32 (background included)
    alpha: np.ndarray      # [H, W] float32
    depth: np.ndarray      # [H, W] float32
    last_ids: np.ndarray   # [H, W] int32: index into tile_ids of the last contributing Gaussian, -1 if none
    transmittance: np.ndarray  # [H, W] float32 final T (= 1 - alpha, but without the rounding of 1 - T)

    @property
    def means2d(self) -> np.ndarray:  # [N, 2]
        return self.records[:, P_X:P_Y + 1]

    @property
    def conics(self) -> np.ndarray:  # [N, 3] (a, b, c) of [[a, b], [b, c]]
        return self.records[:, P_A:P_C + 1]


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def render_cpu_state(
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
    opacity_radius: bool = True,
) -> CpuRenderState:
    """The numba forward pass; see `CpuRenderState` for what it keeps for a backward pass."""
    means, quats, scales, opacities, colors = (_f32(a) for a in (means, quats, scales, opacities, colors))
    viewmat = np.ascontiguousarray(np.asarray(viewmat, dtype=np.float64))
    K = np.asarray(K, dtype=np.float64)
    with PARALLEL_LOCK:
        return _render_locked(means, quats, scales, opacities, colors, viewmat, K, width, height, background,
                              opacity_radius)


def _render_locked(means, quats, scales, opacities, colors, viewmat, K, width, height, background, opacity_radius):
    n = means.shape[0]
    records = np.zeros((n, RECORD), np.float32)
    depths = np.zeros(n, np.float32)
    radii = np.zeros((n, 2), np.int32)
    rects = np.empty((n, 4), np.int32)
    tiles_x = -(-width // TILE_SIZE)
    tiles_y = -(-height // TILE_SIZE)
    _project(means, quats, scales, opacities, colors, viewmat, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
             float(K[1, 2]), int(width), int(height), EPS2D, NEAR_PLANE, FAR_PLANE, bool(opacity_radius), tiles_x,
             tiles_y, records, depths, radii, rects)
    order = _sorted_visible(depths, radii)
    offsets, ids = _bin(rects, order, tiles_x, tiles_y, numba.get_num_threads())
    bg = np.zeros(3, np.float32) if background is None else _f32(background).reshape(3)
    rgb = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    depth = np.empty((height, width), np.float32)
    last = np.empty((height, width), np.int32)
    trans = np.empty((height, width), np.float32)
    _rasterize(records, offsets, ids, int(width), int(height), tiles_x, bg, numba.get_num_threads(), rgb, alpha,
               depth, last, trans)
    return CpuRenderState(records, depths, radii, order, offsets, ids, tiles_x, tiles_y, rgb, alpha, depth, last,
                          trans)

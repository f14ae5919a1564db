"""The numba splatting renderer: gsplat's forward pass on CPU cores, parallel over tiles.

Three compiled stages with no Python work between them beyond allocation:
  1. `_project`  (parallel over Gaussians): EWA projection, float64 maths, float32 results.
  2. `_bin`      tile lists: count, prefix-sum, fill, then (parallel over tiles) a stable sort by depth.
  3. `_rasterize` (parallel over tiles): front-to-back compositing, Gaussian-outer /
     pixel-inner, each Gaussian touching only the pixels of its box inside the tile.

`render_cpu_state` returns the per-tile sorted lists and per-pixel bookkeeping so a
backward pass can reuse them; `rasterize_cpu` is what `rasterize(backend="cpu")` calls.
Compiled functions are cached on disk (`cache=True`), so compile cost is paid once per machine.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from emo_backend.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FAR_PLANE, FIXED_EXTENT, FOV_CLAMP_MARGIN, MAX_ALPHA, NEAR_PLANE, TILE_SIZE,
    TRANSMITTANCE_STOP,
)


@njit(parallel=True, cache=True)
def _project(
    means, quats, scales, opacities,  # [N,3] [N,4] [N,3] [N] float32
    viewmat, fx, fy, cx, cy, width, height, eps2d, near, far, opacity_radius,
    means2d, conics, depths, radii,   # outputs: [N,2] f32, [N,3] f32, [N] f32, [N,2] i32
):
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
        qn = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
        qw /= qn
        qx /= qn
        qy /= qn
        qz /= qn
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
        u = min(lim_x_pos, max(-lim_x_neg, tx / tz))
        v = min(lim_y_pos, max(-lim_y_neg, ty / tz))
        # rows of J (2x3) times cm -> 2x3, then cov2d = (J cm)(J cm)^T
        j00 = fx / tz
        j02 = -fx * u / tz
        j11 = fy / tz
        j12 = -fy * v / tz
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
        extent = FIXED_EXTENT
        if opacity_radius:
            extent = min(extent, math.sqrt(2.0 * math.log(op / ALPHA_THRESHOLD)))
        rx = math.ceil(extent * math.sqrt(ca))
        ry = math.ceil(extent * math.sqrt(cc))
        px = fx * tx / tz + cx
        py = fy * ty / tz + cy
        if rx <= 0 and ry <= 0:
            continue
        if px + rx <= 0 or px - rx >= width or py + ry <= 0 or py - ry >= height:
            continue
        means2d[i, 0] = px
        means2d[i, 1] = py
        conics[i, 0] = cc / det
        conics[i, 1] = -cb / det
        conics[i, 2] = ca / det
        radii[i, 0] = np.int32(rx)
        radii[i, 1] = np.int32(ry)


@njit(cache=True)
def _tile_rect(mx, my, rx, ry, tiles_x, tiles_y):
    """Tiles [x0, x1) x [y0, y1) that a box touches, as gsplat's isect_tiles computes them."""
    x0 = min(max(0, int(math.floor((mx - rx) / TILE_SIZE))), tiles_x)
    y0 = min(max(0, int(math.floor((my - ry) / TILE_SIZE))), tiles_y)
    x1 = min(max(0, int(math.ceil((mx + rx) / TILE_SIZE))), tiles_x)
    y1 = min(max(0, int(math.ceil((my + ry) / TILE_SIZE))), tiles_y)
    return x0, y0, x1, y1


@njit(parallel=True, cache=True)
def _sorted_visible(depths, radii, n_chunks):
    """Visible Gaussian ids ordered by (depth, id): gsplat's stable depth order.

    Keys pack the float32 depth's bits (depth > 0 after culling, so the bits sort as
    the values do) above the id; chunks are sorted in parallel, then merged.
    """
    n = depths.shape[0]
    depth_bits = depths.view(np.int32)
    n_vis = 0
    for i in range(n):
        if radii[i, 0] > 0 or radii[i, 1] > 0:
            n_vis += 1
    keys = np.empty(n_vis, np.int64)
    k = 0
    for i in range(n):
        if radii[i, 0] > 0 or radii[i, 1] > 0:
            keys[k] = (np.int64(depth_bits[i]) << 32) | i
            k += 1
    bounds = np.linspace(0, n_vis, n_chunks + 1).astype(np.int64)
    for c in prange(n_chunks):
        keys[bounds[c]:bounds[c + 1]] = np.sort(keys[bounds[c]:bounds[c + 1]])
    width = 1
    while width < n_chunks:  # pairwise merges of sorted runs
        merged = np.empty_like(keys)
        for c in range(0, n_chunks, 2 * width):
            lo = bounds[c]
            mid = bounds[min(c + width, n_chunks)]
            hi = bounds[min(c + 2 * width, n_chunks)]
            a, b, o = lo, mid, lo
            while a < mid and b < hi:
                if keys[a] <= keys[b]:
                    merged[o] = keys[a]
                    a += 1
                else:
                    merged[o] = keys[b]
                    b += 1
                o += 1
            while a < mid:
                merged[o] = keys[a]
                a += 1
                o += 1
            while b < hi:
                merged[o] = keys[b]
                b += 1
                o += 1
        keys = merged
        width *= 2
    order = np.empty(n_vis, np.int32)
    for k in range(n_vis):
        order[k] = np.int32(keys[k] & 0xFFFFFFFF)
    return order


@njit(cache=True)
def _bin(means2d, radii, order, tiles_x, tiles_y):
    """-> offsets [tiles+1] int64, ranks [n_isects] int32: per tile, positions in `order`, front to back.

    Filling the tiles while walking `order` (front to back) leaves every tile's list sorted.
    """
    n_tiles = tiles_x * tiles_y
    n = order.shape[0]
    rects = np.empty((n, 4), np.int32)
    counts = np.zeros(n_tiles + 1, dtype=np.int64)
    for k in range(n):
        i = order[k]
        x0, y0, x1, y1 = _tile_rect(means2d[i, 0], means2d[i, 1], radii[i, 0], radii[i, 1], tiles_x, tiles_y)
        rects[k, 0] = x0
        rects[k, 1] = y0
        rects[k, 2] = x1
        rects[k, 3] = y1
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    ids = np.empty(offsets[-1], dtype=np.int32)
    fill = offsets[:-1].copy()
    for k in range(n):
        for ty in range(rects[k, 1], rects[k, 3]):
            for tx in range(rects[k, 0], rects[k, 2]):
                t = ty * tiles_x + tx
                ids[fill[t]] = k
                fill[t] += 1
    return offsets, ids


# One record per visible Gaussian, in depth order, one 64-byte cache line each.
P_X, P_Y, P_A, P_B, P_C, P_OPACITY, P_POWER_CUT, P_RX, P_RY, P_R, P_G, P_BLUE, P_Z = range(13)
RECORD = 16


@njit(parallel=True, cache=True)
def _pack(order, means2d, conics, opacities, colors, depths, radii):
    """-> records [n_visible, 16] float32 in `order`; the power cut is ln(255 o): alpha < 1/255 beyond it."""
    n = order.shape[0]
    rec = np.zeros((n, RECORD), np.float32)
    for k in prange(n):
        g = order[k]
        rec[k, P_X] = means2d[g, 0]
        rec[k, P_Y] = means2d[g, 1]
        rec[k, P_A] = conics[g, 0]
        rec[k, P_B] = conics[g, 1]
        rec[k, P_C] = conics[g, 2]
        o = opacities[g]
        rec[k, P_OPACITY] = o
        rec[k, P_POWER_CUT] = math.log(max(np.float64(o), 1e-30) / ALPHA_THRESHOLD)
        rec[k, P_RX] = radii[g, 0]
        rec[k, P_RY] = radii[g, 1]
        rec[k, P_R] = colors[g, 0]
        rec[k, P_G] = colors[g, 1]
        rec[k, P_BLUE] = colors[g, 2]
        rec[k, P_Z] = depths[g]
    return rec


@njit(parallel=True, fastmath=True, cache=True)
def _rasterize(
    rec, offsets, ranks, width, height, tiles_x, background,  # records [n_vis, 16], tile lists, bg [3] f32
    rgb, alpha_out, depth_out, last_out,                      # [H,W,3] [H,W] [H,W] f32, [H,W] int32
):
    """Front-to-back compositing per tile, parallel over tiles.

    Gaussian-outer, pixel-inner: each Gaussian visits only the pixel centres inside its
    box; a 16-bit mask per tile row marks finished pixels (T would drop to <= 1e-4), so
    finished rows cost one test, and a tile stops when all its rows are finished.
    `last_out` is the index into `ranks` of each pixel's last contributing Gaussian (-1: none).
    """
    n_tiles = offsets.shape[0] - 1
    thr = np.float32(ALPHA_THRESHOLD)
    amax = np.float32(MAX_ALPHA)
    tstop = np.float32(TRANSMITTANCE_STOP)
    half = np.float32(0.5)
    for t in prange(n_tiles):
        x_start = (t % tiles_x) * TILE_SIZE
        y_start = (t // tiles_x) * TILE_SIZE
        x_end = min(x_start + TILE_SIZE, width)
        y_end = min(y_start + TILE_SIZE, height)
        n_rows = y_end - y_start
        full_row = (1 << (x_end - x_start)) - 1
        T = np.ones(TILE_SIZE * TILE_SIZE, dtype=np.float32)
        acc = np.zeros((4, TILE_SIZE * TILE_SIZE), dtype=np.float32)   # r, g, b, depth
        last = np.full(TILE_SIZE * TILE_SIZE, -1, dtype=np.int32)
        done = np.zeros(TILE_SIZE, dtype=np.int32)                     # per row, bit x: pixel finished
        rows_done = 0
        for k in range(offsets[t], offsets[t + 1]):
            g = ranks[k]
            mx = rec[g, P_X]
            my = rec[g, P_Y]
            # pixel centres within the Gaussian's box; outside it alpha < 1/255 anyway
            px0 = max(x_start, int(math.ceil(mx - rec[g, P_RX] - half)))
            px1 = min(x_end, int(math.floor(mx + rec[g, P_RX] - half)) + 1)
            py0 = max(y_start, int(math.ceil(my - rec[g, P_RY] - half)))
            py1 = min(y_end, int(math.floor(my + rec[g, P_RY] - half)) + 1)
            if px0 >= px1 or py0 >= py1:
                continue
            span = ((1 << (px1 - x_start)) - 1) ^ ((1 << (px0 - x_start)) - 1)
            ca = rec[g, P_A]
            cb = rec[g, P_B]
            cc = rec[g, P_C]
            op = rec[g, P_OPACITY]
            cut = rec[g, P_POWER_CUT]
            cr = rec[g, P_R]
            cg = rec[g, P_G]
            cbl = rec[g, P_BLUE]
            z = rec[g, P_Z]
            for y in range(py0, py1):
                row = y - y_start
                mask = done[row]
                if (mask & span) == span:
                    continue
                dy = my - (np.float32(y) + half)
                row_power = half * cc * dy * dy
                bdy = cb * dy
                base = row * TILE_SIZE - x_start
                for x in range(px0, px1):
                    bit = 1 << (x - x_start)
                    if mask & bit:
                        continue
                    dx = mx - (np.float32(x) + half)
                    power = half * ca * dx * dx + row_power + bdy * dx
                    if power > cut or power < 0:  # cut: alpha < 1/255 without computing exp
                        continue
                    a = min(amax, op * math.exp(-power))
                    if a < thr:
                        continue
                    p = base + x
                    Tp = T[p]
                    next_T = Tp * (np.float32(1) - a)
                    if next_T <= tstop:  # gsplat: this Gaussian is excluded, the pixel is done
                        mask |= bit
                        continue
                    w = a * Tp
                    acc[0, p] += w * cr
                    acc[1, p] += w * cg
                    acc[2, p] += w * cbl
                    acc[3, p] += w * z
                    T[p] = next_T
                    last[p] = k
                if mask != done[row]:
                    done[row] = mask
                    if mask == full_row:
                        rows_done += 1
            if rows_done == n_rows:
                break
        for y in range(y_start, y_end):
            for x in range(x_start, x_end):
                p = (y - y_start) * TILE_SIZE + (x - x_start)
                Tp = T[p]
                a = np.float32(1) - Tp
                rgb[y, x, 0] = acc[0, p] + Tp * background[0]
                rgb[y, x, 1] = acc[1, p] + Tp * background[1]
                rgb[y, x, 2] = acc[2, p] + Tp * background[2]
                alpha_out[y, x] = a
                depth_out[y, x] = acc[3, p] / max(a, np.float32(1e-10))
                last_out[y, x] = last[p]


class CpuRenderState(NamedTuple):
    """Everything the forward pass computed; a backward pass reuses the tile lists and `last_ids`."""

    means2d: np.ndarray    # [N, 2] float32
    conics: np.ndarray     # [N, 3] float32
    depths: np.ndarray     # [N] float32
    radii: np.ndarray      # [N, 2] int32, 0 = culled
    order: np.ndarray      # [n_visible] int32 Gaussian ids front to back (depth, then id)
    records: np.ndarray    # [n_visible, 16] float32 packed per-Gaussian render data in `order` (P_* columns)
    tile_offsets: np.ndarray  # [tiles_y * tiles_x + 1] int64: tile t's entries are [off[t], off[t+1])
    tile_ranks: np.ndarray  # [n_isects] int32 positions in `order`, front to back within each tile
    tiles_x: int
    tiles_y: int
    rgb: np.ndarray        # [H, W, 3] float32 (background included)
    alpha: np.ndarray      # [H, W] float32
    depth: np.ndarray      # [H, W] float32
    last_ids: np.ndarray   # [H, W] int32: index into tile_ranks of the last contributing Gaussian, -1 if none

    @property
    def tile_ids(self) -> np.ndarray:
        """[n_isects] int32 Gaussian ids, front to back within each tile."""
        return self.order[self.tile_ranks]


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
    means, quats, scales, opacities, colors = (_f32(a) for a in (means, quats, scales, opacities, colors))
    n = means.shape[0]
    viewmat = np.ascontiguousarray(np.asarray(viewmat, dtype=np.float64))
    K = np.asarray(K, dtype=np.float64)
    means2d = np.zeros((n, 2), np.float32)
    conics = np.zeros((n, 3), np.float32)
    depths = np.zeros(n, np.float32)
    radii = np.zeros((n, 2), np.int32)
    _project(means, quats, scales, opacities, viewmat, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
             float(K[1, 2]), int(width), int(height), EPS2D, NEAR_PLANE, FAR_PLANE, bool(opacity_radius),
             means2d, conics, depths, radii)
    tiles_x = -(-width // TILE_SIZE)
    tiles_y = -(-height // TILE_SIZE)
    order = _sorted_visible(depths, radii, max(1, numba.get_num_threads()))
    offsets, ranks = _bin(means2d, radii, order, tiles_x, tiles_y)
    records = _pack(order, means2d, conics, opacities, colors, depths, radii)
    bg = np.zeros(3, np.float32) if background is None else _f32(background).reshape(3)
    rgb = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    depth = np.empty((height, width), np.float32)
    last = np.empty((height, width), np.int32)
    _rasterize(records, offsets, ranks, int(width), int(height), tiles_x, bg, rgb, alpha, depth, last)
    return CpuRenderState(means2d, conics, depths, radii, order, records, offsets, ranks, tiles_x, tiles_y, rgb, alpha,
                          depth, last)


def numba_threads() -> int:
    return numba.get_num_threads()

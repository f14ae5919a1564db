"""EGD inference on the CPU as one numba kernel: the CPU path of `motion.egd_fast.egd_residual`.

In eager torch EGD's cost on the CPU is not its arithmetic (~15k multiply-adds
per Gaussian, which BLAS does at ~100 GFLOPS) but the ~40 ops per tile around
it: every GELU, layer norm, softmax and residual add is a pass through memory
and a wake-up of the thread pool. Here each parallel work item takes
`ITEM_ROWS` Gaussians of one frame through the whole network with its
activations in L1/L2: the matrix products go to BLAS (numba's np.dot; blocks
this small stay on the calling thread) and everything between them is one
fused loop over contiguous rows that the compiler vectorises.

The network is the one `egd_fast` folds (first layer split by input, LN
affines folded into the next linear, q/proj folded into per-frame keys and
values); the folding is shared, only the evaluation differs. The two
transcendental functions are written out so that they vectorise (numba's
math.exp / math.erf are scalar calls): exp by range reduction to 2^n · e^f
with a degree-7 polynomial (relative error < 1e-7) and erf by Abramowitz &
Stegun 7.1.28 (absolute error < 3e-7). `error_model="numpy"` drops the
zero-division checks that would keep every division (and so every loop
holding one) scalar. Results agree with `EGD.forward` to float32 rounding
(tests pin them).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from emo_backend.parallel import PARALLEL_LOCK

ITEM_ROWS = 256  # Gaussians per work item: larger BLAS calls start OpenBLAS's own threads and slow down

# float32 constants: a float64 one would widen the arithmetic and halve the SIMD width
_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693145751953125)   # ln 2 split so that n * _LN2_HI is exact for |n| < 2^10
_LN2_LO = _F(1.4286068203094173e-06)
_POW2 = np.array([2.0 ** k for k in range(-126, 1)], dtype=np.float32)  # 2^n for n in [-126, 0]
_SQRT_HALF = _F(0.7071067811865476)
_EXP_C = tuple(_F(1.0 / c) for c in (1, 1, 2, 6, 24, 120, 720, 5040))  # Taylor coefficients of e^f
# Abramowitz & Stegun 7.1.28: erf z = 1 - (1 + a1 z + ... + a6 z^6)^-16 for z >= 0, |error| <= 3e-7
_ERF_A = tuple(_F(c) for c in (0.0705230784, 0.0422820123, 0.0092705272, 0.0001520143, 0.0002765672, 0.0000430638))
_ONE, _HALF, _ZERO = _F(1.0), _F(0.5), _F(0.0)


@njit(inline="always", error_model="numpy")
def _exp_nonpositive(x):
    """e^x for x <= 0 (x clamped at -87, where float32 leaves normal numbers)."""
    x = max(x, _F(-87.0))
    n = np.floor(x * _LOG2E + _HALF)
    f = (x - n * _LN2_HI) - n * _LN2_LO  # |f| <= ln2 / 2
    c = _EXP_C
    p = c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * (c[5] + f * (c[6] + f * c[7]))))))
    return p * _POW2[np.int32(n) + 126]


@njit(inline="always", error_model="numpy")
def _gelu(x):
    """x Φ(x) = (x + |x| erf(|x|/√2)) / 2, erf by A&S 7.1.28: within 1e-6 of exact GELU, like torch's float32 one.
    No exp and no branch, so that loops over it vectorise."""
    ax = abs(x)
    z = ax * _SQRT_HALF
    a = _ERF_A
    p = _ONE + z * (a[0] + z * (a[1] + z * (a[2] + z * (a[3] + z * (a[4] + z * a[5])))))
    p *= p
    p *= p
    p *= p
    p *= p  # p^16
    return _HALF * (x + ax * (_ONE - _ONE / p))


@njit(inline="always", fastmath=True, error_model="numpy")
def _normalise(x, xc, r, eps):
    """Layer norm without affine, row by row: centred rows xc [R, D] and 1/std r [R]."""
    rows, d = x.shape
    inv_d = _ONE / _F(d)
    for i in range(rows):
        mean = _ZERO
        for k in range(d):
            mean += x[i, k]
        mean *= inv_d
        var = _ZERO
        for k in range(d):
            c = x[i, k] - mean
            xc[i, k] = c
            var += c * c
        r[i] = _ONE / np.sqrt(var * inv_d + eps)


@njit(inline="always", error_model="numpy")
def _scaled_gelu(h, r, bias):
    """h[i, j] = GELU(h[i, j] r[i] + bias[j]): a folded layer norm's scale, the bias, the activation."""
    for i in range(h.shape[0]):
        ri = r[i]
        for j in range(h.shape[1]):
            h[i, j] = _gelu(h[i, j] * ri + bias[j])


@njit(inline="always", fastmath=True, error_model="numpy")
def _softmax_heads(sc_t, r, bias, heads, top, total):
    """sc_t[:, i] = softmax per head of (sc_t[:, i] r[i] + bias), in place, for scores stored token-major
    [S, R] so that every step runs along the rows (Gaussians) in SIMD; heads split S evenly.
    top, total: [R] scratch."""
    s, rows = sc_t.shape
    tokens = s // heads
    for t in range(s):
        bt = bias[t]
        for i in range(rows):
            sc_t[t, i] = sc_t[t, i] * r[i] + bt
    for hd in range(heads):
        t0 = hd * tokens
        for i in range(rows):
            top[i] = sc_t[t0, i]
            total[i] = _ZERO
        for t in range(t0 + 1, t0 + tokens):
            for i in range(rows):
                top[i] = max(top[i], sc_t[t, i])
        for t in range(t0, t0 + tokens):
            for i in range(rows):
                e = _exp_nonpositive(sc_t[t, i] - top[i])
                sc_t[t, i] = e
                total[i] += e
        for i in range(rows):
            total[i] = _ONE / total[i]
        for t in range(t0, t0 + tokens):
            for i in range(rows):
                sc_t[t, i] *= total[i]


@njit(inline="always", error_model="numpy")
def _add_bias_into(x, y, bias):
    """x += y + bias (rows of y, bias per column)."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] += y[i, j] + bias[j]


@njit(parallel=True, cache=True, error_model="numpy")
def egd_kernel(
    position_term,  # [N, H1] first-layer output of the position encoding plus its bias (H1 = 2d)
    delta_weight,   # [12, H1]
    frame_term,     # [B, H1] blink and camera part of the first layer
    delta,          # [B, N, 12] ΔM features
    w_second, b_second,          # [H1, d], [d]
    scores_w_t, scores_b,        # [B, L, S, d], [B, L, S]  (S = heads * tokens)
    values, out_b,               # [B, L, S, d], [L, d]
    ff_w1, ff_b1, ff_w2, ff_b2,  # [L, d, F], [L, F], [L, F, d], [L, d]
    head_w, head_b,              # [d, O], [O]
    heads,                       # attention heads (S = heads * tokens)
    eps,                         # layer-norm epsilon (float32)
    out,                         # [B, N, O]
):
    """EGD's heads' output for every Gaussian of every frame, parallel over items of ITEM_ROWS Gaussians."""
    batch, n = delta.shape[0], delta.shape[1]
    h1, d = w_second.shape
    n_layers, s = scores_w_t.shape[1], scores_w_t.shape[2]
    f_dim, o_dim = ff_w1.shape[2], head_w.shape[1]
    items_per_frame = (n + ITEM_ROWS - 1) // ITEM_ROWS
    for item in prange(batch * items_per_frame):
        b = item // items_per_frame
        lo = (item % items_per_frame) * ITEM_ROWS
        hi = min(n, lo + ITEM_ROWS)
        rows = hi - lo
        first = np.empty((rows, h1), dtype=np.float32)
        x = np.empty((rows, d), dtype=np.float32)
        xc = np.empty((rows, d), dtype=np.float32)
        r = np.empty(rows, dtype=np.float32)
        sc_t = np.empty((s, rows), dtype=np.float32)
        top = np.empty(rows, dtype=np.float32)
        total = np.empty(rows, dtype=np.float32)
        y = np.empty((rows, d), dtype=np.float32)
        hidden = np.empty((rows, f_dim), dtype=np.float32)
        res = np.empty((rows, o_dim), dtype=np.float32)
        # query MLP: GELU(ΔM W + position_term + frame_term) W2 + b2
        np.dot(delta[b, lo:hi], delta_weight, first)
        for i in range(rows):
            for j in range(h1):
                first[i, j] = _gelu(first[i, j] + position_term[lo + i, j] + frame_term[b, j])
        np.dot(first, w_second, x)
        for i in range(rows):
            for j in range(d):
                x[i, j] += b_second[j]
        for layer in range(n_layers):
            # cross-attention: probs = softmax(n(x) A + bias) per head; x += probs V + b
            _normalise(x, xc, r, eps)
            np.dot(scores_w_t[b, layer], xc.T, sc_t)  # [S, R]: the softmax runs along the rows
            _softmax_heads(sc_t, r, scores_b[b, layer], heads, top, total)
            np.dot(sc_t.T, values[b, layer], y)
            _add_bias_into(x, y, out_b[layer])
            # feed-forward: x += GELU(n(x) W1 + b1) W2 + b2
            _normalise(x, xc, r, eps)
            np.dot(xc, ff_w1[layer], hidden)
            _scaled_gelu(hidden, r, ff_b1[layer])
            np.dot(hidden, ff_w2[layer], y)
            _add_bias_into(x, y, ff_b2[layer])
        # heads: n(x) Wh + bh
        _normalise(x, xc, r, eps)
        np.dot(xc, head_w, res)
        for i in range(rows):
            ri = r[i]
            for j in range(o_dim):
                out[b, lo + i, j] = res[i, j] * ri + head_b[j]


def egd_residual_cpu(
    prepared,        # egd_fast.PreparedEGD
    folded,          # egd_fast.FoldedFrames of the same B frames
    delta_features,  # [B, N, 12] float32 CPU tensor
):
    """EGD's heads' output [B, N, 14] (a CPU tensor): `egd_fast.egd_residual`'s CPU kernel."""
    import torch

    def f32(t):
        if isinstance(t, np.ndarray):
            return np.ascontiguousarray(t, dtype=np.float32)
        return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())

    def stack(parts):
        return np.ascontiguousarray(np.stack([f32(p) for p in parts]))

    b, n = delta_features.shape[:2]
    scores_w_t = stack([stack([a.scores_weight.T for a in frame]) for frame in folded.attention])
    scores_b = stack([stack([a.scores_bias for a in frame]) for frame in folded.attention])
    values = stack([stack([a.values for a in frame]) for frame in folded.attention])
    out_b = stack([a.out_bias for a in folded.attention[0]])
    w1, b1, w2, b2 = (stack(parts) for parts in zip(*folded.ff))
    out = np.empty((b, n, folded.head_b.shape[0]), dtype=np.float32)
    with PARALLEL_LOCK:
        egd_kernel(f32(prepared.position_term), f32(prepared.delta_weight), f32(folded.frame_term), f32(delta_features),
                   f32(folded.w_second), f32(folded.b_second), scores_w_t, scores_b, values, out_b, w1, b1, w2, b2,
                   f32(folded.head_w), f32(folded.head_b), folded.attention[0][0].heads, np.float32(folded.eps), out)
    return torch.from_numpy(out)

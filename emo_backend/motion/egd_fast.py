"""EGD inference, restructured for speed: the same function as `EGD.forward`, fewer and cache-sized ops.

EGD runs a small network on every Gaussian of every frame (~36k × 75 inputs),
so in eager torch its cost is memory traffic and op count, not arithmetic.
`prepare_egd` folds what is constant into the weights once, `fold_frames`
folds each frame's tokens, and `egd_residual` evaluates the folded network:
on the CPU with the numba kernel of `motion.egd_cpu` (one fused pass per
block of Gaussians), elsewhere in torch, in tiles that stay in the cache.
The folds:

* the query MLP's first layer is split by input: the position-encoding part
  is constant per Gaussian (precomputed [N, 2d] with the bias), blink and
  camera are constant per frame (one [2d] vector), and only ΔM's 12 inputs
  are multiplied per Gaussian;
* with only T+3 tokens per frame, each block's query projection is folded
  into the keys (scores = LN(x) · (W_q^T K^T)) and its output projection into
  the values (out = softmax · (V W_proj^T)): two small matmuls replace the
  q/proj linears and the attention kernel;
* layer-norm affines are folded into the linear layer that follows them, and
  the normalisation itself is applied to the matmul's output (n(x) W = r·(x−μ)W);
* (torch path) the softmax over the few tokens skips its per-row max when a
  fixed per-head shift provably keeps exp() in range (torch's softmax is slow
  for rows of ~12); the numba kernel takes each row's max, which is cheap there.

Every fold is exact algebra; results equal `EGD.forward` up to float rounding
(tests pin them). Inference only (no gradients); any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from emo_backend.motion.egd import EGD, Residual
from emo_backend.motion.encodings import sinusoidal

CPU_TILE = 4096  # Gaussians per tile on the CPU: a tile's [tile, 2d] activations stay in L2


@dataclass(frozen=True)
class PreparedEGD:
    egd: EGD
    position_term: Tensor   # [N, 2d] first-layer output of the position encoding, plus its bias
    delta_weight: Tensor    # [12, 2d] first-layer weights of ΔM's features (input scaling folded in)


@torch.no_grad()
def prepare_egd(egd: EGD, canonical_means: Tensor) -> PreparedEGD:
    """Precompute EGD's per-Gaussian constants for `canonical_means` [N, 3] (μ0 of the avatar it serves)."""
    cfg = egd.cfg
    first = egd.query[0]
    w = first.weight  # [2d, 75]: columns ΔM (12) | position (6L) | blink (1 + 2L') | camera (d)
    n_pos = 3 * 2 * cfg.position_freqs
    position = sinusoidal(canonical_means.to(w) * cfg.head_scale, cfg.position_freqs)  # [N, 6L]
    position_term = torch.addmm(first.bias, position, w[:, 12:12 + n_pos].T)
    delta_weight = (w[:, :12] * (cfg.head_scale * 10)).T.contiguous()
    return PreparedEGD(egd, position_term.contiguous(), delta_weight)


SOFTMAX_SPAN = 60.0  # a fixed shift is used when a head's scores provably span less than this (exp stays normal)


@dataclass(frozen=True)
class _Attention:
    """One block's attention folded for one frame's tokens."""

    scores_weight: Tensor  # [d, hT']: n(x) @ it (+ scores_bias) = the scores of every head
    scores_bias: Tensor    # [hT'] (minus the fixed shift when `fixed_shift`)
    values: Tensor         # [hT', d] per-head values times the output projection
    out_bias: Tensor       # [d]
    heads: int
    fixed_shift: bool      # scores_bias is shifted so exp() cannot overflow or vanish: no per-row max needed


def _block_attention(block, tokens: Tensor) -> _Attention:
    """Fold one block's q, k, v and output projection for one frame's tokens [T', d]."""
    d = tokens.shape[-1]
    h = block.heads
    dh = d // h
    kv = block.kv(block.norm_kv(tokens)).view(-1, 2, h, dh)  # [T', 2, h, dh]
    k, v = kv[:, 0].transpose(0, 1), kv[:, 1].transpose(0, 1)  # [h, T', dh]
    scale = 1.0 / math.sqrt(dh)
    wq = block.q.weight.view(h, dh, d)  # rows of head i
    bq = block.q.bias.view(h, dh)
    # scores_i = (LN(x) W_q,i^T + b_q,i) k_i^T * scale, LN(x) = n(x) * gamma + beta
    a = torch.einsum("hed,hte->dht", wq, k) * scale  # [d, h, T']
    bias = torch.einsum("he,hte->ht", bq, k) * scale  # [h, T']
    gamma, beta = block.norm_q.weight, block.norm_q.bias
    bias = bias + torch.einsum("d,dht->ht", beta, a)
    a = gamma[:, None, None] * a
    # out = sum_i softmax_i v_i W_proj[:, i]^T + b_proj
    wp = block.proj.weight.view(d, h, dh)
    vp = torch.einsum("hte,dhe->htd", v, wp)  # [h, T', d]
    # |n(x)| <= sqrt(d), so score j lies within bias_j +- sqrt(d) |a_j|: a fixed per-head shift to the top of
    # that range keeps exp() <= 1, and when the range is narrow the largest term stays far above underflow.
    reach = math.sqrt(d) * a.norm(dim=0)  # [h, T']
    top = (bias + reach).amax(-1, keepdim=True)  # [h, 1]
    fixed = bool(((top[:, 0] - (bias - reach).amax(-1)) < SOFTMAX_SPAN).all())
    return _Attention(a.reshape(d, -1), (bias - top if fixed else bias).reshape(-1), vp.reshape(-1, d),
                      block.proj.bias, h, fixed)


def _normalise(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """LayerNorm without affine as (x - mean, 1/std): n(x) @ W = (xc @ W) * r, cheaper than F.layer_norm here."""
    mean = x.new_full((x.shape[-1], 1), 1.0 / x.shape[-1])  # row means as a matrix-vector product (faster here)
    xc = x - x @ mean
    return xc, (xc * xc @ mean).add_(eps).rsqrt_()


def _attend(att: _Attention, xc: Tensor, r: Tensor) -> Tensor:
    """The attention output [tile, d] (before the residual add) for normalised queries (xc, r)."""
    rows = xc.shape[0]
    scores = torch.addcmul(att.scores_bias, xc @ att.scores_weight, r)  # [tile, hT']
    h = att.heads
    if att.fixed_shift:
        e = scores.exp_().view(rows, h, -1)
        probs = e.mul_(e.sum(-1, keepdim=True).reciprocal_()).view(rows, -1)
    else:
        probs = _softmax_small(scores.view(rows, h, -1)).view(rows, -1)
    return torch.addmm(att.out_bias, probs, att.values)


def _softmax_small(scores: Tensor) -> Tensor:
    """softmax over a short last dim [..., T']: torch's kernel is slow for T' ~ 12 on the CPU."""
    e = (scores - scores.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def _ln_folded(norm: torch.nn.LayerNorm, linear: torch.nn.Linear) -> tuple[Tensor, Tensor]:
    """linear(norm(x)) = n(x) @ W' + b' with the norm's affine folded in -> (W' [d, out], b' [out])."""
    w = linear.weight * norm.weight[None, :]
    b = linear.bias + linear.weight @ norm.bias
    return w.T.contiguous(), b


@dataclass(frozen=True)
class FoldedFrames:
    """EGD folded for a batch of frames: everything but the per-Gaussian evaluation."""

    frame_term: Tensor             # [B, 2d] blink and camera part of the query's first layer
    w_second: Tensor               # [2d, d] the query's second layer (x @ it + b_second)
    b_second: Tensor               # [d]
    attention: list[list[_Attention]]  # [B][layers] each frame's folded attention
    ff: list[tuple[Tensor, Tensor, Tensor, Tensor]]  # per layer (W1 [d, F], b1, W2 [F, d], b2), LN folded into W1
    head_w: Tensor                 # [d, O] LN folded
    head_b: Tensor                 # [O]
    eps: float                     # every layer norm's epsilon


@torch.no_grad()
def fold_frames(
    prepared: PreparedEGD,
    blink: Tensor,                 # [B]
    audio_window: Tensor,          # [B, T, Da]
    weights: Tensor,               # [B, 8]
    intensity: Tensor,             # [B]
    camera: Tensor | None = None,  # [B] int camera index
) -> FoldedFrames:
    """Fold `prepared.egd` with each frame's tokens (see the module's docstring)."""
    egd = prepared.egd
    cfg = egd.cfg
    b = blink.shape[0]
    if camera is None:
        camera = torch.zeros(b, dtype=torch.long, device=blink.device)
    first, second = egd.query[0], egd.query[2]
    w_first = first.weight
    n_pos = 3 * 2 * cfg.position_freqs
    n_blink = 1 + 2 * cfg.blink_freqs
    blink_code = torch.cat([blink[:, None], sinusoidal(blink[:, None], cfg.blink_freqs)], -1)  # [B, 1 + 2L]
    frame_term = (blink_code @ w_first[:, 12 + n_pos:12 + n_pos + n_blink].T
                  + egd.camera(camera) @ w_first[:, 12 + n_pos + n_blink:].T)  # [B, 2d]

    t = audio_window.shape[1]
    audio_tokens = egd.audio(audio_window) + egd.audio_time[:t]
    emotion_token, intensity_token = egd.emotion(weights, intensity)
    tokens = torch.cat([audio_tokens, emotion_token[:, None], intensity_token[:, None], egd.null.expand(b, -1, -1)], 1)
    ff = [(*_ln_folded(blk.norm_ff, blk.ff[0]), blk.ff[2].weight.T.contiguous(), blk.ff[2].bias) for blk in egd.blocks]
    head_w, head_b = _ln_folded(egd.norm, egd.head)
    attention = [[_block_attention(blk, tokens[f]) for blk in egd.blocks] for f in range(b)]
    return FoldedFrames(frame_term, second.weight.T.contiguous(), second.bias, attention, ff, head_w, head_b,
                        egd.norm.eps)  # every norm of EGD is built alike


def _residual(out: Tensor) -> Residual:
    """Split the heads' output [B, N, 14] into the residual's parts."""
    return Residual(out[..., :4], out[..., 4:7], out[..., 7:10], out[..., 10], out[..., 11:14] * 1e-3)


@torch.no_grad()
def egd_residual(
    prepared: PreparedEGD,
    delta_features: Tensor,        # [B, N, 12] from delta_mesh_features
    blink: Tensor,                 # [B]
    audio_window: Tensor,          # [B, T, Da]
    weights: Tensor,               # [B, 8]
    intensity: Tensor,             # [B]
    camera: Tensor | None = None,  # [B] int camera index
    tile: int | None = None,       # Gaussians per tile of the torch path (default: all on CUDA, CPU_TILE on the CPU)
    kernel: str = "auto",          # "numba" (CPU only), "torch", or "auto": numba on the CPU, torch elsewhere
) -> Residual:
    """`prepared.egd(delta_features, canonical_means, ...)` for inference; same result."""
    folded = fold_frames(prepared, blink, audio_window, weights, intensity, camera)
    device = delta_features.device
    if kernel == "auto":
        kernel = "numba" if device.type == "cpu" and delta_features.dtype == torch.float32 else "torch"
    if kernel == "numba":
        from emo_backend.motion.egd_cpu import egd_residual_cpu

        return _residual(egd_residual_cpu(prepared, folded, delta_features))
    if kernel != "torch":
        raise ValueError(f"unknown EGD kernel {kernel!r}: use 'auto', 'numba' or 'torch'")
    b, n = delta_features.shape[:2]
    tile = tile or (n if device.type == "cuda" else CPU_TILE)
    out = torch.empty(b, n, folded.head_b.shape[0], dtype=delta_features.dtype, device=device)
    for f in range(b):
        for lo in range(0, n, tile):
            hi = min(n, lo + tile)
            x = torch.addmm(prepared.position_term[lo:hi], delta_features[f, lo:hi], prepared.delta_weight)
            x += folded.frame_term[f]
            x = torch.addmm(folded.b_second, F.gelu(x), folded.w_second)  # [tile, d]
            for att, (w1, b1, w2, b2) in zip(folded.attention[f], folded.ff):
                x = x + _attend(att, *_normalise(x, folded.eps))
                xc, r = _normalise(x, folded.eps)
                x = x + torch.addmm(b2, F.gelu(torch.addcmul(b1, xc @ w1, r)), w2)
            xc, r = _normalise(x, folded.eps)
            torch.addcmul(folded.head_b, xc @ folded.head_w, r, out=out[f, lo:hi])
    return _residual(out)

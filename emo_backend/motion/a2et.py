"""A2ET: audio features + emotion -> expression coefficients and jaw/neck pose per frame.

A transformer over time. Every block sees the audio through local self-
attention (each frame attends to `window` frames either side) and the emotion
through adaptive layer norm (scale and shift from the emotion and intensity
tokens), so the same audio can be spoken with any emotion mix at any
intensity. There is no absolute position encoding (a depthwise convolution
gives order instead), so the network is shift-equivariant and a long clip
can be run in chunks with margins of one receptive field and give exactly
the same result as running it whole (`predict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emo_backend.motion.encodings import EmotionEncoder


@dataclass(frozen=True)
class A2ETConfig:
    audio_dim: int                 # per-frame audio feature size (log-mel context or encoder hidden size)
    num_expressions: int           # E, the head model's expression bases
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    window: int = 8                # frames visible either side in each block's self-attention
    conv_kernel: int = 5           # depthwise positional convolution
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def receptive_field(self) -> int:
        """Frames either side that can influence one output frame."""
        return self.num_layers * self.window + self.conv_kernel // 2


class Motion(NamedTuple):
    expression: Tensor  # [B, F, E]
    jaw: Tensor         # [B, F, 3] axis-angle
    neck: Tensor        # [B, F, 3] axis-angle


class _Block(nn.Module):
    """Pre-norm transformer block with adaptive layer norm from the emotion condition."""

    def __init__(self, cfg: A2ETConfig):
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.num_heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(4 * d, d))
        self.modulation = nn.Linear(d, 4 * d)  # scale/shift for both norms
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        """x [B, F, d], cond [B, F, d], mask [F, F] bool (True = may attend)."""
        s1, b1, s2, b2 = self.modulation(cond).chunk(4, -1)
        h = self.norm1(x) * (1 + s1) + b1
        batch, frames, d = h.shape
        q, k, v = self.qkv(h).view(batch, frames, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0)
        x = x + self.dropout(self.proj(attn.transpose(1, 2).reshape(batch, frames, d)))
        h = self.norm2(x) * (1 + s2) + b2
        return x + self.dropout(self.ff(h))


class A2ET(nn.Module):
    """See the module docstring. Emotion enters as continuous weights and intensity, never a class index."""

    def __init__(self, cfg: A2ETConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        # Feature normalisation fitted on the training set; saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(cfg.audio_dim))
        self.register_buffer("feature_std", torch.ones(cfg.audio_dim))
        self.audio_in = nn.Sequential(nn.Linear(cfg.audio_dim, d), nn.GELU(), nn.Linear(d, d))
        self.position = nn.Conv1d(d, d, cfg.conv_kernel, padding=cfg.conv_kernel // 2, groups=d)
        self.emotion = EmotionEncoder(d)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.num_expressions + 6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def local_mask(self, frames: int, device) -> Tensor:
        idx = torch.arange(frames, device=device)
        return (idx[:, None] - idx[None, :]).abs() <= self.cfg.window

    def forward(self, audio: Tensor, weights: Tensor, intensity: Tensor) -> Motion:
        """audio [B, F, Da], weights [B, F, 8], intensity [B, F] -> Motion."""
        x = self.audio_in((audio - self.feature_mean) / self.feature_std)
        # Zero padding at the clip ends; the mask below keeps attention inside the clip.
        x = x + self.position(x.transpose(1, 2)).transpose(1, 2)
        emotion_token, intensity_token = self.emotion(weights, intensity)
        cond = emotion_token + intensity_token
        # The condition enters twice: added to every frame's input (a direct path the emotion's own action
        # units can learn fast) and through adaptive norms in every block (how the emotion shapes speech).
        x = x + cond
        mask = self.local_mask(x.shape[1], x.device)
        for block in self.blocks:
            x = block(x, cond, mask)
        out = self.head(self.norm(x))
        e = self.cfg.num_expressions
        return Motion(out[..., :e], out[..., e : e + 3], out[..., e + 3 : e + 6])

    @torch.no_grad()
    def predict(self, audio: Tensor, weights: Tensor, intensity: Tensor, chunk: int = 512) -> Motion:
        """Inference on one clip of any length in bounded memory: audio [F, Da], weights [F, 8], intensity [F].

        Chunks overlap by the receptive field, so the result equals a single
        forward pass over the whole clip (up to float rounding).
        """
        frames = audio.shape[0]
        margin = self.cfg.receptive_field
        pieces: list[Motion] = []
        for start in range(0, frames, chunk):
            lo, hi = max(0, start - margin), min(frames, start + chunk + margin)
            out = self(audio[None, lo:hi], weights[None, lo:hi], intensity[None, lo:hi])
            keep = slice(start - lo, start - lo + min(chunk, frames - start))
            pieces.append(Motion(*(t[0, keep] for t in out)))
        return Motion(*(torch.cat(parts, 0) for parts in zip(*pieces)))

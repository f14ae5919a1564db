"""Continuous encodings shared by A2ET and EGD.

Emotion and intensity enter both networks as continuous encodings (never a
class index), so any mix of the eight categories at any intensity is a valid
input, not only MEAD's three levels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal(x: Tensor, num_freqs: int, max_freq_log2: float | None = None) -> Tensor:
    """NeRF-style encoding. x [..., C] -> [..., C * 2 * num_freqs] (sin and cos at octave frequencies)."""
    top = num_freqs - 1 if max_freq_log2 is None else max_freq_log2
    freqs = 2.0 ** torch.linspace(0.0, top, num_freqs, device=x.device, dtype=x.dtype) * math.pi
    angles = x[..., None] * freqs  # [..., C, L]
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


def time_encoding(num_frames: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """Transformer positional encoding over frames. -> [F, dim]"""
    position = torch.arange(num_frames, device=device, dtype=dtype)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=dtype) * (-math.log(10000.0) / dim))
    enc = torch.zeros(num_frames, dim, device=device, dtype=dtype)
    enc[:, 0::2] = torch.sin(position * div)
    enc[:, 1::2] = torch.cos(position * div[: dim // 2])
    return enc


class EmotionEncoder(nn.Module):
    """weights [..., 8] and intensity [...] -> emotion token [..., d] and intensity token [..., d].

    Both tokens see the emotion as per-category amounts (intensity × weight of
    the seven non-neutral categories, `emotion.space.to_amounts`): intensity 0
    is neutral whatever the weights say, a mix is the sum of its parts, and
    amounts between MEAD's three levels lie on the line through them. The
    intensity token adds a sinusoidal code of the total amount.
    """

    def __init__(self, dim: int, num_emotions: int = 8, intensity_freqs: int = 4):
        super().__init__()
        self.emotion = nn.Linear(num_emotions - 1, dim)
        self.intensity = nn.Sequential(nn.Linear(1 + 2 * intensity_freqs, dim), nn.GELU(), nn.Linear(dim, dim))
        self.intensity_freqs = intensity_freqs

    def forward(self, weights: Tensor, intensity: Tensor) -> tuple[Tensor, Tensor]:
        from emo_backend.emotion.space import to_amounts

        amounts = to_amounts(weights, intensity).to(weights.dtype)  # [..., 7]
        i = amounts.sum(-1, keepdim=True).clamp(max=1.0)
        code = torch.cat([i, sinusoidal(i, self.intensity_freqs, max_freq_log2=self.intensity_freqs - 2)], -1)
        return self.emotion(amounts), self.intensity(code)

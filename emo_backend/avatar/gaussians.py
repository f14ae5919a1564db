"""A set of 3D Gaussians in raw (optimisable) parameters, and the one place they are activated.

Raw parameters, DESIGN.md's convention: `means` [..., N, 3] metres, `quats`
[..., N, 4] wxyz (not necessarily unit), `log_scales` [..., N, 3],
`opacity_logits` [..., N], `colors` [..., N, 3] RGB (display-referred, clamped
only when written). The leading `...` is an optional frame batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass
class Gaussians:
    means: Tensor           # [..., N, 3]
    quats: Tensor           # [..., N, 4] wxyz
    log_scales: Tensor      # [..., N, 3]
    opacity_logits: Tensor  # [..., N]
    colors: Tensor          # [..., N, 3]

    @property
    def count(self) -> int:
        return int(self.means.shape[-2])

    def frame(self, index: int) -> "Gaussians":
        """One frame of a batched set."""
        return Gaussians(*(t[index] for t in (self.means, self.quats, self.log_scales, self.opacity_logits, self.colors)))


class ActivatedGaussians(NamedTuple):
    """What the renderers take (gsplat's meanings): unit quats, linear scales, opacities in [0, 1]."""

    means: Tensor      # [..., N, 3]
    quats: Tensor      # [..., N, 4] unit wxyz
    scales: Tensor     # [..., N, 3]
    opacities: Tensor  # [..., N]
    colors: Tensor     # [..., N, 3]


def activate(g: Gaussians) -> ActivatedGaussians:
    """The only place raw parameters become render parameters."""
    return ActivatedGaussians(
        means=g.means,
        quats=torch.nn.functional.normalize(g.quats, dim=-1),
        scales=torch.exp(g.log_scales),
        opacities=torch.sigmoid(g.opacity_logits),
        colors=g.colors,
    )

"""The differentiable splatting renderer in pure torch (CPU training, tests).

Same cut-offs as gsplat and the numba renderer: projection from `projection.py`,
per 16x16 tile the Gaussians whose box touches it, front to back by depth,
alpha = min(0.999, o exp(-power)), skipped below 1/255, a pixel stops at the
Gaussian that would take T to 1e-4 or below. Each tile is evaluated densely
([pixels, Gaussians-in-tile]) and composited with an exclusive cumulative
product, so autograd flows to means, quats, scales, opacities and colours.
"""

from __future__ import annotations

import torch
from torch import Tensor

from emo_backend.render.constants import ALPHA_THRESHOLD, MAX_ALPHA, TILE_SIZE, TRANSMITTANCE_STOP
from emo_backend.render.projection import project_gaussians


def _composite(
    pix: Tensor,      # [P, 2] pixel centres
    means2d: Tensor,  # [G, 2] front to back
    conics: Tensor,   # [G, 3]
    opac: Tensor,     # [G]
    feats: Tensor,    # [G, C] colour channels + depth
) -> tuple[Tensor, Tensor]:
    """-> accumulated features [P, C], transmittance [P]."""
    d = means2d[None, :, :] - pix[:, None, :]                       # [P, G, 2]
    dx, dy = d[..., 0], d[..., 1]
    power = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy
    alpha = torch.clamp(opac * torch.exp(-power), max=MAX_ALPHA)
    hit = (power >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(hit, alpha, torch.zeros_like(alpha))
    one_minus = 1 - alpha
    T_after = torch.cumprod(one_minus, dim=1)
    T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], 1)
    # T is non-increasing, so once a Gaussian would end the pixel every later one fails this too.
    keep = hit & (T_before.detach() * one_minus.detach() > TRANSMITTANCE_STOP)
    weights = torch.where(keep, alpha * T_before, torch.zeros_like(alpha))
    acc = weights @ feats
    T_final = 1 - weights.sum(1)  # equals the product of (1 - alpha) over the kept Gaussians
    return acc, T_final


def rasterize_torch(
    means: Tensor,      # [N, 3]
    quats: Tensor,      # [N, 4] wxyz
    scales: Tensor,     # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,     # [N, 3]
    viewmat: Tensor,    # [4, 4]
    K: Tensor,          # [3, 3]
    width: int,
    height: int,
    background: Tensor | None = None,  # [3]
) -> tuple[Tensor, Tensor, Tensor]:
    """-> rgb [H, W, 3], alpha [H, W, 1], depth [H, W, 1], in means' dtype, differentiable."""
    dtype, device = means.dtype, means.device
    proj = project_gaussians(means, quats, scales, opacities, viewmat, K, width, height)
    visible = (proj.radii > 0).any(-1).nonzero()[:, 0]
    order = visible[torch.sort(proj.depths.detach()[visible], stable=True).indices]  # front to back
    m2d = proj.means2d[order]
    con = proj.conics[order]
    opa = opacities.to(dtype)[order]
    feats = torch.cat([colors.to(dtype)[order], proj.depths[order, None]], 1)
    with torch.no_grad():
        r = proj.radii[order].to(dtype)
        lo = torch.floor((m2d.detach() - r) / TILE_SIZE)   # tile rectangle [lo, hi), as gsplat's isect_tiles
        hi = torch.ceil((m2d.detach() + r) / TILE_SIZE)

    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    offs = torch.arange(TILE_SIZE, dtype=dtype, device=device) + 0.5
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    tile_pix = torch.stack([ox.reshape(-1), oy.reshape(-1)], -1)   # [256, 2]
    channels = feats.shape[1]
    empty_acc = torch.zeros(TILE_SIZE * TILE_SIZE, channels, dtype=dtype, device=device)
    empty_T = torch.ones(TILE_SIZE * TILE_SIZE, dtype=dtype, device=device)
    tiles_acc, tiles_T = [], []
    for ty in range(tiles_y):
        in_row = (lo[:, 1] <= ty) & (hi[:, 1] > ty)
        for tx in range(tiles_x):
            sel = (in_row & (lo[:, 0] <= tx) & (hi[:, 0] > tx)).nonzero()[:, 0]
            if len(sel) == 0:
                tiles_acc.append(empty_acc)
                tiles_T.append(empty_T)
                continue
            pix = tile_pix + torch.tensor([tx * TILE_SIZE, ty * TILE_SIZE], dtype=dtype, device=device)
            acc, T = _composite(pix, m2d[sel], con[sel], opa[sel], feats[sel])
            tiles_acc.append(acc)
            tiles_T.append(T)

    def assemble(parts: list[Tensor], c: int) -> Tensor:
        grid = torch.stack(parts).reshape(tiles_y, tiles_x, TILE_SIZE, TILE_SIZE, c)
        return grid.permute(0, 2, 1, 3, 4).reshape(tiles_y * TILE_SIZE, tiles_x * TILE_SIZE, c)[:height, :width]

    acc = assemble(tiles_acc, channels)
    T = assemble(tiles_T, 1)
    alpha = 1 - T
    rgb = acc[..., :3]
    if background is not None:
        rgb = rgb + T * background.to(dtype=dtype, device=device)
    depth = acc[..., 3:] / alpha.clamp(min=1e-10)
    return rgb, alpha, depth

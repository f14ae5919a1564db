"""3DGS adaptive density control for Gaussians bound to a mesh, over plain tensors and an Adam optimizer.

Per 3DGS (Kerbl et al. 2023, §5.2): accumulate the view-space positional
gradient norm of every Gaussian while it is visible; every few hundred steps,
Gaussians whose average gradient exceeds a threshold are

* cloned when small (max scale <= percent_dense · extent): an exact copy, and
  the next optimizer steps pull the two apart;
* split when large: replaced by `split_count` children sampled from the parent's
  own Gaussian, scales divided by 0.8 · split_count.

Then Gaussians that are almost transparent, or huge in the world or on screen,
are pruned. Adapted to bound Gaussians (GaussianAvatar's fields):

* children keep the parent's triangle (`face_ids`) and part; a split child's
  sampled position is re-expressed on that same triangle of the neutral mesh: its
  anchor `bary` is the projection of the sample into the triangle (clamped inside)
  and `offsets` hold the rest, so the child sits exactly where it was sampled;
* every other per-Gaussian tensor — colours, opacity, the blendshape deltas
  ΔB_k with their Gaussian axis elsewhere ([E, N, ...]) — is duplicated along;
* Adam's moments are carried over for surviving Gaussians and start at zero
  for new ones; everything else in the optimizer is untouched.

The parameters are a dict of name -> nn.Parameter, each alone in one param group
of the optimizer, so this works with whatever dataclass holds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from emo_backend.avatar.binding import bound_positions, triangle_frames
from emo_backend.avatar.rotations import quat_to_matrix

SPLIT_SCALE_FACTOR = 0.8  # 3DGS: children get scale / (0.8 · N)


@dataclass(frozen=True)
class DensifyConfig:
    grad_threshold: float = 2e-4      # average view-space gradient norm (NDC units, as 3DGS) that triggers densifying
    percent_dense: float = 0.01       # clone below, split above this fraction of the scene extent (max scale)
    split_count: int = 2
    min_opacity: float = 0.005        # prune below
    max_world_scale: float = 0.1      # prune if max scale > this fraction of the extent (3DGS's big_points_ws)
    max_screen_radius: float | None = None  # prune if the largest radius seen on screen exceeds this (pixels)


class DensityStats:
    """Running view-space gradient statistics per Gaussian: sum of norms, visible count, max radius (pixels)."""

    def __init__(self, grad_sum: Tensor, count: Tensor, max_radius: Tensor):
        self.grad_sum, self.count, self.max_radius = grad_sum, count, max_radius

    @classmethod
    def zeros(cls, n: int, device: torch.device | str = "cpu") -> "DensityStats":
        z = torch.zeros(n, device=device)
        return cls(z.clone(), z.clone(), z.clone())

    def add(self, screen_grads: Tensor, visible: Tensor, radii: Tensor) -> None:
        """screen_grads [N, 2] (NDC units), visible [N] bool, radii [N] pixels, from one rendered view."""
        norms = screen_grads.detach().norm(dim=-1)
        self.grad_sum += torch.where(visible, norms, torch.zeros_like(norms))
        self.count += visible.to(self.count.dtype)
        self.max_radius = torch.where(visible, torch.maximum(self.max_radius, radii.to(self.max_radius)), self.max_radius)

    def average(self) -> Tensor:
        return self.grad_sum / self.count.clamp_min(1)

    def as_dict(self) -> dict[str, Tensor]:
        return {"grad_sum": self.grad_sum, "count": self.count, "max_radius": self.max_radius}

    @classmethod
    def from_dict(cls, d: dict[str, Tensor]) -> "DensityStats":
        return cls(d["grad_sum"], d["count"], d["max_radius"])


def screen_space_gradients(
    means_grad: Tensor,  # [N, 3] dLoss/dmean in world space (of the means that were rasterised)
    means: Tensor,       # [N, 3] world
    viewmat: Tensor,     # [4, 4]
    K: Tensor,           # [3, 3]
    width: int,
    height: int,
) -> Tensor:
    """dLoss/d(projected mean) [N, 2] in NDC units, recovered from the 3D mean gradient.

    Renderers that do not hand out their 2D means (ours takes world means) still
    give dL/dμ. Through the projection u = π(μ), dL/dμ_cam ≈ Pᵀ dL/du with P the
    2×3 Jacobian of π; we take the least-squares dL/du = (P Pᵀ)⁻¹ P dL/dμ_cam.
    This ignores the (smaller) part of dL/dμ that flows through the projected
    covariance, so it is an approximation of 3DGS's statistic, scaled like it
    (pixels × size/2, i.e. NDC).
    """
    R = viewmat[:3, :3].to(means)
    cam = means.detach() @ R.T + viewmat[:3, 3].to(means)
    g = means_grad @ R.T  # gradient in camera coordinates
    x, y, z = cam.unbind(-1)
    z = z.clamp_min(1e-6)
    fx, fy = K[0, 0].to(means), K[1, 1].to(means)
    zero = torch.zeros_like(z)
    P = torch.stack([fx / z, zero, -fx * x / z**2, zero, fy / z, -fy * y / z**2], -1).reshape(-1, 2, 3)
    PPt = P @ P.transpose(-1, -2)
    grad_px = torch.linalg.solve(PPt, (P @ g[..., None]))[..., 0]  # [N, 2] dL/d(pixel)
    return grad_px * torch.tensor([width / 2.0, height / 2.0], dtype=means.dtype, device=means.device)


def rebind_to_triangles(
    points: Tensor,    # [M, 3] positions on the neutral mesh's side of space
    face_ids: Tensor,  # [M] the triangle each point stays bound to
    vertices: Tensor,  # [V, 3] neutral mesh
    faces: Tensor,     # [F, 3]
) -> tuple[Tensor, Tensor]:
    """(bary [M, 3], offsets [M, 3]) binding `points` to their triangles; bound_positions gives the points back.

    The anchor is the point's projection into the triangle's plane, with
    barycentrics clamped into the triangle; the offset (in the triangle frame)
    holds whatever the clamp and the normal distance leave over.
    """
    tri = vertices[faces[face_ids]]  # [M, 3, 3]
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    d = points - v0
    d11, d12, d22 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    p1, p2 = (d * e1).sum(-1), (d * e2).sum(-1)
    det = (d11 * d22 - d12 * d12).clamp_min(1e-30)
    b1 = (d22 * p1 - d12 * p2) / det
    b2 = (d11 * p2 - d12 * p1) / det
    bary = torch.stack([1 - b1 - b2, b1, b2], -1).clamp_min(0)
    bary = bary / bary.sum(-1, keepdim=True).clamp_min(1e-12)
    anchor = (tri * bary[..., None]).sum(-2)
    frames = triangle_frames(vertices, faces)[face_ids]  # [M, 3, 3] columns t, b, n
    offsets = (frames.transpose(-1, -2) @ (points - anchor)[..., None])[..., 0]
    return bary, offsets


def _index_rows(t: Tensor, dim: int, index: Tensor) -> Tensor:
    return t.index_select(dim, index)


@dataclass
class DensifyResult:
    params: dict[str, nn.Parameter]
    buffers: dict[str, Tensor]
    stats: DensityStats
    cloned: int
    split: int
    pruned: int

    @property
    def count(self) -> int:
        return int(self.stats.count.shape[0])


def densify_and_prune(
    params: dict[str, nn.Parameter],      # per-Gaussian parameters (GaussianAvatar.optimisable() names)
    buffers: dict[str, Tensor],           # per-Gaussian non-optimised tensors: face_ids, bary, parts, ...
    optimizer: torch.optim.Optimizer,     # Adam-like: one param group per parameter in `params`
    stats: DensityStats,
    neutral_vertices: Tensor,             # [V, 3] the mesh B0 is bound to
    faces: Tensor,                        # [F, 3]
    extent: float,                        # scene size (metres) the thresholds are fractions of
    config: DensifyConfig = DensifyConfig(),
    gaussian_dims: dict[str, int] | None = None,  # name -> axis of the Gaussian index (default 0)
    generator: torch.Generator | None = None,
    densify: bool = True,
) -> DensifyResult:
    """Clone, split and prune; returns the new tensors (the optimizer is updated in place to hold them)."""
    dims = {name: 0 for name in (*params, *buffers)}
    dims.update(gaussian_dims or {})
    n = int(buffers["face_ids"].shape[0])
    device = buffers["face_ids"].device
    with torch.no_grad():
        scales = torch.exp(params["log_scales"]).amax(-1)
        grads = stats.average()
        if densify:
            hot = grads >= config.grad_threshold
            big = scales > config.percent_dense * extent
            clone_idx = (hot & ~big).nonzero()[:, 0]
            split_idx = (hot & big).nonzero()[:, 0]
        else:
            clone_idx = split_idx = torch.zeros(0, dtype=torch.long, device=device)
        split_mask = torch.zeros(n, dtype=torch.bool, device=device)
        split_mask[split_idx] = True
        keep_idx = (~split_mask).nonzero()[:, 0]
        children_idx = split_idx.repeat(config.split_count)  # parent of every split child
        source = torch.cat([keep_idx, clone_idx, children_idx])
        is_new = torch.cat([torch.zeros_like(keep_idx, dtype=torch.bool),
                            torch.ones(len(clone_idx) + len(children_idx), dtype=torch.bool, device=device)])
        child_rows = torch.arange(len(keep_idx) + len(clone_idx), len(source), device=device)

        new_values: dict[str, Tensor] = {}
        for name, t in {**params, **buffers}.items():
            new_values[name] = _index_rows(t.detach(), dims[name], source)

        if len(children_idx):
            # Sample each child in its parent's Gaussian (neutral avatar space), then re-bind it to the same triangle.
            parent_means = bound_positions(neutral_vertices, faces, buffers["face_ids"][children_idx],
                                           buffers["bary"][children_idx], params["offsets"].detach()[children_idx])
            parent_scales = torch.exp(params["log_scales"].detach()[children_idx])
            rot = quat_to_matrix(torch.nn.functional.normalize(params["quats"].detach()[children_idx], dim=-1))
            eps = torch.randn(parent_scales.shape, generator=generator, device="cpu").to(parent_scales)
            samples = parent_means + (rot @ (eps * parent_scales)[..., None])[..., 0]
            bary, offsets = rebind_to_triangles(samples, buffers["face_ids"][children_idx], neutral_vertices, faces)
            new_values["bary"][child_rows] = bary.to(new_values["bary"].dtype)
            new_values["offsets"][child_rows] = offsets.to(new_values["offsets"].dtype)
            new_values["log_scales"][child_rows] -= math.log(SPLIT_SCALE_FACTOR * config.split_count)

        # Prune (on the densified set): transparent, huge in the world, or huge on screen.
        opacity = torch.sigmoid(new_values["opacity_logits"])
        prune = opacity < config.min_opacity
        prune |= torch.exp(new_values["log_scales"]).amax(-1) > config.max_world_scale * extent
        if config.max_screen_radius is not None:
            radius = torch.cat([stats.max_radius[keep_idx], torch.zeros(len(source) - len(keep_idx), device=device)])
            prune |= radius > config.max_screen_radius
        survivors = (~prune).nonzero()[:, 0]
        source, is_new = source[survivors], is_new[survivors]
        for name in new_values:
            new_values[name] = _index_rows(new_values[name], dims[name], survivors)

    new_params = _swap_optimizer_tensors(optimizer, params, new_values, dims, source, is_new)
    new_buffers = {name: new_values[name] for name in buffers}
    return DensifyResult(
        params=new_params,
        buffers=new_buffers,
        stats=DensityStats.zeros(len(source), device=device),
        cloned=len(clone_idx),
        split=len(split_idx),
        pruned=int(prune.sum()),
    )


def prune_mask_only(
    params: dict[str, nn.Parameter],
    buffers: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    keep: Tensor,  # [N] bool
    gaussian_dims: dict[str, int] | None = None,
) -> tuple[dict[str, nn.Parameter], dict[str, Tensor]]:
    """Keep only the Gaussians where `keep` is true (optimizer state follows)."""
    dims = {name: 0 for name in (*params, *buffers)}
    dims.update(gaussian_dims or {})
    source = keep.nonzero()[:, 0]
    with torch.no_grad():
        values = {name: _index_rows(t.detach(), dims[name], source) for name, t in {**params, **buffers}.items()}
    new_params = _swap_optimizer_tensors(optimizer, params, values, dims, source, torch.zeros_like(source, dtype=torch.bool))
    return new_params, {name: values[name] for name in buffers}


def _swap_optimizer_tensors(
    optimizer: torch.optim.Optimizer,
    params: dict[str, nn.Parameter],
    new_values: dict[str, Tensor],
    dims: dict[str, int],
    source: Tensor,   # [M] index into the old Gaussians of every new one
    is_new: Tensor,   # [M] bool: created now (its Adam moments start at zero)
) -> dict[str, nn.Parameter]:
    """Replace each parameter by a new nn.Parameter and re-index its Adam moments the same way."""
    group_of = {}
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            group_of[id(p)] = (group, i)
    new_params: dict[str, nn.Parameter] = {}
    for name, old in params.items():
        new = nn.Parameter(new_values[name].contiguous(), requires_grad=old.requires_grad)
        new_params[name] = new
        if id(old) not in group_of:
            continue
        group, i = group_of[id(old)]
        state = optimizer.state.pop(old, None)
        group["params"][i] = new
        if state:
            moved = {}
            for key, value in state.items():
                if isinstance(value, Tensor) and value.shape == old.shape:
                    value = _index_rows(value, dims[name], source)
                    mask_shape = [1] * value.dim()
                    mask_shape[dims[name]] = -1
                    value = torch.where(is_new.view(mask_shape), torch.zeros_like(value), value)
                moved[key] = value
            optimizer.state[new] = moved
    return new_params

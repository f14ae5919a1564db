"""Initialise a Gaussian avatar from a head model, the way GaussianBlendshapes does.

* B0: Poisson-disk samples on the neutral mesh (per part, so the mouth interior
  gets its own, denser Gaussians), flat discs in the surface's tangent plane
  with tangent scales from the local sample spacing and a thin normal scale,
  opacity 0.95, colours from the head's appearance.
* ΔB_k: from the per-triangle deformation gradient F_k between the neutral
  and the k-th expression mesh (ψ_k = 1): position delta = barycentric vertex
  displacement + (F_k − I)·offset, rotation delta = the polar rotation of F_k
  (axis-angle), log-scale delta = log of F_k's stretch along each Gaussian
  axis (limited to ±log 2 per basis). Colour and opacity deltas start at zero; stage 1 training learns them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from emo_backend.avatar.binding import (
    PART_INDEX,
    PART_NAMES,
    deformation_gradients,
    face_areas,
    face_parts,
    gaussian_skin_weights,
    interpolate,
    triangle_frames,
)
from emo_backend.avatar.blendshapes import MAX_LOG_STRETCH, GaussianAvatar
from emo_backend.avatar.rotations import matrix_to_quat, polar_rotation, quat_to_axis_angle, quat_to_matrix
from emo_backend.avatar.sampling import local_spacing, poisson_disk_sample
from emo_backend.head.model import HeadModel

# Sample density per unit area relative to the skin: teeth must stay solid when the jaw opens.
DEFAULT_PART_DENSITY: dict[str, float] = {
    "surface": 1.0,
    "mouth_interior": 1.5,
    "tongue": 2.0,
    "upper_teeth": 4.0,
    "lower_teeth": 4.0,
    "eyeball": 2.0,
}
# Colours for parts when the head model has no appearance.
FALLBACK_PART_COLORS: dict[str, tuple[float, float, float]] = {
    "surface": (0.80, 0.62, 0.52),
    "mouth_interior": (0.35, 0.08, 0.08),
    "tongue": (0.70, 0.30, 0.30),
    "upper_teeth": (0.92, 0.90, 0.84),
    "lower_teeth": (0.92, 0.90, 0.84),
    "eyeball": (0.92, 0.92, 0.92),
}
MIN_GAUSSIANS_PER_PART = 32


def bake_identity(head: HeadModel, identity: Tensor | None) -> HeadModel:
    """The head with identity folded into v_template (and no identity bases left)."""
    v = head.v_template
    if identity is not None and identity.numel():
        v = v + torch.einsum("vcs,s->vc", head.shapedirs[..., : identity.shape[-1]], identity)
    return HeadModel(
        model_id=head.model_id, v_template=v, faces=head.faces, shapedirs=head.shapedirs[..., :0],
        exprdirs=head.exprdirs, expr_names=head.expr_names, j_regressor=head.j_regressor, parents=head.parents,
        lbs_weights=head.lbs_weights, landmark_faces=head.landmark_faces, landmark_bary=head.landmark_bary,
        regions=dict(head.regions), posedirs=head.posedirs, vertex_colors=head.vertex_colors,
    )


def allocate_counts(areas: dict[str, float], density: dict[str, float], total: int) -> dict[str, int]:
    """Split `total` over parts in proportion to area × density (largest remainders), each at least a minimum."""
    weight = {p: a * density.get(p, 1.0) for p, a in areas.items() if a > 0}
    if not weight:
        raise ValueError("the head mesh has no area to sample")
    raw = {p: total * w / sum(weight.values()) for p, w in weight.items()}
    counts = {p: max(MIN_GAUSSIANS_PER_PART, math.floor(r)) for p, r in raw.items()}
    by_remainder = sorted(raw, key=lambda p: raw[p] - math.floor(raw[p]), reverse=True)
    i = 0
    while sum(counts.values()) < total:
        counts[by_remainder[i % len(by_remainder)]] += 1
        i += 1
    # Minimums may overshoot: take the excess from the largest part.
    largest = max(counts, key=counts.get)
    counts[largest] -= sum(counts.values()) - total
    if counts[largest] < MIN_GAUSSIANS_PER_PART:
        raise ValueError(f"{total} Gaussians are too few for {len(counts)} parts; use at least "
                         f"{MIN_GAUSSIANS_PER_PART * len(counts) * 2}")
    return counts


def appearance_colors(head: HeadModel, face_ids: Tensor, bary: Tensor, parts: Tensor) -> Tensor:
    """RGB [N, 3]: the open head's procedural albedo (sharper than vertex colours: iris, brows, hairline),
    else the head's vertex colours interpolated, else per-part colours."""
    albedo_at = None
    if head.model_id.startswith("open-head"):  # the procedural albedo knows only the open head's parts
        try:
            from emo_backend.head.open_head.appearance import albedo_at
        except ImportError:
            pass
    if albedo_at is not None:
        colors = torch.as_tensor(albedo_at(head, face_ids, bary), dtype=torch.float32)
        if colors.shape == (face_ids.shape[0], 3) and torch.isfinite(colors).all():
            return colors.clamp(0, 1)
    if head.vertex_colors is not None:
        return interpolate(head.vertex_colors.float(), head.faces, face_ids, bary).clamp(0, 1)
    palette = torch.tensor([FALLBACK_PART_COLORS[p] for p in PART_NAMES])
    return palette[parts]


def expression_deltas(
    head: HeadModel,      # identity already baked in
    face_ids: Tensor,     # [N]
    bary: Tensor,         # [N, 3]
    offsets: Tensor,      # [N, 3] local frame
    quats: Tensor,        # [N, 4]
) -> dict[str, Tensor]:
    """ΔB_k for every expression basis from the deformation gradients of the head's expression meshes."""
    rest = head.v_template.double()
    dirs = head.exprdirs.double().permute(2, 0, 1)  # [E, V, 3] = displacement at ψ_k = 1
    e, n = dirs.shape[0], face_ids.shape[0]
    # Only triangles a basis moves get a deformation gradient; elsewhere F = I and every delta is exactly
    # zero (expression bases are local, so this is most of the work saved and keeps bundles sparse).
    touched = (dirs[:, head.faces] != 0).flatten(2).any(-1)  # [E, F]
    basis, face = torch.nonzero(touched, as_tuple=True)
    grads = deformation_gradients(rest, rest + dirs, head.faces)[basis, face] if len(basis) else \
        torch.zeros(0, 3, 3, dtype=rest.dtype)
    face_rot = torch.zeros(*touched.shape, 3, dtype=rest.dtype)
    face_grad = torch.eye(3, dtype=rest.dtype).repeat(*touched.shape, 1, 1)  # [E, F, 3, 3]
    face_rot[basis, face] = quat_to_axis_angle(matrix_to_quat(polar_rotation(grads)))
    face_grad[basis, face] = grads

    delta_means = interpolate(dirs, head.faces, face_ids, bary.double())  # [E, N, 3]
    delta_log_scales = torch.zeros(e, n, 3, dtype=rest.dtype)
    k, i = torch.nonzero(touched[:, face_ids], as_tuple=True)  # (basis, Gaussian) pairs that move
    g = face_grad[k, face_ids[i]]  # [M, 3, 3]
    frames = triangle_frames(rest, head.faces[face_ids[i]])  # [M, 3, 3]
    offset_world = (frames @ offsets.double()[i, :, None])[..., 0]
    delta_means[k, i] += ((g - torch.eye(3, dtype=g.dtype)) @ offset_world[..., None])[..., 0]
    axes = quat_to_matrix(quats.double()[i])  # columns = Gaussian axes
    # log |F a_j|, limited like the pose stretch so sliver triangles do not turn discs into streaks.
    stretch = torch.log((g @ axes).norm(dim=-2).clamp_min(1e-8))
    delta_log_scales[k, i] = stretch.clamp(-MAX_LOG_STRETCH, MAX_LOG_STRETCH)
    return {
        "delta_means": delta_means.float(),
        "delta_rotations": face_rot[:, face_ids].float(),
        "delta_log_scales": delta_log_scales.float(),
        "delta_colors": torch.zeros(e, n, 3),
        "delta_opacity_logits": torch.zeros(e, n),
    }


def init_avatar_from_head(
    head: HeadModel,
    num_gaussians: int = 36_000,
    *,
    identity: Tensor | None = None,     # [S'] identity coefficients, or None for the mean head
    seed: int = 0,
    part_density: dict[str, float] | None = None,
    tangent_scale: float = 0.6,          # disc σ as a fraction of the local sample spacing
    thickness: float = 0.15,             # normal σ as a fraction of the tangent σ
    opacity: float = 0.95,
    oversample: int = 5,
) -> GaussianAvatar:
    """A GaussianAvatar with `num_gaussians` Gaussians bound to `head` (CPU, float32)."""
    head = head.to("cpu")
    identity = torch.zeros(0) if identity is None else identity.detach().float().cpu().reshape(-1)
    head = bake_identity(head, identity)
    density = {**DEFAULT_PART_DENSITY, **(part_density or {})}

    parts_of_face = face_parts(head)
    areas = face_areas(head.v_template, head.faces)
    part_areas = {p: float(areas[parts_of_face == i].sum()) for i, p in enumerate(PART_NAMES)}
    counts = allocate_counts(part_areas, density, num_gaussians)

    face_ids, bary, parts, spacing = [], [], [], []
    for name, count in counts.items():
        subset = torch.nonzero(parts_of_face == PART_INDEX[name])[:, 0]
        f, b = poisson_disk_sample(head.v_template, head.faces, count, seed=seed + PART_INDEX[name],
                                   face_subset=subset, oversample=oversample)
        points = interpolate(head.v_template, head.faces, f, b)
        face_ids.append(f)
        bary.append(b)
        parts.append(torch.full_like(f, PART_INDEX[name]))
        spacing.append(local_spacing(points))
    face_ids, bary, parts, spacing = (torch.cat(x) for x in (face_ids, bary, parts, spacing))

    frames = triangle_frames(head.v_template, head.faces)[face_ids]  # columns t, b, n
    quats = matrix_to_quat(frames)
    sigma_t = spacing * tangent_scale
    log_scales = torch.log(torch.stack([sigma_t, sigma_t, sigma_t * thickness], -1))
    offsets = torch.zeros_like(bary)
    deltas = expression_deltas(head, face_ids, bary, offsets, quats)
    return GaussianAvatar(
        head=head,
        identity=identity,
        face_ids=face_ids,
        bary=bary,
        offsets=offsets,
        parts=parts,
        quats=quats,
        log_scales=log_scales,
        opacity_logits=torch.full((face_ids.shape[0],), math.log(opacity / (1 - opacity))),
        colors=appearance_colors(head, face_ids, bary, parts),
        skin_weights=gaussian_skin_weights(head, face_ids, bary, parts),
        training={"stage": "init", "method": "gaussian-blendshapes deformation-gradient init", "seed": seed,
                  "part_counts": counts},
        **deltas,
    )

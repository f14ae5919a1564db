"""Mesh binding: triangle frames, barycentric interpolation, deformation gradients, skinning weights.

A Gaussian is bound to one triangle of the head mesh by a face id, barycentric
coordinates (the anchor point on the triangle) and an offset expressed in that
triangle's local orthonormal frame:

    frame  = [t, b, n]   t = unit first edge (v1 - v0), n = unit normal, b = n × t
    anchor = Σ_i bary_i · v_i
    mean   = anchor + frame · offset

Normals follow the faces' counter-clockwise winding (outwards for the head).
"""

from __future__ import annotations

import torch
from torch import Tensor

from emo_backend.avatar.rotations import unit as unit_vectors
from emo_backend.head.model import HeadModel


def face_normals(vertices: Tensor, faces: Tensor, unit: bool = True) -> Tensor:
    """vertices [..., V, 3], faces [F, 3] -> normals [..., F, 3] (unit, or |n| = 2·area)."""
    v0, v1, v2 = (vertices[..., faces[:, i], :] for i in range(3))
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    return unit_vectors(n) if unit else n


def face_areas(vertices: Tensor, faces: Tensor) -> Tensor:
    """vertices [..., V, 3], faces [F, 3] -> areas [..., F]."""
    return 0.5 * face_normals(vertices, faces, unit=False).norm(dim=-1)


def triangle_frames(vertices: Tensor, faces: Tensor) -> Tensor:
    """vertices [..., V, 3], faces [F, 3] -> orthonormal frames [..., F, 3, 3]; columns t, b, n."""
    v0, v1 = vertices[..., faces[:, 0], :], vertices[..., faces[:, 1], :]
    t = unit_vectors(v1 - v0)
    n = face_normals(vertices, faces)
    b = torch.linalg.cross(n, t, dim=-1)
    return torch.stack([t, b, n], -1)


def interpolate(values: Tensor, faces: Tensor, face_ids: Tensor, bary: Tensor) -> Tensor:
    """Per-vertex values [..., V, C] -> per-point values [..., N, C] at (face_ids [N], bary [N, 3])."""
    corners = values[..., faces[face_ids], :]  # [..., N, 3, C]
    return (corners * bary[..., None]).sum(-2)


def bound_positions(
    vertices: Tensor,  # [..., V, 3]
    faces: Tensor,     # [F, 3]
    face_ids: Tensor,  # [N]
    bary: Tensor,      # [N, 3]
    offsets: Tensor,   # [N, 3] in the triangle's local frame
) -> Tensor:
    """Positions [..., N, 3] of bound points: anchor on the triangle plus the frame-rotated offset."""
    anchor = interpolate(vertices, faces, face_ids, bary)
    frames = triangle_frames(vertices, faces)[..., face_ids, :, :]  # [..., N, 3, 3]
    return anchor + (frames @ offsets[..., None])[..., 0]


DEGENERATE_AREA = 1e-14  # m²: twice the area below which a triangle counts as degenerate


def deformation_gradients(rest: Tensor, deformed: Tensor, faces: Tensor) -> Tensor:
    """Per-triangle deformation gradients F = [e1', e2', n'][e1, e2, n]^-1.

    rest [V, 3], deformed [..., V, 3], faces [F, 3] -> F [..., F, 3, 3]. The
    normals are unit length, so F stretches the triangle's plane and leaves the
    thickness along the normal alone (a thin surface disc stays thin).
    """

    def edge_matrix(v: Tensor) -> Tensor:
        v0, v1, v2 = (v[..., faces[:, i], :] for i in range(3))
        return torch.stack([v1 - v0, v2 - v0, face_normals(v, faces)], -1)  # [..., F, 3, 3]

    rest_edges = edge_matrix(rest)
    # det = 2·area: degenerate (zero-area) rest triangles have no gradient; give them F = I, not an error.
    ok = (torch.det(rest_edges).abs() > DEGENERATE_AREA)[..., None, None]
    eye = torch.eye(3, dtype=rest_edges.dtype, device=rest_edges.device)
    grads = edge_matrix(deformed) @ torch.linalg.inv(torch.where(ok, rest_edges, eye))
    return torch.where(ok, grads, eye)


# Gaussian parts: which piece of the head a Gaussian samples. The order is part of the bundle format.
PART_NAMES: tuple[str, ...] = ("surface", "mouth_interior", "upper_teeth", "lower_teeth", "tongue", "eyeball")
PART_INDEX: dict[str, int] = {name: i for i, name in enumerate(PART_NAMES)}
# Parts that move rigidly with one joint (skinning weights snapped to the dominant joint).
RIGID_PARTS: tuple[str, ...] = ("upper_teeth", "lower_teeth", "eyeball")


def face_parts(head: HeadModel) -> Tensor:
    """Part id [F] of every face from the head model's regions; later regions win (teeth over interior)."""
    parts = torch.zeros(head.faces.shape[0], dtype=torch.int64, device=head.faces.device)
    region_of_part = [
        ("mouth_interior", ("mouth_interior",)),
        ("tongue", ("tongue",)),
        ("upper_teeth", ("upper_teeth",)),
        ("lower_teeth", ("lower_teeth",)),
        ("eyeball", ("left_eyeball", "right_eyeball")),
    ]
    for part, regions in region_of_part:
        for region in regions:
            if region in head.regions:
                parts[head.regions[region].to(parts.device)] = PART_INDEX[part]
    return parts


def gaussian_skin_weights(head: HeadModel, face_ids: Tensor, bary: Tensor, parts: Tensor) -> Tensor:
    """Per-Gaussian LBS weights [N, J]: the triangle's vertex weights interpolated by barycentrics.

    Gaussians of rigid parts (teeth, eyeballs) take all their weight from the
    dominant joint, so a tooth never smears between jaw and skull at the gums.
    """
    weights = interpolate(head.lbs_weights, head.faces, face_ids, bary)
    weights = weights.clamp_min(0)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    rigid = torch.zeros_like(parts, dtype=torch.bool)
    for name in RIGID_PARTS:
        rigid |= parts == PART_INDEX[name]
    if rigid.any():
        one_hot = torch.nn.functional.one_hot(weights.argmax(-1), weights.shape[-1]).to(weights.dtype)
        weights = torch.where(rigid[:, None], one_hot, weights)
    return weights

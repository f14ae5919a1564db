"""Linear blend skinning with FLAME's structure, batched over frames.

    v_shaped = T + S·β + E·ψ                     (identity and expression)
    J        = J_regressor · v_shaped            (joints move with the shape)
    v_posed  = v_shaped + P·(R(θ) − I)           (pose correctives, if any)
    v        = Σ_j w_j · G_j(θ, J) · v_posed     (skinning)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from emo_backend.head.model import HeadModel


class PosedHead(NamedTuple):
    vertices: Tensor    # [B, V, 3] posed mesh in avatar space
    joints: Tensor      # [B, J, 3] posed joint positions
    transforms: Tensor  # [B, J, 4, 4] rest-to-posed transforms of each joint (skinning matrices)
    v_shaped: Tensor    # [B, V, 3] identity + expression, unposed


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula. aa [..., 3] -> R [..., 3, 3]; exact and differentiable at zero."""
    theta2 = (aa * aa).sum(-1, keepdim=True)  # [..., 1]
    theta = torch.sqrt(theta2.clamp_min(1e-16))
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with Taylor fallbacks near zero.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-16))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def blend_shapes(model: HeadModel, identity: Tensor | None, expression: Tensor) -> Tensor:
    """identity [B, S'] (S' <= S, may be None), expression [B, E] -> v_shaped [B, V, 3]."""
    batch = expression.shape[0]
    v = model.v_template.expand(batch, -1, -1)
    v = v + torch.einsum("vce,be->bvc", model.exprdirs, expression)
    if identity is not None and identity.numel():
        s = identity.shape[-1]
        v = v + torch.einsum("vcs,bs->bvc", model.shapedirs[..., :s], identity)
    return v


def skinning_transforms(rotations: Tensor, joints: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """rotations [B, J, 3, 3], rest joints [B, J, 3] -> (posed joints [B, J, 3], skinning [B, J, 4, 4])."""
    batch, num_joints = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.zeros(batch, num_joints, 4, 4, dtype=joints.dtype, device=joints.device)
    local[..., :3, :3] = rotations
    local[..., :3, 3] = rel
    local[..., 3, 3] = 1
    chain = [local[:, 0]]
    for j in range(1, num_joints):
        chain.append(chain[int(parents[j])] @ local[:, j])
    world = torch.stack(chain, 1)  # [B, J, 4, 4]
    posed_joints = world[..., :3, 3]
    # Remove the rest joint position so the transform maps rest-space vertices.
    offset = (world[..., :3, :3] @ joints[..., None])[..., 0]
    skin = world.clone()
    skin[..., :3, 3] = world[..., :3, 3] - offset
    return posed_joints, skin


def lbs(
    model: HeadModel,
    expression: Tensor,                 # [B, E]
    pose: Tensor,                       # [B, J, 3] axis-angle per joint
    identity: Tensor | None = None,     # [B, S'] or None
    translation: Tensor | None = None,  # [B, 3] or None
) -> PosedHead:
    v_shaped = blend_shapes(model, identity, expression)
    joints = torch.einsum("jv,bvc->bjc", model.j_regressor, v_shaped)
    rotations = axis_angle_to_matrix(pose)  # [B, J, 3, 3]
    v_posed = v_shaped
    if model.posedirs is not None:
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        pose_feature = (rotations[:, 1:] - eye).reshape(pose.shape[0], -1)  # [B, 9(J-1)]
        v_posed = v_posed + (pose_feature @ model.posedirs).reshape(v_shaped.shape)
    posed_joints, skin = skinning_transforms(rotations, joints, model.parents)
    batch, num_joints = skin.shape[:2]
    per_vertex = (model.lbs_weights @ skin[..., :3, :].reshape(batch, num_joints, 12)).view(batch, -1, 3, 4)
    # R v + t as fused multiply-adds: batched 3x3 matmuls over every vertex are slow on the CPU
    vertices = per_vertex[..., 3]
    for c in range(3):
        vertices = torch.addcmul(vertices, per_vertex[..., c], v_posed[..., c : c + 1])
    if translation is not None:
        vertices = vertices + translation[:, None]
        posed_joints = posed_joints + translation[:, None]
        skin = skin.clone()
        skin[..., :3, 3] = skin[..., :3, 3] + translation[:, None]
    return PosedHead(vertices, posed_joints, skin, v_shaped)


def landmarks(model: HeadModel, vertices: Tensor) -> Tensor:
    """vertices [B, V, 3] -> landmarks [B, L, 3] from the model's barycentric landmark set."""
    tri = model.faces[model.landmark_faces]  # [L, 3]
    corners = vertices[:, tri]  # [B, L, 3, 3]
    return (corners * model.landmark_bary[None, :, :, None]).sum(-2)

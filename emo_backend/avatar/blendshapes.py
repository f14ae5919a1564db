"""Gaussian blendshapes (Ma et al., SIGGRAPH 2024): the avatar and its evaluation for a batch of frames.

Neutral-space attributes for an expression ψ [E]:

    mean     = μ0 + Σ_k ψ_k Δμ_k                 (Δμ in avatar space, metres)
    rotation = exp(Σ_k ψ_k Δω_k) ⊗ q0            (Δω: axis-angle deltas in avatar space, composed on the left)
    log σ    = log σ0 + Σ_k ψ_k Δlog σ_k         (scale deltas in log space)
    colour   = c0 + Σ_k ψ_k Δc_k
    logit α  = logit α0 + Σ_k ψ_k Δlogit α_k     (opacity deltas in logit space)

Axis-angle rotation deltas (rather than additive quaternion deltas) keep a
basis' rotation exact at ψ_k = 1 whatever q0 is, stay a rotation for any ψ,
and scale linearly with intensity. μ0 is not free: it is the Gaussian's
binding (triangle anchor on the neutral mesh + offset in the triangle frame),
so B0 stays attached to the mesh it was initialised from.

Then linear blend skinning moves the blended Gaussians with the head's joint
transforms (root, neck, jaw, eyes), per-Gaussian weights interpolated from the
triangle's vertex weights: each mean's triangle anchor goes where the posed
mesh puts it and its residual from the anchor is rotated by the blended
transform (see `skin_gaussians`: exact on coarse triangles that span two
joints, identical to plain LBS elsewhere); quaternions are rotated by the
blended joint rotation (normalised, sign-aligned quaternion blend); scales
follow the posed mesh's stretch of the Gaussian's triangle (`pose_log_stretch`,
zero for rigid motion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from emo_backend.avatar.binding import (
    PART_INDEX,
    RIGID_PARTS,
    bound_positions,
    deformation_gradients,
    gaussian_skin_weights,
    interpolate,
)
from emo_backend.avatar.gaussians import Gaussians
from emo_backend.avatar.rotations import axis_angle_to_quat, matrix_to_quat, quat_multiply, quat_to_matrix, unit
from emo_backend.head.lbs import PosedHead, lbs
from emo_backend.head.model import HeadModel


# Stretch limit (log) for one Gaussian axis from posing: thin sliver triangles can stretch 5× and more along
# one edge, and a disc stretched that much becomes a streak far outside its triangle.
MAX_LOG_STRETCH = math.log(2.0)
RIGID_PART_IDS = [PART_INDEX[p] for p in RIGID_PARTS]


@dataclass
class GaussianAvatar:
    """Neutral Gaussians bound to a head mesh, per-expression-basis deltas, and the head that drives them.

    N Gaussians, E expression bases (the head's), J joints. `head.v_template`
    already includes the identity (`identity` records the coefficients used),
    so the head is evaluated with identity=None.
    """

    head: HeadModel
    identity: Tensor              # [S'] identity coefficients baked into head.v_template (may be empty)
    # Binding of B0 to the neutral mesh.
    face_ids: Tensor              # [N] int64 triangle ids
    bary: Tensor                  # [N, 3] barycentric coordinates of the anchor
    offsets: Tensor               # [N, 3] offset from the anchor in the triangle's frame (t, b, n)
    parts: Tensor                 # [N] int64 index into binding.PART_NAMES
    # Neutral Gaussians B0 (raw parameters, avatar space).
    quats: Tensor                 # [N, 4] wxyz
    log_scales: Tensor            # [N, 3]
    opacity_logits: Tensor        # [N]
    colors: Tensor                # [N, 3] RGB
    # Blendshape deltas ΔB_k.
    delta_means: Tensor           # [E, N, 3] metres, avatar space
    delta_rotations: Tensor       # [E, N, 3] axis-angle, avatar space
    delta_log_scales: Tensor      # [E, N, 3]
    delta_colors: Tensor          # [E, N, 3]
    delta_opacity_logits: Tensor  # [E, N]
    skin_weights: Tensor          # [N, J] derived from the binding (binding.gaussian_skin_weights)
    training: dict | None = None  # free-form provenance written into avatar.json

    @property
    def num_gaussians(self) -> int:
        return int(self.face_ids.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.delta_means.shape[0])

    def to(self, device: torch.device | str) -> "GaussianAvatar":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in moved.items()}
        moved["head"] = self.head.to(device)
        return GaussianAvatar(**moved)

    def optimisable(self) -> dict[str, Tensor]:
        """The tensors stage 1 trains (B0 and ΔB_k), by name."""
        names = ("offsets", "quats", "log_scales", "opacity_logits", "colors", "delta_means", "delta_rotations",
                 "delta_log_scales", "delta_colors", "delta_opacity_logits")
        return {n: getattr(self, n) for n in names}

    def with_tensors(self, **tensors: Tensor) -> "GaussianAvatar":
        """A copy with some tensors replaced (e.g. by nn.Parameters); skin weights follow the binding."""
        out = replace(self, **tensors)
        if {"face_ids", "bary", "parts"} & tensors.keys():
            out = replace(out, skin_weights=gaussian_skin_weights(out.head, out.face_ids, out.bary, out.parts))
        return out


def neutral_means(avatar: GaussianAvatar) -> Tensor:
    """μ0 [N, 3]: the bound positions on the neutral mesh."""
    head = avatar.head
    return bound_positions(head.v_template, head.faces, avatar.face_ids, avatar.bary, avatar.offsets)


def blend(avatar: GaussianAvatar, expression: Tensor) -> Gaussians:
    """expression [B, E] -> unposed (neutral-space) Gaussians [B, N, ...] = B0 + Σ_k ψ_k ΔB_k."""
    if expression.shape[-1] != avatar.num_expressions:
        raise ValueError(f"expression has {expression.shape[-1]} coefficients, avatar has {avatar.num_expressions}")
    batch, n = expression.shape[0], avatar.num_gaussians

    def mix(base: Tensor, delta: Tensor) -> Tensor:  # base [N, C], delta [E, N, C] -> [B, N, C]
        flat = expression @ delta.reshape(delta.shape[0], -1)  # one matmul for all bases
        return base + flat.reshape(batch, *base.shape)

    means = mix(neutral_means(avatar), avatar.delta_means)
    omega = mix(avatar.delta_rotations.new_zeros(n, 3), avatar.delta_rotations)
    quats = quat_multiply(axis_angle_to_quat(omega), avatar.quats.expand(batch, n, 4))
    log_scales = mix(avatar.log_scales, avatar.delta_log_scales)
    colors = mix(avatar.colors, avatar.delta_colors)
    opacity = mix(avatar.opacity_logits[:, None], avatar.delta_opacity_logits[..., None])[..., 0]
    return Gaussians(means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity, colors=colors)


def skin_gaussians(
    g: Gaussians,                       # [B, N, ...] blended, unposed
    skin_weights: Tensor,               # [N, J]
    transforms: Tensor,                 # [B, J, 4, 4] joint skinning transforms
    anchors_rest: Tensor | None = None,   # [B, N, 3] anchors on the unposed (expression) mesh
    anchors_posed: Tensor | None = None,  # [B, N, 3] the same anchors on the posed mesh
) -> Gaussians:
    """Pose blended Gaussians with linear blend skinning.

    Without anchors, means move by the per-Gaussian blended 4×4 (plain LBS).
    With anchors, each mean is split into its triangle anchor and the residual
    from it: the anchor goes exactly where the posed mesh puts it (the
    triangle's own vertex transforms, pose correctives included) and only the
    residual is rotated by the blended transform. Plain LBS with interpolated
    weights drifts off a coarse triangle whose corners follow different joints
    (a mouth-corner triangle spanning jaw and skull by ~1 mm at a 20° jaw);
    the anchored form is exact on the mesh and equal to plain LBS wherever a
    triangle's vertices move rigidly together.
    """
    per_gaussian = torch.einsum("nj,bjrc->bnrc", skin_weights, transforms[..., :3, :])  # [B, N, 3, 4]
    rot = per_gaussian[..., :3]
    if anchors_rest is None or anchors_posed is None:
        means = (rot @ g.means[..., None])[..., 0] + per_gaussian[..., 3]
    else:
        means = anchors_posed + (rot @ (g.means - anchors_rest)[..., None])[..., 0]
    joint_quats = matrix_to_quat(transforms[..., :3, :3])  # [B, J, 4], w >= 0
    # q and -q are the same rotation: align every joint to the root's hemisphere before blending.
    sign = torch.where((joint_quats * joint_quats[:, :1]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    blended = torch.einsum("nj,bjq->bnq", skin_weights, joint_quats * sign)
    blended = unit(blended)
    quats = quat_multiply(blended, g.quats)
    return Gaussians(means=means, quats=quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits,
                     colors=g.colors)


def evaluate(
    avatar: GaussianAvatar,
    expression: Tensor,                 # [B, E]
    pose: Tensor,                       # [B, J, 3] axis-angle per joint (JOINT_NAMES order)
    translation: Tensor | None = None,  # [B, 3] or None
    *,
    pose_stretch: bool = True,
) -> tuple[Gaussians, PosedHead]:
    """Gaussians [B, N, ...] in avatar space for each frame, and the posed head mesh that drives them.

    `pose_stretch` scales each Gaussian by its triangle's stretch under posing
    (`pose_log_stretch`); False gives GaussianBlendshapes' plain rigid LBS.
    """
    head = avatar.head
    posed = lbs(head, expression, pose, identity=None, translation=translation)
    # Both anchor sets in one gather.
    anchors = interpolate(torch.cat([posed.v_shaped, posed.vertices], -1), head.faces, avatar.face_ids, avatar.bary)
    anchors_rest, anchors_posed = anchors[..., :3], anchors[..., 3:]
    blended = blend(avatar, expression)
    gaussians = skin_gaussians(blended, avatar.skin_weights, posed.transforms, anchors_rest, anchors_posed)
    if pose_stretch:
        moving = stretchable_gaussians(avatar)
        stretch = pose_log_stretch(posed.v_shaped, posed.vertices, head.faces, avatar.face_ids[moving],
                                   blended.quats[:, moving])
        log_scales = gaussians.log_scales.index_add(1, moving, stretch)
        gaussians = replace(gaussians, log_scales=log_scales)
    return gaussians, posed


def stretchable_gaussians(avatar: GaussianAvatar) -> Tensor:
    """Ids [M] of the Gaussians posing can stretch: only triangles whose corners follow different joints (or
    carry pose correctives) deform under skinning; rigid parts (teeth, eyeballs) never do."""
    head = avatar.head
    if head.posedirs is None:
        corner_weights = head.lbs_weights[head.faces]  # [F, 3, J]
        deforms = (corner_weights - corner_weights[:, :1]).abs().amax((1, 2)) > 1e-6
        stretchable = deforms[avatar.face_ids]
    else:
        stretchable = torch.ones_like(avatar.face_ids, dtype=torch.bool)
    stretchable &= ~torch.isin(avatar.parts, torch.tensor(RIGID_PART_IDS, device=avatar.parts.device))
    return torch.nonzero(stretchable)[:, 0]


def pose_log_stretch(
    rest: Tensor,      # [B, V, 3] unposed (expression) mesh
    posed: Tensor,     # [B, V, 3] posed mesh
    faces: Tensor,     # [F, 3]
    face_ids: Tensor,  # [N]
    quats: Tensor,     # [B, N, 4] unposed Gaussian orientations
) -> Tensor:
    """log |F a_i| [B, N, 3]: how much the posed mesh stretches each Gaussian axis a_i.

    F is the Gaussian's triangle's deformation gradient from the unposed to
    the posed mesh. Plain LBS moves a Gaussian rigidly, but where skinning
    weights change across a triangle (mouth corners at an open jaw) the skin
    stretches; without this the discs there part and the mouth cavity shows
    through. It is 0 wherever the mesh moves rigidly; the normal axis keeps its
    thickness (unit normals in F).
    """
    used, local = torch.unique(face_ids, return_inverse=True)  # only the triangles these Gaussians sit on
    grads = deformation_gradients(rest, posed, faces[used])[:, local]  # [B, N, 3, 3]
    axes = quat_to_matrix(quats)  # [B, N, 3, 3], columns = Gaussian axes
    squared = (grads @ axes).square().sum(-2)  # |F a_i|^2
    return (0.5 * torch.log(squared.clamp_min(1e-12))).clamp(-MAX_LOG_STRETCH, MAX_LOG_STRETCH)

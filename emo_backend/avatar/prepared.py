"""Fast inference evaluation of a Gaussian avatar: `blendshapes.evaluate`'s result, per-avatar constants cached.

`blendshapes.evaluate` is the reference (differentiable, used by training).
For rendering, everything that depends only on the avatar is computed once
by `prepare_avatar` and the per-frame work is a few fused tensor ops:

* μ0 (the neutral bound positions) is cached, and the barycentric anchors
  (rest and posed, and stage 2's ΔM corners) are one sparse [N, V] product
  for all frames (gathering a [B, V, C] tensor along V is slow on the CPU);
* the blendshape deltas are sparse (a basis moves the Gaussians of its
  region only): they are one CSR matrix [N·C, E] over the channels any basis
  uses, so blending is one sparse × dense product (one dense matmul when a
  trained avatar's deltas are mostly non-zero); quaternions are composed
  only where a rotation delta exists (elsewhere exp(0) ⊗ q0 = q0 exactly);
* the per-Gaussian skinning transforms are one [N, J] × [B, J, 12] matmul
  applied with fused multiply-adds, not [B, N, 3, 3] batched matmuls;
* the pose stretch runs only on the Gaussians that can stretch (their
  triangle's corners follow different joints, or the head has pose
  correctives; never rigid parts), with those triangles precomputed.

On the CPU the per-Gaussian part runs as one numba kernel (`prepared_cpu`);
the torch formulation serves every other device. The results equal
`evaluate`'s up to float rounding (tests pin both kernels). Works on any device: prepare the avatar after moving it (`prepare_avatar(avatar.to(dev))`).
Nothing here tracks gradients: use `evaluate` to train.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from emo_backend.avatar.blendshapes import GaussianAvatar, neutral_means, pose_log_stretch, stretchable_gaussians
from emo_backend.avatar.gaussians import Gaussians
from emo_backend.avatar.rotations import axis_angle_to_quat, matrix_to_quat, quat_multiply, unit
from emo_backend.head.lbs import PosedHead, lbs

# Delta channel groups in the order they sit in a row of the CSR matrix.
DELTA_GROUPS = ("delta_means", "delta_rotations", "delta_log_scales", "delta_colors", "delta_opacity_logits")
DENSE_DELTAS = 0.25  # above this fraction of non-zero (basis, Gaussian, channel) entries the deltas stay dense


@dataclass(frozen=True)
class PreparedAvatar:
    """An avatar with its per-avatar constants precomputed for rendering (inference only)."""

    avatar: GaussianAvatar
    neutral_means: Tensor            # [N, 3] μ0
    corner_ids: Tensor               # [N, 3] vertex ids of each Gaussian's triangle
    anchor_matrix: Tensor            # sparse CSR [N, V]: barycentric weights (per-vertex values -> anchors)
    corner_matrix: Tensor            # sparse CSR [4N, V]: row 4n+i picks corner i of n's triangle, 4n+3 its anchor
    deltas: Tensor | None            # sparse CSR [N * C, E] (row n*C + c: Gaussian n's channel c), or dense
                                     # [E, N * C] when most entries are non-zero; None if no deltas
    delta_slices: dict[str, slice]   # DELTA_GROUPS name -> its channels within C (groups that are all zero omitted)
    rotated: Tensor                  # [R] Gaussians with a non-zero rotation delta
    stretch_ids: Tensor              # [M] Gaussians whose scales follow their triangle's stretch
    stretch_faces: Tensor            # [Fs, 3] the triangles they sit on
    stretch_local: Tensor            # [M] index into stretch_faces
    stretch_slot: Tensor             # [N] index into stretch_faces, -1 for Gaussians that do not stretch

    @property
    def num_gaussians(self) -> int:
        return self.avatar.num_gaussians

    @property
    def num_expressions(self) -> int:
        return self.avatar.num_expressions


@torch.no_grad()
def prepare_avatar(avatar: GaussianAvatar) -> PreparedAvatar:
    """Precompute what `evaluate_prepared` needs; on the avatar's device. Re-prepare after changing the avatar."""
    head = avatar.head
    n, e = avatar.num_gaussians, avatar.num_expressions
    dense = {name: getattr(avatar, name).detach().reshape(e, n, -1) for name in DELTA_GROUPS}
    used = {name: d for name, d in dense.items() if bool((d != 0).any())}
    slices, start = {}, 0
    for name, d in used.items():
        slices[name] = slice(start, start + d.shape[-1])
        start += d.shape[-1]
    deltas = None
    if used:
        stacked = torch.cat(list(used.values()), -1).reshape(e, -1)  # [E, N*C]
        if float((stacked != 0).float().mean()) > DENSE_DELTAS:
            deltas = stacked.contiguous()  # a dense matmul beats a sparse one here
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
                deltas = stacked.T.contiguous().to_sparse_csr()  # rows n*C + c, columns k
    if "delta_rotations" in used:
        rotated = torch.nonzero((used["delta_rotations"] != 0).any(-1).any(0))[:, 0]
    else:
        rotated = torch.zeros(0, dtype=torch.long, device=avatar.face_ids.device)

    stretch_ids = stretchable_gaussians(avatar)  # the same selection as `evaluate`'s pose stretch
    faces_used, local = torch.unique(avatar.face_ids[stretch_ids], return_inverse=True)

    corner_ids = head.faces[avatar.face_ids].contiguous()
    bary = avatar.bary.detach()
    rows = torch.arange(n, device=corner_ids.device).repeat_interleave(3)
    pick = torch.eye(3, dtype=bary.dtype, device=bary.device).expand(n, 3, 3)
    corner_values = torch.cat([pick, bary[:, None, :]], 1)  # [N, 4 rows, 3 corners]
    return PreparedAvatar(
        avatar=avatar,
        neutral_means=neutral_means(avatar).detach(),
        corner_ids=corner_ids,
        anchor_matrix=_csr(rows, corner_ids.reshape(-1), bary.reshape(-1), (n, head.num_vertices)),
        corner_matrix=_csr(torch.arange(4 * n, device=rows.device).repeat_interleave(3),
                           corner_ids[:, None, :].expand(n, 4, 3).reshape(-1), corner_values.reshape(-1),
                           (4 * n, head.num_vertices)),
        deltas=deltas,
        delta_slices=slices,
        rotated=rotated,
        stretch_ids=stretch_ids,
        stretch_faces=head.faces[faces_used].contiguous(),
        stretch_local=local,
        stretch_slot=torch.full((n,), -1, dtype=torch.long, device=local.device).index_copy_(0, stretch_ids, local),
    )


def _csr(rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """A sparse CSR matrix from (row, col, value) triplets (duplicates summed, zeros dropped)."""
    keep = values != 0
    rows, cols, values = rows[keep], cols[keep], values[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape).coalesce()
        return coo.to_sparse_csr()


def sparse_rows(matrix: Tensor, values: Tensor) -> Tensor:
    """matrix [R, V] (sparse CSR) applied to per-vertex values [B, V, C] -> [B, R, C] (a permuted view).

    One sparse product for all frames: much faster on the CPU than gathering a
    batched tensor along its middle dimension.
    """
    b, v, c = values.shape
    out = matrix @ values.permute(1, 0, 2).reshape(v, b * c)  # [R, B*C]
    return out.view(-1, b, c).permute(1, 0, 2)


def delta_features_prepared(prepared: PreparedAvatar, delta_vertices: Tensor) -> Tensor:
    """`motion.egd.delta_mesh_features` from the cached corners: ΔM [B, V, 3] -> [B, N, 12]."""
    b, n = delta_vertices.shape[0], prepared.num_gaussians
    return sparse_rows(prepared.corner_matrix, delta_vertices).reshape(b, n, 12)


def _add_rotated(base: Tensor, m: Tensor, v: Tensor) -> Tensor:
    """base + m · v for m [..., 3, 3], v [..., 3]: three fused multiply-adds (tiny batched matmuls and
    reductions over a last dimension of 3 are slow on the CPU)."""
    out = torch.addcmul(base, m[..., 0], v[..., 0:1])
    out.addcmul_(m[..., 1], v[..., 1:2])
    return out.addcmul_(m[..., 2], v[..., 2:3])


def _mixed_deltas(prepared: PreparedAvatar, expression: Tensor) -> Tensor | None:
    """Σ_k ψ_k ΔB_k over the used channels: expression [B, E] -> [B, N, C] contiguous (None without deltas)."""
    if prepared.deltas is None:
        return None
    b, n = expression.shape[0], prepared.num_gaussians
    channels = sum(s.stop - s.start for s in prepared.delta_slices.values())
    if prepared.deltas.layout == torch.sparse_csr:
        # [N*C, B] -> frames first, contiguous: strided reads in every later op cost more than this copy
        return (prepared.deltas @ expression.T.to(prepared.deltas.dtype)).T.contiguous().view(b, n, channels)
    return (expression.to(prepared.deltas.dtype) @ prepared.deltas).view(b, n, channels)


def _check_expression(prepared: PreparedAvatar, expression: Tensor) -> None:
    if expression.shape[-1] != prepared.num_expressions:
        raise ValueError(f"expression has {expression.shape[-1]} coefficients, avatar has {prepared.num_expressions}")


def blend_prepared(prepared: PreparedAvatar, expression: Tensor) -> Gaussians:
    """`blendshapes.blend`, sparse: expression [B, E] -> unposed Gaussians [B, N, ...]."""
    avatar = prepared.avatar
    _check_expression(prepared, expression)
    b, n = expression.shape[0], avatar.num_gaussians
    mixed = _mixed_deltas(prepared, expression)
    s = prepared.delta_slices

    def mix(base: Tensor, name: str) -> Tensor:  # base [N, C] -> [B, N, C]
        if name not in s:
            return base.expand(b, *base.shape)
        return base + mixed[..., s[name]]

    means = mix(prepared.neutral_means, "delta_means")
    quats = avatar.quats.expand(b, n, 4)
    if "delta_rotations" in s and prepared.rotated.numel():
        quats = quats.clone()
        rotated = prepared.rotated
        omega = mixed[:, rotated, s["delta_rotations"]]
        quats[:, rotated] = quat_multiply(axis_angle_to_quat(omega), avatar.quats[rotated].expand(b, -1, 4))
    log_scales = mix(avatar.log_scales, "delta_log_scales")
    colors = mix(avatar.colors, "delta_colors")
    opacity = mix(avatar.opacity_logits[:, None], "delta_opacity_logits")[..., 0]
    return Gaussians(means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity, colors=colors)


@torch.no_grad()
def evaluate_prepared(
    prepared: PreparedAvatar,
    expression: Tensor,                 # [B, E]
    pose: Tensor,                       # [B, J, 3] axis-angle per joint
    translation: Tensor | None = None,  # [B, 3] or None
    *,
    pose_stretch: bool = True,
    kernel: str = "auto",
) -> tuple[Gaussians, PosedHead, Tensor]:
    """`blendshapes.evaluate` for rendering -> (Gaussians [B, N], posed head, skin rotations [B, N, 3, 3]).

    The skin rotations are each Gaussian's blended skinning rotation (what
    `motion.pipeline.skin_rotations` gives), returned because stage 2 needs them.
    `kernel`: "numba" (the CPU kernel of `prepared_cpu`), "torch" (any device),
    or "auto" (numba for float32 on the CPU, else torch).
    """
    avatar = prepared.avatar
    head = avatar.head
    _check_expression(prepared, expression)
    posed = lbs(head, expression, pose, identity=None, translation=translation)
    b, n = expression.shape[0], avatar.num_gaussians
    if kernel == "auto":
        kernel = "numba" if expression.device.type == "cpu" and avatar.quats.dtype == torch.float32 else "torch"
    if kernel == "numba":
        return _evaluate_numba(prepared, expression, posed, pose_stretch)
    if kernel != "torch":
        raise ValueError(f"kernel must be 'auto', 'torch' or 'numba', got {kernel!r}")
    anchors = sparse_rows(prepared.anchor_matrix, torch.cat([posed.v_shaped, posed.vertices], -1))
    anchors_rest, anchors_posed = anchors[..., :3], anchors[..., 3:]
    blended = blend_prepared(prepared, expression)

    # Skinning (blendshapes.skin_gaussians with anchors): one matmul for every Gaussian's blended 3x4.
    transforms = posed.transforms
    joints = transforms.shape[1]
    per_gaussian = (avatar.skin_weights @ transforms[..., :3, :].reshape(b, joints, 12)).view(b, n, 3, 4)
    rotation = per_gaussian[..., :3]
    means = _add_rotated(anchors_posed, rotation, blended.means - anchors_rest)
    joint_quats = matrix_to_quat(transforms[..., :3, :3])  # [B, J, 4]
    sign = torch.where((joint_quats * joint_quats[:, :1]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    skin_quats = unit(avatar.skin_weights @ (joint_quats * sign))  # [B, N, 4]
    quats = quat_multiply(skin_quats, blended.quats)

    log_scales = blended.log_scales
    if pose_stretch and prepared.stretch_ids.numel():
        ids = prepared.stretch_ids
        stretch = pose_log_stretch(posed.v_shaped, posed.vertices, prepared.stretch_faces, prepared.stretch_local,
                                   blended.quats[:, ids])
        log_scales = log_scales.index_add(1, ids, stretch)
    gaussians = Gaussians(means=means, quats=quats, log_scales=log_scales, opacity_logits=blended.opacity_logits,
                          colors=blended.colors)
    return gaussians, posed, rotation



def _evaluate_numba(prepared: PreparedAvatar, expression: Tensor, posed: PosedHead,
                    pose_stretch: bool) -> tuple[Gaussians, PosedHead, Tensor]:
    """`evaluate_prepared`'s per-Gaussian work in one CPU kernel (`prepared_cpu.skin_kernel`)."""
    from emo_backend.avatar.binding import deformation_gradients
    from emo_backend.avatar.blendshapes import MAX_LOG_STRETCH
    from emo_backend.avatar.prepared_cpu import skin_kernel
    from emo_backend.parallel import PARALLEL_LOCK

    avatar = prepared.avatar
    b, n = expression.shape[0], avatar.num_gaussians
    f32 = torch.float32
    mixed = _mixed_deltas(prepared, expression)
    s = prepared.delta_slices
    at = {name: (s[name].start if name in s else -1) for name in ("delta_means", "delta_rotations", "delta_log_scales")}
    if mixed is None:
        mixed = torch.zeros(b, n, 1, dtype=f32)
    transforms = posed.transforms
    joint_quats = matrix_to_quat(transforms[..., :3, :3])  # [B, J, 4]
    sign = torch.where((joint_quats * joint_quats[:, :1]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    stretches = pose_stretch and prepared.stretch_ids.numel() > 0
    if stretches:
        grads = deformation_gradients(posed.v_shaped, posed.vertices, prepared.stretch_faces)
        slot = prepared.stretch_slot
    else:
        grads = torch.zeros(b, 1, 3, 3, dtype=f32)
        slot = torch.full((n,), -1, dtype=torch.long)
    means = torch.empty(b, n, 3, dtype=f32)
    quats = torch.empty(b, n, 4, dtype=f32)
    log_scales = torch.empty(b, n, 3, dtype=f32)
    rotation = torch.empty(b, n, 3, 3, dtype=f32)

    def arr(t: Tensor):
        return t.detach().to(f32).contiguous().numpy()

    with PARALLEL_LOCK:
        skin_kernel(
            arr(mixed), at["delta_means"], at["delta_rotations"], at["delta_log_scales"], arr(prepared.neutral_means),
            arr(avatar.quats), arr(avatar.log_scales), prepared.corner_ids.to(torch.int64).contiguous().numpy(),
            arr(avatar.bary), arr(posed.v_shaped), arr(posed.vertices), arr(avatar.skin_weights),
            arr(transforms[..., :3, :]), arr(joint_quats * sign), slot.contiguous().numpy(), arr(grads),
            float(MAX_LOG_STRETCH), means.numpy(), quats.numpy(), log_scales.numpy(), rotation.numpy(),
        )

    def mix(base: Tensor, name: str) -> Tensor:
        return base.expand(b, *base.shape) if name not in s else base + mixed[..., s[name]]

    colors = mix(avatar.colors, "delta_colors")
    opacity = mix(avatar.opacity_logits[:, None], "delta_opacity_logits")[..., 0]
    return Gaussians(means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity, colors=colors), \
        posed, rotation

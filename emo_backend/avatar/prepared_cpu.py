"""Stage 1's per-Gaussian work as one numba kernel: the CPU path of `avatar.prepared.evaluate_prepared`.

On the CPU the torch formulation of stage 1 costs ~30 elementwise ops over
[B, N, ...] tensors, each a pass through memory. Here every Gaussian of a
frame is done in one pass (frame by frame, parallel over Gaussians): the blended mean,
rotation and log-scales (from the sparse blend's output), its anchors on the
unposed and posed mesh, the blended skinning transform and quaternion, and
the pose stretch of its triangle. The per-frame pieces that are small (LBS of
the mesh, joint quaternions, per-triangle deformation gradients, the sparse
blend product) stay in torch. Same formulas as the torch path, evaluated in
float64 registers; results agree to float32 rounding (tests pin them).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

import emo_backend.parallel  # noqa: F401  (numba's threading layer, before the first parallel kernel)


@njit(parallel=True, cache=True)
def skin_kernel(
    mixed,          # [B, N, C] float32 blended deltas (channels at the offsets below; -1 = absent)
    mean_at, rot_at, scale_at,
    mu0,            # [N, 3] neutral means
    q0,             # [N, 4] neutral quaternions (wxyz)
    ls0,            # [N, 3] neutral log-scales
    corner_ids,     # [N, 3] int64
    bary,           # [N, 3]
    v_rest,         # [B, V, 3] unposed (expression) mesh
    v_posed,        # [B, V, 3] posed mesh
    skin_w,         # [N, J]
    transforms,     # [B, J, 3, 4] skinning transforms (rows of the 4x4)
    joint_quats,    # [B, J, 4] sign-aligned joint rotations
    stretch_slot,   # [N] int64 index into grads, -1 = no stretch
    grads,          # [B, S, 3, 3] per-triangle deformation gradients
    max_log,        # stretch limit
    out_means,      # [B, N, 3]
    out_quats,      # [B, N, 4]
    out_logs,       # [B, N, 3]
    out_rot,        # [B, N, 3, 3] blended skinning rotation
):
    batch, n_gauss = out_means.shape[0], out_means.shape[1]
    joints = skin_w.shape[1]
    for b in range(batch):
        for n in prange(n_gauss):
            c0, c1, c2 = corner_ids[n, 0], corner_ids[n, 1], corner_ids[n, 2]
            b0, b1, b2 = bary[n, 0], bary[n, 1], bary[n, 2]
            slot = stretch_slot[n]
            # Blend (B0 + sum_k psi_k dB_k, the sum already in `mixed`), then the residual from the rest anchor.
            m0, m1, m2 = mu0[n, 0], mu0[n, 1], mu0[n, 2]
            l0, l1, l2 = ls0[n, 0], ls0[n, 1], ls0[n, 2]
            if mean_at >= 0:
                m0 += mixed[b, n, mean_at]
                m1 += mixed[b, n, mean_at + 1]
                m2 += mixed[b, n, mean_at + 2]
            if scale_at >= 0:
                l0 += mixed[b, n, scale_at]
                l1 += mixed[b, n, scale_at + 1]
                l2 += mixed[b, n, scale_at + 2]
            m0 -= b0 * v_rest[b, c0, 0] + b1 * v_rest[b, c1, 0] + b2 * v_rest[b, c2, 0]
            m1 -= b0 * v_rest[b, c0, 1] + b1 * v_rest[b, c1, 1] + b2 * v_rest[b, c2, 1]
            m2 -= b0 * v_rest[b, c0, 2] + b1 * v_rest[b, c1, 2] + b2 * v_rest[b, c2, 2]
            qw, qx, qy, qz = q0[n, 0], q0[n, 1], q0[n, 2], q0[n, 3]
            if rot_at >= 0:
                ax, ay, az = mixed[b, n, rot_at], mixed[b, n, rot_at + 1], mixed[b, n, rot_at + 2]
                t2 = ax * ax + ay * ay + az * az
                if t2 < 1e-8:  # axis_angle_to_quat's Taylor branch
                    k = 0.5 - t2 / 48.0
                    w = 1.0 - t2 / 8.0
                else:
                    theta = math.sqrt(t2)
                    k = math.sin(theta / 2.0) / theta
                    w = math.cos(theta / 2.0)
                dx, dy, dz = ax * k, ay * k, az * k
                qw, qx, qy, qz = (w * qw - dx * qx - dy * qy - dz * qz, w * qx + dx * qw + dy * qz - dz * qy,
                                  w * qy - dx * qz + dy * qw + dz * qx, w * qz + dx * qy - dy * qx + dz * qw)
            # Skinning: the blended 3x4 and quaternion of the Gaussian's joints.
            r00 = r01 = r02 = r03 = r10 = r11 = r12 = r13 = r20 = r21 = r22 = r23 = 0.0
            sw = sx = sy = sz = 0.0
            for j in range(joints):
                wj = skin_w[n, j]
                if wj != 0.0:
                    tj = transforms[b, j]
                    r00 += wj * tj[0, 0]
                    r01 += wj * tj[0, 1]
                    r02 += wj * tj[0, 2]
                    r03 += wj * tj[0, 3]
                    r10 += wj * tj[1, 0]
                    r11 += wj * tj[1, 1]
                    r12 += wj * tj[1, 2]
                    r13 += wj * tj[1, 3]
                    r20 += wj * tj[2, 0]
                    r21 += wj * tj[2, 1]
                    r22 += wj * tj[2, 2]
                    r23 += wj * tj[2, 3]
                    sw += wj * joint_quats[b, j, 0]
                    sx += wj * joint_quats[b, j, 1]
                    sy += wj * joint_quats[b, j, 2]
                    sz += wj * joint_quats[b, j, 3]
            p0 = b0 * v_posed[b, c0, 0] + b1 * v_posed[b, c1, 0] + b2 * v_posed[b, c2, 0]
            p1 = b0 * v_posed[b, c0, 1] + b1 * v_posed[b, c1, 1] + b2 * v_posed[b, c2, 1]
            p2 = b0 * v_posed[b, c0, 2] + b1 * v_posed[b, c1, 2] + b2 * v_posed[b, c2, 2]
            out_means[b, n, 0] = p0 + r00 * m0 + r01 * m1 + r02 * m2
            out_means[b, n, 1] = p1 + r10 * m0 + r11 * m1 + r12 * m2
            out_means[b, n, 2] = p2 + r20 * m0 + r21 * m1 + r22 * m2
            out_rot[b, n, 0, 0], out_rot[b, n, 0, 1], out_rot[b, n, 0, 2] = r00, r01, r02
            out_rot[b, n, 1, 0], out_rot[b, n, 1, 1], out_rot[b, n, 1, 2] = r10, r11, r12
            out_rot[b, n, 2, 0], out_rot[b, n, 2, 1], out_rot[b, n, 2, 2] = r20, r21, r22
            inv = 1.0 / math.sqrt(max(sw * sw + sx * sx + sy * sy + sz * sz, 1e-20))
            sw, sx, sy, sz = sw * inv, sx * inv, sy * inv, sz * inv
            out_quats[b, n, 0] = sw * qw - sx * qx - sy * qy - sz * qz
            out_quats[b, n, 1] = sw * qx + sx * qw + sy * qz - sz * qy
            out_quats[b, n, 2] = sw * qy - sx * qz + sy * qw + sz * qx
            out_quats[b, n, 3] = sw * qz + sx * qy - sy * qx + sz * qw
            # Pose stretch: |F a_i| for the unposed Gaussian's axes a_i (columns of its rotation matrix).
            if slot >= 0:
                inv = 1.0 / math.sqrt(max(qw * qw + qx * qx + qy * qy + qz * qz, 1e-20))
                w, x, y, z = qw * inv, qx * inv, qy * inv, qz * inv
                f = grads[b, slot]
                for i in range(3):
                    if i == 0:
                        a0, a1, a2 = 1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)
                    elif i == 1:
                        a0, a1, a2 = 2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)
                    else:
                        a0, a1, a2 = 2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)
                    v0 = f[0, 0] * a0 + f[0, 1] * a1 + f[0, 2] * a2
                    v1 = f[1, 0] * a0 + f[1, 1] * a1 + f[1, 2] * a2
                    v2 = f[2, 0] * a0 + f[2, 1] * a1 + f[2, 2] * a2
                    stretch = min(max(0.5 * math.log(max(v0 * v0 + v1 * v1 + v2 * v2, 1e-12)), -max_log), max_log)
                    if i == 0:
                        l0 += stretch
                    elif i == 1:
                        l1 += stretch
                    else:
                        l2 += stretch
            out_logs[b, n, 0] = l0
            out_logs[b, n, 1] = l1
            out_logs[b, n, 2] = l2

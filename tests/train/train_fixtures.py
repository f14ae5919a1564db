"""A tiny stage-1 problem: an icosphere head with two expression bases and a jaw, and a tracked-clip dataset
rendered (with the differentiable torch splatter) from a re-coloured copy of the initial avatar."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from emo_backend.head.model import HeadModel

RADIUS = 0.1


def icosphere(subdivisions: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = (1 + math.sqrt(5)) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                p = verts[a] + verts[b]
                verts.append(p / np.linalg.norm(p))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return torch.tensor(np.stack(verts), dtype=torch.float32), torch.tensor(faces, dtype=torch.int64)


def tiny_head(subdivisions: int = 2) -> HeadModel:
    """An icosphere 'head' (radius 10 cm, face towards +Z): a brow-raise and a cheek-puff basis, a jaw."""
    v, f = icosphere(subdivisions)
    v = v * RADIUS
    x, y, z = v.unbind(-1)
    front = torch.clamp(z / RADIUS, min=0)
    exprdirs = torch.zeros(v.shape[0], 3, 2)
    exprdirs[:, 1, 0] = 0.012 * front * torch.exp(-((y - 0.05) ** 2) / 0.001)        # brows up
    exprdirs[:, :, 1] = 0.010 * (front * torch.exp(-((y + 0.01) ** 2) / 0.002))[:, None] * v / RADIUS  # puff
    joints_at = torch.tensor([[0, 0, 0], [0, -0.06, -0.01], [0, -0.02, 0.02], [0.03, 0.03, 0.07], [-0.03, 0.03, 0.07]])
    j_reg = torch.zeros(5, v.shape[0])
    j_reg[0] = 1.0 / v.shape[0]  # the sphere's centre
    for j in range(1, 5):
        j_reg[j, torch.cdist(joints_at[j][None], v)[0].argmin()] = 1.0
    jaw = ((y < -0.02) & (z > 0)).float()
    weights = torch.stack([torch.zeros_like(jaw), 1 - jaw, jaw, torch.zeros_like(jaw), torch.zeros_like(jaw)], -1)
    centres = (v[f].mean(1))
    front_faces = torch.nonzero(centres[:, 2] > 0.03)[:, 0]
    lm_faces = front_faces[torch.linspace(0, len(front_faces) - 1, 68).long()]
    return HeadModel(
        model_id="tiny-icosphere", v_template=v, faces=f, shapedirs=torch.zeros(v.shape[0], 3, 0), exprdirs=exprdirs,
        expr_names=("brow_raise", "cheek_puff"), j_regressor=j_reg, parents=torch.tensor([-1, 0, 1, 1, 1]),
        lbs_weights=weights, landmark_faces=lm_faces, landmark_bary=torch.full((68, 3), 1 / 3),
    )


def camera(size: int, yaw: float):
    from emo_backend.render.camera import intrinsics_from_fov, orbit_viewmat

    return intrinsics_from_fov(30.0, size, size), orbit_viewmat(yaw, 0.0, 0.6)


def target_avatar(avatar):
    """The 'real' subject: the initial avatar with a colour pattern and a little fatter Gaussians."""
    from emo_backend.avatar.blendshapes import neutral_means

    mu = neutral_means(avatar)
    colors = 0.5 + 0.35 * torch.stack([torch.sin(40 * mu[:, 0]), torch.cos(30 * mu[:, 1]), torch.sin(25 * mu[:, 2])], -1)
    return avatar.with_tensors(colors=colors, log_scales=avatar.log_scales + 0.15)


def make_dataset(root: Path, avatar, size: int = 40, frames: int = 6, masks: bool = True, seed: int = 0,
                 test_frames: int = 0, background=(0.2, 0.3, 0.4)) -> dict:
    """Render `frames` tracked frames of target_avatar(avatar) and write them as an EmoSplat dataset."""
    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.gaussians import activate
    from emo_backend.data.dataset import DatasetWriter
    from emo_backend.render import rasterize

    target = target_avatar(avatar)
    gen = torch.Generator().manual_seed(seed)
    bg = torch.tensor(background)
    clips = {"train": frames, "test": test_frames}
    truth = {}
    with DatasetWriter(root, head_model=avatar.head.model_id, expression_names=avatar.head.expr_names, fps=25,
                       resolution=(size, size)) as writer:
        for split, count in clips.items():
            if not count:
                continue
            expr = torch.rand(count, 2, generator=gen)
            pose = torch.zeros(count, 5, 3)
            pose[:, 0, 1] = (torch.rand(count, generator=gen) - 0.5) * 0.4
            pose[:, 2, 0] = torch.rand(count, generator=gen) * 0.2
            trans = torch.zeros(count, 3)
            Ks, views, images, alphas = [], [], [], []
            for i in range(count):
                K, view = camera(size, yaw=-15 + 30 * i / max(count - 1, 1))
                with torch.no_grad():
                    g, _ = evaluate(target, expr[i : i + 1], pose[i : i + 1], trans[i : i + 1])
                    a = activate(g.frame(0))
                    rgb, alpha, _ = rasterize(a.means, a.quats, a.scales, a.opacities, a.colors, view, K, size, size,
                                              backend="torch")
                images.append((rgb + (1 - alpha) * bg).clamp(0, 1).numpy())
                alphas.append(alpha[..., 0].numpy())
                Ks.append(K.numpy())
                views.append(view.numpy())
            tracking = {"expression": expr.numpy(), "pose": pose.numpy(), "translation": trans.numpy(),
                        "identity": np.zeros(1, np.float32), "K": np.stack(Ks), "viewmat": np.stack(views)}
            writer.add_clip(f"clip_{split}", identity="tiny", emotion="neutral", intensity=0.0, frames=images,
                            masks=[(al > 0.5).astype(np.float32) for al in alphas] if masks else None,
                            tracking=tracking, split=split)
            truth[split] = {"expression": expr, "pose": pose, "translation": trans, "K": torch.tensor(np.stack(Ks)),
                            "viewmat": torch.tensor(np.stack(views)), "images": np.stack(images)}
    return truth

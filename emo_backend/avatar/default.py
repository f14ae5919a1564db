"""Build the default avatar (assets/avatars/default) from the project's open head model.

    python -m emo_backend.avatar.default [--out DIR] [--num-gaussians N] [--seed S]

The default avatar is the untrained initialisation (stage "init"): Poisson-disk
Gaussians on the open head with deformation-gradient blendshape deltas. It is
deterministic for a seed, so it can be rebuilt instead of shipped.

Gaussians carry radiance, not albedo: an avatar trained from video has the
studio's lighting baked into its colours. The initialisation starts from the
head's albedo, so the default bakes a soft portrait light into it
(`bake_soft_light`): a key from the upper left, a fill from the right, a rim
from above-behind, and darker mouth interior. Without it the head reads flat.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from emo_backend.avatar.binding import PART_INDEX, face_normals, interpolate
from emo_backend.avatar.blendshapes import GaussianAvatar
from emo_backend.avatar.bundle import SOURCE_ASSETS, bundle_size_bytes, save_avatar
from emo_backend.avatar.init import init_avatar_from_head
from emo_backend.head.model import HeadModel

# Portrait lights in avatar space (+Y up, +Z out of the face): (direction towards the light, intensity).
SOFT_LIGHTS: tuple[tuple[tuple[float, float, float], float], ...] = (
    ((-0.55, 0.55, 0.63), 0.72),   # key: upper left of the subject's face (camera left)
    ((0.7, -0.15, 0.7), 0.28),     # fill: right, slightly low
    ((0.25, 0.6, -0.76), 0.25),    # rim: above and behind
)
AMBIENT = 0.38
# Light the mouth interior and eyes never get from outside (a cheap stand-in for occlusion).
PART_OCCLUSION = {"mouth_interior": 0.45, "upper_teeth": 0.88, "lower_teeth": 0.8, "tongue": 0.6, "eyeball": 0.95}

DEFAULT_NUM_GAUSSIANS = 36_000


def default_avatar_dir() -> Path:
    """<repo>/assets/avatars/default (the source checkout's asset folder)."""
    return SOURCE_ASSETS / "avatars" / "default"


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted smooth normals [V, 3]."""
    weighted = face_normals(vertices, faces, unit=False)  # length = 2 * area
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), weighted.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(normals, dim=-1)


def bake_soft_light(avatar: GaussianAvatar) -> GaussianAvatar:
    """Multiply each Gaussian's albedo by a soft portrait light evaluated at its anchor's smooth normal."""
    head = avatar.head
    normals = vertex_normals(head.v_template, head.faces)
    n = torch.nn.functional.normalize(interpolate(normals, head.faces, avatar.face_ids, avatar.bary), dim=-1)
    light = torch.full((avatar.num_gaussians,), AMBIENT)
    for direction, intensity in SOFT_LIGHTS:
        d = torch.nn.functional.normalize(torch.tensor(direction), dim=0)
        # Wrapped Lambert: skin scatters light past the terminator, so shadows stay soft.
        light = light + intensity * ((n @ d + 0.3) / 1.3).clamp_min(0)
    for part, occlusion in PART_OCCLUSION.items():
        light = torch.where(avatar.parts == PART_INDEX[part], torch.full_like(light, occlusion), light)
    return avatar.with_tensors(colors=(avatar.colors * light[:, None]).clamp(0, 1))


def build_default_avatar(
    out_dir: str | Path | None = None,
    num_gaussians: int = DEFAULT_NUM_GAUSSIANS,
    *,
    seed: int = 0,
    overwrite: bool = True,
    half: bool = True,
    head: HeadModel | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Build the default avatar and save it as a bundle; returns its path.

    The head is `build_open_head(seed, cache_dir)` unless one is given (tests
    pass the shipped bundle's head to skip the head build).
    """
    if head is None:
        from emo_backend.head.open_head.build import build_open_head

        head = build_open_head(seed=seed, cache_dir=cache_dir)
    avatar = bake_soft_light(init_avatar_from_head(head, num_gaussians, seed=seed))
    avatar.training = {**(avatar.training or {}), "built_by": "emo_backend.avatar.default.build_default_avatar",
                       "head_seed": seed, "lighting": "soft portrait light baked into the albedo"}
    return save_avatar(avatar, out_dir or default_avatar_dir(), overwrite=overwrite, half=half)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="bundle folder or .emosplat file (default: assets)")
    parser.add_argument("--num-gaussians", type=int, default=DEFAULT_NUM_GAUSSIANS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-precision", action="store_true", help="store deltas as float32, not float16")
    args = parser.parse_args(argv)
    path = build_default_avatar(args.out, args.num_gaussians, seed=args.seed, half=not args.full_precision)
    print(f"wrote {path} ({bundle_size_bytes(path) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

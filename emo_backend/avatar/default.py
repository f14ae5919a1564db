"""Build the default avatar (assets/avatars/default) from the project's open head model.

    python -m emo_backend.avatar.default [--out DIR] [--num-gaussians N] [--seed S]

The default avatar is the untrained initialisation (stage "init"): Poisson-disk
Gaussians on the open head with deformation-gradient blendshape deltas. It is
deterministic for a seed, so it can be rebuilt instead of shipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emo_backend.avatar.bundle import SOURCE_ASSETS, bundle_size_bytes, save_avatar
from emo_backend.avatar.init import init_avatar_from_head

DEFAULT_NUM_GAUSSIANS = 36_000


def default_avatar_dir() -> Path:
    """<repo>/assets/avatars/default (the source checkout's asset folder)."""
    return SOURCE_ASSETS / "avatars" / "default"


def build_default_avatar(
    out_dir: str | Path | None = None,
    num_gaussians: int = DEFAULT_NUM_GAUSSIANS,
    *,
    seed: int = 0,
    overwrite: bool = True,
    half: bool = True,
) -> Path:
    """Build the default avatar from `build_open_head(seed)` and save it as a bundle; returns its path."""
    from emo_backend.head.open_head.build import build_open_head

    head = build_open_head(seed=seed)
    avatar = init_avatar_from_head(head, num_gaussians, seed=seed)
    avatar.training = {**(avatar.training or {}), "built_by": "emo_backend.avatar.default.build_default_avatar",
                       "head_seed": seed}
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

"""The Gaussian avatar: neutral Gaussians, blendshape deltas, mesh binding, the bundle format.

    from emo_backend.avatar import load_avatar, evaluate
    avatar = load_avatar("default")                      # or a folder / .emosplat path
    gaussians, posed = evaluate(avatar, expression, pose)  # [B, E], [B, 5, 3] -> Gaussians [B, N, ...]
"""

from emo_backend.avatar.blendshapes import GaussianAvatar, blend, evaluate  # noqa: F401
from emo_backend.avatar.bundle import load_avatar, read_manifest, resolve_avatar_path, save_avatar  # noqa: F401
from emo_backend.avatar.gaussians import ActivatedGaussians, Gaussians, activate  # noqa: F401

"""From audio features and emotion to each frame's Gaussians: the path shots and stage-2 training share.

    A2ET(audio, neutral)  -> ψ_neu, θ_neu          A2ET(audio, keyed) -> ψ_emo, θ_emo
    blink curve           -> AU45 in both (A2ET cannot know when a person blinks)
    stage 1               -> Gaussians of (ψ_emo, θ_emo), posed mesh M_emo;  LBS(ψ_neu, θ_neu) -> M_neu
    stage 2 (EGD)         -> residual from ΔM = M_emo − M_neu, audio, emotion, intensity, blink

The geometry comes from ψ_emo through the blendshapes (what a linear model can
express), and EGD adds what it cannot. Without an EGD (stage 2 not trained)
the frame is stage 1's alone; without A2ET the caller supplies ψ and θ.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from emo_backend.avatar.blendshapes import GaussianAvatar, evaluate, neutral_means
from emo_backend.avatar.gaussians import Gaussians
from emo_backend.avatar.prepared import PreparedAvatar, delta_features_prepared, evaluate_prepared
from emo_backend.head.lbs import PosedHead, lbs
from emo_backend.head.model import JOINT_NAMES
from emo_backend.motion.a2et import A2ET
from emo_backend.motion.egd import EGD, apply_residual, delta_mesh_features
from emo_backend.motion.egd_fast import PreparedEGD, egd_residual

JAW = JOINT_NAMES.index("jaw")
NECK = JOINT_NAMES.index("neck")
NEUTRAL = 0  # index of "neutral" in the emotion space
AUDIO_HALF_WIDTH = 4  # EGD's audio tokens: the frame and 4 either side (±160 ms at 25 fps)


class ShotMotion(NamedTuple):
    expression_neu: Tensor  # [F, E]
    pose_neu: Tensor        # [F, J, 3]
    expression_emo: Tensor  # [F, E]
    pose_emo: Tensor        # [F, J, 3]
    blink: Tensor           # [F] AU45 in [0, 1]


def blink_channels(expr_names: tuple[str, ...]) -> list[int]:
    return [i for i, name in enumerate(expr_names) if name.startswith("AU45")]


def predict_motion(
    a2et: A2ET,
    features: Tensor,    # [F, Da]
    weights: Tensor,     # [F, 8]
    intensity: Tensor,   # [F]
    blink: Tensor,       # [F]
    expr_names: tuple[str, ...],
) -> ShotMotion:
    """A2ET twice (neutral and keyed condition), with the blink curve written into AU45."""
    frames = features.shape[0]
    neutral = torch.zeros(frames, weights.shape[-1])
    neutral[:, NEUTRAL] = 1
    m_neu = a2et.predict(features, neutral, torch.zeros(frames))
    m_emo = a2et.predict(features, weights, intensity)

    def assemble(motion) -> tuple[Tensor, Tensor]:
        expression = motion.expression.clone()
        expression[:, blink_channels(expr_names)] = blink[:, None]
        pose = torch.zeros(frames, len(JOINT_NAMES), 3)
        pose[:, JAW] = motion.jaw
        pose[:, NECK] = motion.neck
        return expression, pose

    e_neu, p_neu = assemble(m_neu)
    e_emo, p_emo = assemble(m_emo)
    return ShotMotion(e_neu, p_neu, e_emo, p_emo, blink)


def audio_windows(features: Tensor, frames: Tensor, half_width: int) -> Tensor:
    """features [F, Da], frame indices [B] -> [B, 2*half_width + 1, Da], clamped at the clip ends."""
    offsets = torch.arange(-half_width, half_width + 1)
    index = (frames[:, None] + offsets[None]).clamp(0, features.shape[0] - 1)
    return features[index]


def skin_rotations(avatar: GaussianAvatar, posed: PosedHead) -> Tensor:
    """Each Gaussian's blended skinning rotation [B, N, 3, 3] (turns avatar-space offsets with the head)."""
    return torch.einsum("nj,bjrc->bnrc", avatar.skin_weights, posed.transforms[..., :3, :3])


def frame_gaussians(
    avatar: GaussianAvatar,
    egd: EGD | None,
    expression_emo: Tensor,        # [B, E]
    pose_emo: Tensor,              # [B, J, 3]
    expression_neu: Tensor,        # [B, E]
    pose_neu: Tensor,              # [B, J, 3]
    blink: Tensor,                 # [B]
    audio_window: Tensor,          # [B, T, Da]
    weights: Tensor,               # [B, 8]
    intensity: Tensor,             # [B]
    translation: Tensor | None = None,  # [B, 3]
    prepared: PreparedAvatar | None = None,
    prepared_egd: PreparedEGD | None = None,
) -> tuple[Gaussians, PosedHead]:
    """Avatar-space Gaussians [B, N] of each frame: stage 1 at ψ_emo plus stage 2's residual.

    For rendering, pass `prepared` (`avatar.prepared.prepare_avatar(avatar)`)
    and `prepared_egd` (`motion.egd_fast.prepare_egd(egd, prepared.neutral_means)`):
    the same result from the inference fast paths (no gradients).
    """
    if prepared is not None:
        gaussians, posed, rotation = evaluate_prepared(prepared, expression_emo, pose_emo, translation)
    else:
        gaussians, posed = evaluate(avatar, expression_emo, pose_emo, translation)
        rotation = None
    if egd is None and prepared_egd is None:
        return gaussians, posed
    gaussians = add_emotional_residual(avatar, egd, gaussians, posed, expression_neu, pose_neu, blink, audio_window,
                                       weights, intensity, translation, prepared, rotation, prepared_egd)
    return gaussians, posed


def add_emotional_residual(
    avatar: GaussianAvatar,
    egd: EGD | None,
    gaussians: Gaussians,          # [B, N] stage 1 at (ψ_emo, θ_emo)
    posed: PosedHead,              # the emotional mesh M_emo that drove them
    expression_neu: Tensor,        # [B, E]
    pose_neu: Tensor,              # [B, J, 3]
    blink: Tensor,                 # [B]
    audio_window: Tensor,          # [B, T, Da]
    weights: Tensor,               # [B, 8]
    intensity: Tensor,             # [B]
    translation: Tensor | None = None,        # [B, 3]
    prepared: PreparedAvatar | None = None,   # cached μ0 and triangle corners of `avatar`
    rotation: Tensor | None = None,           # [B, N, 3, 3] skin rotations when already known (else computed)
    prepared_egd: PreparedEGD | None = None,  # `egd` prepared for inference (used instead of it when given)
) -> Gaussians:
    """Stage 2: EGD's residual from ΔM = M_emo − M_neu, audio, emotion, intensity and blink, added to stage 1."""
    head = avatar.head
    neutral_mesh = lbs(head, expression_neu, pose_neu, translation=translation).vertices
    delta_vertices = posed.vertices - neutral_mesh
    if prepared is not None:
        delta = delta_features_prepared(prepared, delta_vertices)
    else:
        delta = delta_mesh_features(delta_vertices, head.faces, avatar.face_ids, avatar.bary)
    if prepared_egd is not None:
        residual = egd_residual(prepared_egd, delta, blink, audio_window, weights, intensity)
    else:
        canonical = neutral_means(avatar) if prepared is None else prepared.neutral_means
        residual = egd(delta, canonical, blink, audio_window, weights, intensity)
    return apply_residual(gaussians, residual, skin_rotations(avatar, posed) if rotation is None else rotation)

"""The rig test: the avatar through a slow head turn, jaw, a blink and every expression basis in turn.

It is what `emosplat preview` renders, and the quickest way to see whether an
avatar (the default or one a studio trained) is rigged and bound correctly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from emo_backend.head.model import JOINT_NAMES

NECK = JOINT_NAMES.index("neck")
JAW = JOINT_NAMES.index("jaw")


@dataclass(frozen=True)
class RigTest:
    expression: Tensor   # [F, E]
    pose: Tensor         # [F, J, 3] axis-angle
    labels: list[str]    # [F] what each frame shows


def _odd(frames: float) -> int:
    """An odd frame count >= 3, so a bump's middle frame shows the full value."""
    return max(3, int(round(frames)) | 1)


def _bump(num_frames: int) -> Tensor:
    """0 -> 1 -> 0 over `num_frames` (1 exactly at the middle frame when the count is odd). [F]"""
    t = torch.linspace(0, 1, num_frames)
    return torch.sin(math.pi * t) ** 2


def rig_test_timeline(
    expr_names: tuple[str, ...],
    fps: float = 25.0,
    turn_seconds: float = 4.0,
    jaw_seconds: float = 1.6,
    blink_seconds: float = 0.6,
    seconds_per_basis: float = 0.48,
    max_yaw_deg: float = 35.0,
    jaw_open_rad: float = 0.3,
) -> RigTest:
    """Per-frame expression and pose of the rig test; total length is at least 6 s for any avatar."""
    num_expr = len(expr_names)
    expressions, poses, labels = [], [], []

    def segment(frames: int, label: str) -> tuple[Tensor, Tensor]:
        e = torch.zeros(frames, num_expr)
        p = torch.zeros(frames, len(JOINT_NAMES), 3)
        expressions.append(e)
        poses.append(p)
        labels.extend([label] * frames)
        return e, p

    # Slow head turn: right, left, back to centre, with a slight nod, about the neck.
    n = round(turn_seconds * fps)
    _, p = segment(n, "head turn")
    t = torch.linspace(0, 1, n)
    p[:, NECK, 1] = math.radians(max_yaw_deg) * torch.sin(2 * math.pi * t)
    p[:, NECK, 0] = math.radians(6.0) * torch.sin(4 * math.pi * t)

    n = _odd(jaw_seconds * fps)
    _, p = segment(n, "jaw open / close")
    p[:, JAW, 0] = jaw_open_rad * _bump(n)

    blink = [i for i, name in enumerate(expr_names) if name.startswith("AU45")]
    if blink:
        n = _odd(blink_seconds * fps)
        e, _ = segment(n, "blink (AU45)")
        e[:, blink] = _bump(n)[:, None]

    n = _odd(seconds_per_basis * fps)
    for k, name in enumerate(expr_names):
        e, _ = segment(n, f"expression {k}: {name}")
        e[:, k] = _bump(n)

    return RigTest(torch.cat(expressions), torch.cat(poses), labels)

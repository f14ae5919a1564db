"""Anatomical layout of the open head: where the eyes, mouth, nose and joints are.

One frozen table of numbers (metres, avatar space: +Y up, +Z out of the face,
+X the subject's left, origin midway between the ear canals) that the
geometry, rig, expressions, landmarks and appearance all read, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Anatomy:
    # Eyes (left eye at +X; the right one mirrored).
    eye_x: float = 0.0315
    eye_y: float = 0.012
    eye_z: float = 0.0695
    eye_radius: float = 0.0120
    lid_gap: float = 0.0016          # lid skin thickness over the eyeball
    iris_radius: float = 0.0058
    pupil_radius: float = 0.0021
    fissure_inner_x: float = 0.0165  # inner eye corner |x|
    fissure_outer_x: float = 0.0455  # outer eye corner |x|
    lid_upper_open: float = 0.0046   # upper lid edge above the slit at its peak
    lid_lower_open: float = 0.0044   # lower lid edge below the slit at its lowest
    # Mouth.
    mouth_y: float = -0.0585
    mouth_z: float = 0.0955          # lip line at the midline
    mouth_corner_x: float = 0.0245
    mouth_corner_z: float = 0.0805
    arch_radius: float = 0.040       # curvature of lips and teeth in plan view
    # Nose.
    nose_tip_y: float = -0.027
    nose_tip_z: float = 0.1155
    # Joints.
    jaw_joint_y: float = -0.006
    jaw_joint_z: float = 0.006
    neck_joint_y: float = -0.050
    neck_joint_z: float = -0.016
    root_joint_y: float = -0.150
    # Ears (left at +X): centre, and how far each turns its face forwards (rad).
    ear_x: float = 0.0805
    ear_y: float = 0.004
    ear_z: float = -0.013
    ear_yaw: float = 0.36
    # Extents.
    neck_bottom_y: float = -0.185
    hairline_y: float = 0.080


ANATOMY = Anatomy()


def upper_lip_border(x, corner_x: float):
    """Height of the upper lip's vermilion border (with the cupid's bow) above |x| (numpy array)."""
    import numpy as np

    ax = np.abs(x)
    t = np.clip(ax / corner_x, 0.0, 1.0)
    base = 0.0078 * np.clip(1 - t**2.3, 0, 1) ** 0.65
    bow = 0.0010 * np.exp(-(((ax - 0.0055) / 0.0040) ** 2)) - 0.0008 * np.exp(-((ax / 0.0026) ** 2))
    return ANATOMY.mouth_y + base + bow * (1 - t)


def lower_lip_border(x, corner_x: float):
    """Height of the lower lip's vermilion border below |x| (numpy array)."""
    import numpy as np

    t = np.clip(np.abs(x) / corner_x, 0.0, 1.0)
    return ANATOMY.mouth_y - 0.0102 * np.clip(1 - t**2, 0, 1) ** 0.7


def brow_line(x):
    """Height of the middle of the eyebrow over |x| (numpy array), and its half thickness."""
    import numpy as np

    t = np.clip((np.abs(x) - 0.013) / 0.040, 0.0, 1.0)
    y = 0.0300 + 0.0062 * np.sin(np.pi * t**0.75) - 0.0015 * t
    half = 0.0027 * (1 - 0.5 * t)
    return y, half

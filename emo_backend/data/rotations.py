"""Rotation conversions the importers need (numpy, float64 inside, float32 out)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def rotation_6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """6D rotations [..., 6] (Zhou et al. 2019) -> rotation matrices [..., 3, 3].

    PyTorch3D's convention, the one metrical-tracker writes: the 6 numbers are the
    first two ROWS of the matrix (`matrix[..., :2, :]`); Gram-Schmidt restores
    orthonormality and the third row is their cross product.
    """
    d6 = np.asarray(d6, np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-12)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def matrix_to_rotation_6d(matrix: np.ndarray) -> np.ndarray:
    """Inverse of `rotation_6d_to_matrix`: [..., 3, 3] -> [..., 6] (first two rows)."""
    matrix = np.asarray(matrix)
    return matrix[..., :2, :].reshape(matrix.shape[:-2] + (6,))


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> axis-angle [..., 3] (angle in radians = vector length)."""
    matrix = np.asarray(matrix, np.float64)
    flat = matrix.reshape(-1, 3, 3)
    rotvec = Rotation.from_matrix(flat).as_rotvec() if len(flat) else np.zeros((0, 3))
    return rotvec.reshape(matrix.shape[:-2] + (3,)).astype(np.float32)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3]."""
    axis_angle = np.asarray(axis_angle, np.float64)
    flat = axis_angle.reshape(-1, 3)
    mats = Rotation.from_rotvec(flat).as_matrix() if len(flat) else np.zeros((0, 3, 3))
    return mats.reshape(axis_angle.shape[:-1] + (3, 3))


def rotation_6d_to_axis_angle(d6: np.ndarray) -> np.ndarray:
    return matrix_to_axis_angle(rotation_6d_to_matrix(d6))

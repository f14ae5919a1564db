"""Head models with FLAME's structure: the FLAME loader and the project's own open head."""

from emo_backend.head.model import HeadModel, JOINT_NAMES  # noqa: F401

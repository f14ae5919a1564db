"""Evaluation outputs: a JSON report (atomic) and a side-by-side video: ground truth | render | error heat map."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from emo_backend.files.atomic import write_text_atomic

# A perceptually ordered black → purple → orange → yellow ramp (inferno-like), 5 stops, linearly interpolated.
_HEAT_STOPS = np.array([[0.0, 0.0, 0.02], [0.34, 0.06, 0.43], [0.73, 0.21, 0.33], [0.98, 0.55, 0.04],
                        [0.99, 1.0, 0.64]], dtype=np.float32)


def _json_safe(value):
    """NaN/inf -> None (JSON has no NaN), numpy/torch scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(path: str | os.PathLike, report: dict) -> Path:
    """Write `report` as indented JSON atomically (NaN becomes null); returns the path."""
    path = Path(path)
    write_text_atomic(path, json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n")
    return path


def error_heatmap(pred: np.ndarray, gt: np.ndarray, max_error: float = 0.25) -> np.ndarray:
    """Mean absolute RGB error [H, W] of float images in [0, 1], mapped to colours [H, W, 3] (max_error = top)."""
    err = np.abs(pred.astype(np.float32) - gt.astype(np.float32)).mean(-1)
    t = np.clip(err / max_error, 0, 1) * (len(_HEAT_STOPS) - 1)
    lo = np.floor(t).astype(int).clip(0, len(_HEAT_STOPS) - 2)
    frac = (t - lo)[..., None]
    return _HEAT_STOPS[lo] * (1 - frac) + _HEAT_STOPS[lo + 1] * frac


def side_by_side(gt: np.ndarray, pred: np.ndarray, max_error: float = 0.25) -> np.ndarray:
    """One video frame uint8 [H', 3W', 3]: ground truth | render | error heat map (padded to even sizes)."""
    gt = np.clip(np.asarray(gt, np.float32), 0, 1)
    pred = np.clip(np.asarray(pred, np.float32), 0, 1)
    row = np.concatenate([gt, pred, error_heatmap(pred, gt, max_error)], axis=1)
    h, w = row.shape[:2]
    row = np.pad(row, ((0, h % 2), (0, w % 2), (0, 0)))
    return (row * 255 + 0.5).astype(np.uint8)


def write_side_by_side_video(
    path: str | os.PathLike,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],  # (ground truth, render) float [H, W, 3] in [0, 1]
    fps: float,
    max_error: float = 0.25,
) -> int:
    """Write the side-by-side MP4 (atomic, H.264); returns the number of frames."""
    from emo_backend.files.video import mp4_writer

    iterator = iter(pairs)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no frames to write")
    frame = side_by_side(*first, max_error=max_error)
    count = 0
    with mp4_writer(path, fps, frame.shape[1], frame.shape[0]) as write:
        write(frame)
        count += 1
        for gt, pred in iterator:
            write(side_by_side(gt, pred, max_error=max_error))
            count += 1
    return count

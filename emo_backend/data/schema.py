"""The tracked-clip dataset format: `dataset.json` and the per-clip tracking arrays, validated.

Layout of a dataset folder (docs/dataset-format.md has the full description):

    dataset.json                 this module's DatasetInfo
    audio/<clip>.wav             speech, mono or stereo, any rate (optional per clip)
    frames/<clip>/<nnnn>.png     RGB frames, frame n of the clip, 4-digit zero padded
    masks/<clip>/<nnnn>.png      optional foreground masks (8-bit grey, 255 = head)
    tracking/<clip>.npz          per-frame tracking (TRACKING_FIELDS), absent while awaiting tracking

Everything that reads these files goes through `parse_dataset_json` and
`validate_tracking`, which name the clip, frame and field at fault.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emo_backend.emotion.space import EMOTIONS  # DESIGN.md's order of the eight MEAD categories
from emo_backend.errors import InvalidFileError
from emo_backend.head.model import JOINT_NAMES

FORMAT = "emosplat-dataset"
VERSION = 1

SPLITS: tuple[str, ...] = ("train", "test")

TRACKED = "tracked"
AWAITING_TRACKING = "awaiting-tracking"
TRACKING_STATES = (TRACKED, AWAITING_TRACKING)

_CLIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# name -> (shape with symbolic dims, required). F frames, E expressions, S identity, J joints.
TRACKING_FIELDS: dict[str, tuple[tuple, bool]] = {
    "expression": (("F", "E"), True),
    "pose": (("F", len(JOINT_NAMES), 3), True),   # axis-angle per joint, JOINT_NAMES order
    "translation": (("F", 3), True),
    "identity": (("S",), True),
    "K": (("F?", 3, 3), True),                     # [F, 3, 3] or [3, 3] (one camera for the clip)
    "viewmat": (("F?", 4, 4), True),               # OpenCV world-to-camera
    "landmarks2d": (("F", 68, 2), False),          # pixels, iBUG 68 layout
    "blink": (("F", 2), False),                    # eyelid closure (left, right), 0 open .. 1 closed
}


def frame_name(index: int) -> str:
    return f"{index:04d}.png"


@dataclass
class ClipInfo:
    id: str
    identity: str
    emotion: str
    intensity: float
    num_frames: int
    audio: str | None = None          # relative path, e.g. "audio/<id>.wav"
    tracking: str = TRACKED           # TRACKED or AWAITING_TRACKING
    has_masks: bool = False
    text: str | None = None           # what is said, when known
    source: dict[str, Any] = field(default_factory=dict)  # provenance (importer, original paths)

    @property
    def emotion_index(self) -> int:
        return EMOTIONS.index(self.emotion)


@dataclass
class DatasetInfo:
    head_model: str
    expression_names: tuple[str, ...]
    fps: float
    resolution: tuple[int, int]       # (width, height) of every frame
    identities: list[str] = field(default_factory=list)
    clips: dict[str, ClipInfo] = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        awaiting = [c.id for c in self.clips.values() if c.tracking == AWAITING_TRACKING]
        return {
            "format": FORMAT,
            "version": VERSION,
            "description": self.description,
            "head_model": self.head_model,
            "expression_names": list(self.expression_names),
            "fps": self.fps,
            "resolution": list(self.resolution),
            "identities": list(self.identities),
            "splits": {s: list(self.splits.get(s, [])) for s in SPLITS},
            "awaiting_tracking": awaiting,
            "clips": [asdict(c) for c in self.clips.values()],
        }

    def clip_split(self, clip_id: str) -> str:
        for name, ids in self.splits.items():
            if clip_id in ids:
                return name
        raise KeyError(clip_id)


def _bad(path: Path, where: str, problem: str, fix: str = "") -> InvalidFileError:
    tail = f"; {fix}" if fix else ""
    return InvalidFileError(f"{path}: {where}: {problem}{tail}")


def check_clip_id(clip_id: Any) -> str:
    if not isinstance(clip_id, str) or not _CLIP_ID.match(clip_id):
        raise ValueError(
            f"clip id {clip_id!r} is not usable as a file name: use letters, digits, '_', '-', '.' (max 128)"
        )
    return clip_id


def parse_dataset_json(path: Path) -> DatasetInfo:
    """Read and validate `dataset.json`; every problem names the field (and clip) at fault."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: not found; a dataset folder needs a dataset.json (see docs/dataset-format.md)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidFileError(f"{path}: not valid JSON ({err}); restore it or re-run the import") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _bad(path, "format", f"expected {FORMAT!r}, got {raw.get('format') if isinstance(raw, dict) else raw!r}",
                   "this is not an EmoSplat dataset")
    if raw.get("version") != VERSION:
        raise _bad(path, "version", f"version {raw.get('version')!r} is not supported (this EmoSplat reads {VERSION})",
                   "update EmoSplat or re-import the data")

    def need(obj: dict, key: str, kind, where: str):
        if key not in obj:
            raise _bad(path, where, f"missing field {key!r}")
        value = obj[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise _bad(path, f"{where}.{key}" if where != "top level" else key,
                       f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
        return value

    top = "top level"
    head_model = need(raw, "head_model", str, top)
    expr_names = need(raw, "expression_names", list, top)
    if not expr_names or not all(isinstance(n, str) for n in expr_names):
        raise _bad(path, "expression_names", "must be a non-empty list of strings")
    fps = need(raw, "fps", float, top)
    if not (math.isfinite(fps) and fps > 0):
        raise _bad(path, "fps", f"must be positive, got {fps}")
    res = need(raw, "resolution", list, top)
    if len(res) != 2 or not all(isinstance(v, int) and v > 0 for v in res):
        raise _bad(path, "resolution", f"must be [width, height] in pixels, got {res}")
    identities = need(raw, "identities", list, top)
    if not all(isinstance(i, str) and i for i in identities) or len(set(identities)) != len(identities):
        raise _bad(path, "identities", "must be a list of distinct non-empty strings")

    info = DatasetInfo(head_model, tuple(expr_names), fps, (res[0], res[1]), list(identities),
                       description=str(raw.get("description", "")))
    for n, c in enumerate(need(raw, "clips", list, top)):
        where = f"clips[{n}]"
        if not isinstance(c, dict):
            raise _bad(path, where, "must be an object")
        clip_id = need(c, "id", str, where)
        try:
            check_clip_id(clip_id)
        except ValueError as err:
            raise _bad(path, f"{where}.id", str(err)) from None
        where = f"clip {clip_id!r}"
        if clip_id in info.clips:
            raise _bad(path, where, "appears twice", "clip ids must be unique")
        identity = need(c, "identity", str, where)
        if identity not in info.identities:
            raise _bad(path, f"{where}.identity", f"{identity!r} is not listed in 'identities'")
        emotion = need(c, "emotion", str, where)
        if emotion not in EMOTIONS:
            raise _bad(path, f"{where}.emotion", f"{emotion!r} is not one of {', '.join(EMOTIONS)}")
        intensity = need(c, "intensity", float, where)
        if not 0.0 <= intensity <= 1.0:
            raise _bad(path, f"{where}.intensity", f"must be in [0, 1], got {intensity}")
        num_frames = need(c, "num_frames", int, where)
        if num_frames <= 0:
            raise _bad(path, f"{where}.num_frames", f"must be positive, got {num_frames}")
        audio = c.get("audio")
        if audio is not None and (not isinstance(audio, str) or Path(audio).is_absolute() or ".." in Path(audio).parts):
            raise _bad(path, f"{where}.audio", f"must be a path inside the dataset folder or null, got {audio!r}")
        tracking = c.get("tracking", TRACKED)
        if tracking not in TRACKING_STATES:
            raise _bad(path, f"{where}.tracking", f"must be one of {TRACKING_STATES}, got {tracking!r}")
        text = c.get("text")
        source = c.get("source", {})
        info.clips[clip_id] = ClipInfo(
            clip_id, identity, emotion, float(intensity), num_frames, audio, tracking,
            bool(c.get("has_masks", False)), text if isinstance(text, str) else None,
            source if isinstance(source, dict) else {},
        )

    splits = need(raw, "splits", dict, top)
    seen: dict[str, str] = {}
    info.splits = {}
    for name in SPLITS:
        ids = splits.get(name, [])
        if not isinstance(ids, list):
            raise _bad(path, f"splits.{name}", "must be a list of clip ids")
        for clip_id in ids:
            if clip_id not in info.clips:
                raise _bad(path, f"splits.{name}", f"names unknown clip {clip_id!r}")
            if clip_id in seen:
                raise _bad(path, f"splits.{name}", f"clip {clip_id!r} is also in split {seen[clip_id]!r}")
            seen[clip_id] = name
        info.splits[name] = list(ids)
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise _bad(path, "splits", f"unknown split(s) {sorted(unknown)}; use {SPLITS}")
    orphans = [c for c in info.clips if c not in seen]
    if orphans:
        raise _bad(path, "splits", f"clip(s) {orphans[:5]} are in no split", "add each clip to 'train' or 'test'")
    return info


def validate_tracking(
    arrays: dict[str, np.ndarray], *, path: Path, clip_id: str, num_frames: int, num_expressions: int
) -> dict[str, np.ndarray]:
    """Check one clip's tracking arrays; return them as float32 with K/viewmat broadcast to [F, ...].

    Problems name the clip, the field and (for bad values) the first frame at fault.
    """
    where = f"clip {clip_id!r}"
    unknown = set(arrays) - set(TRACKING_FIELDS)
    if unknown:
        raise _bad(path, where, f"unknown field(s) {sorted(unknown)}; known: {', '.join(TRACKING_FIELDS)}")
    dims = {"F": num_frames, "E": num_expressions}
    out: dict[str, np.ndarray] = {}
    for name, (shape, required) in TRACKING_FIELDS.items():
        if name not in arrays:
            if required:
                raise _bad(path, where, f"missing field {name!r}", "re-run the tracker or importer for this clip")
            continue
        a = np.asarray(arrays[name])
        if a.dtype.kind not in "fiu":
            raise _bad(path, f"{where} field {name!r}", f"dtype {a.dtype} is not numeric")
        if shape[0] == "F?" and a.ndim == len(shape) - 1:
            a = np.broadcast_to(a, (num_frames,) + a.shape)
        expected = []
        for d in shape:
            if d == "F?":
                d = "F"
            if isinstance(d, str) and d not in dims:
                dims[d] = a.shape[len(expected)] if a.ndim > len(expected) else -1
            expected.append(dims[d] if isinstance(d, str) else d)
        if a.shape != tuple(expected):
            sym = "x".join(str(d).replace("F?", "F") for d in shape)
            raise _bad(path, f"{where} field {name!r}", f"shape {list(a.shape)} should be [{sym}] = {expected}")
        a = a.astype(np.float32)
        finite = np.isfinite(a).reshape(a.shape[0], -1).all(1) if a.ndim > 1 and shape[0] in ("F", "F?") else None
        if finite is not None and not finite.all():
            raise _bad(path, f"{where} frame {int(np.argmin(finite))} field {name!r}", "holds NaN or infinity")
        if finite is None and not np.isfinite(a).all():
            raise _bad(path, f"{where} field {name!r}", "holds NaN or infinity")
        out[name] = a

    view = out["viewmat"]
    rot = view[:, :3, :3]
    ortho_err = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).reshape(num_frames, -1).max(1)
    bottom_err = np.abs(view[:, 3] - np.array([0, 0, 0, 1], np.float32)).max(1)
    bad = np.flatnonzero((ortho_err > 1e-3) | (np.linalg.det(rot) < 0) | (bottom_err > 1e-6))
    if bad.size:
        raise _bad(path, f"{where} frame {int(bad[0])} field 'viewmat'",
                   "is not a rigid world-to-camera transform (rotation must be orthonormal, det +1, last row 0 0 0 1)")
    K = out["K"]
    bad = np.flatnonzero((K[:, 0, 0] <= 0) | (K[:, 1, 1] <= 0) | (np.abs(K[:, 2] - np.array([0, 0, 1])).max(1) > 1e-6))
    if bad.size:
        raise _bad(path, f"{where} frame {int(bad[0])} field 'K'",
                   "is not a pinhole intrinsics matrix (positive focal lengths, last row 0 0 1)")
    return out

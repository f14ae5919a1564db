"""One shot: a JSON spec in, an RGBA PNG and a depth EXR per frame out (docs/shot-spec.md).

The Blender add-on writes the spec (cameras already converted to OpenCV, the
avatar object's matrix already composed with the avatar-space axis change);
`emosplat render --shot spec.json` runs the same spec without Blender.

Per frame, with `motion` "a2et" (the default whenever A2ET weights and audio
are there): the audio's features and the frame's emotion (8 weights +
intensity) drive A2ET twice (neutral and keyed), blink goes on AU45, stage 1
evaluates the Gaussian blendshapes and stage 2 (the avatar's EGD, when it has
one) adds the emotional residual (`motion.pipeline`). With `motion` "recipe"
(or no audio / no A2ET) the FACS emotion recipe gives expression and jaw, with
no lip sync. Either way the avatar-space Gaussians are moved into the scene by
the avatar matrix and splatted with the frame's camera.

Frames already on disk whose inputs are unchanged are skipped (a rerun
continues an interrupted render; changing a key re-renders only the frames it
changes). The record of what each frame was rendered from lives in
`<stem>_frames.json` beside the frames.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emo_backend.errors import EmoSplatError, InvalidFileError

SPEC_VERSION = 1
NUM_EMOTIONS = 8  # DESIGN.md's order: neutral, angry, contempt, disgusted, fear, happy, sad, surprised
FORMATS = ("png",)
RENDER_BACKENDS = ("auto", "gsplat", "cpu", "torch")
MOTION_SOURCES = ("auto", "a2et", "recipe")
DEVICES = ("auto", "cpu", "cuda")
MAX_RESOLUTION = 16384
ALPHA_EPS = 1.0 / 512.0  # below this coverage a pixel is empty: colour 0, depth +inf
CHUNK_FRAMES = 8         # frames evaluated per batch: bounded memory, fewer kernel launches


class ShotSpecError(EmoSplatError):
    """A shot spec field is missing or wrong; the message names the field."""


@dataclass(frozen=True)
class ShotSpec:
    """A validated shot. Per-frame arrays have F = frame_end - frame_start + 1 rows."""

    fps: float
    frame_start: int
    frame_end: int
    width: int
    height: int
    weights: np.ndarray         # [F, 8] float32, non-negative
    intensity: np.ndarray       # [F] float32 in [0, 1]
    blink: np.ndarray | None    # [F] float32 in [0, 1] (1 = eyes closed), or None for automatic blinks
    K: np.ndarray               # [F, 3, 3] float64, pixels, OpenCV
    viewmat: np.ndarray         # [F, 4, 4] float64, world -> OpenCV camera
    avatar_matrix: np.ndarray   # [F, 4, 4] float64, avatar space -> world
    avatar: str                 # "default" or a bundle path
    output_dir: Path
    stem: str = "avatar"
    format: str = "png"
    audio: Path | None = None
    backend: str = "auto"
    device: str = "auto"
    seed: int = 0
    motion: str = "auto"        # "auto" (A2ET when weights and audio exist), "a2et" or "recipe"
    extra: dict = field(default_factory=dict)  # unknown top-level keys, kept for round trips

    @property
    def num_frames(self) -> int:
        return self.frame_end - self.frame_start + 1

    @property
    def frames(self) -> range:
        return range(self.frame_start, self.frame_end + 1)

    def image_path(self, frame: int) -> Path:
        return self.output_dir / f"{self.stem}_{frame:04d}.{self.format}"

    def depth_path(self, frame: int) -> Path:
        # A separate stem (not <stem>_<frame>_depth) so both are plain numbered sequences Blender can load.
        return self.output_dir / f"{self.stem}_depth_{frame:04d}.exr"

    @property
    def record_path(self) -> Path:
        return self.output_dir / f"{self.stem}_frames.json"


@dataclass
class ShotResult:
    frames: list[int]          # frames on disk now (rendered or skipped), in order
    rendered: list[int]
    skipped: list[int]
    cancelled: bool = False
    backend: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "rendered": len(self.rendered), "skipped": len(self.skipped),
                "cancelled": self.cancelled, "backend": self.backend, "seconds": round(self.seconds, 3)}


# ---------------------------------------------------------------------------------------------- validation


def _fail(field_name: str, problem: str) -> ShotSpecError:
    return ShotSpecError(f"shot spec field '{field_name}': {problem}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(name, f"expected a finite number, got {value!r:.80}")
    return float(value)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"expected an integer, got {value!r:.80}")
    return value


def _array(value: Any, name: str, tail: tuple[int, ...], frames: int, dtype=np.float64) -> np.ndarray:
    """A per-frame field: one value of shape `tail` (held for the whole shot) or F of them -> [F, *tail]."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise _fail(name, f"expected numbers of shape {list(tail)} or [{frames}, {', '.join(map(str, tail))}]") from None
    if arr.shape == tail:
        arr = np.broadcast_to(arr, (frames, *tail)).copy()
    if arr.shape != (frames, *tail):
        per = f"[{frames}, {', '.join(map(str, tail))}]" if tail else f"[{frames}]"
        one = f"{list(tail)}" if tail else "a single number"
        raise _fail(name, f"has shape {list(arr.shape)}; expected {one} for the whole shot or {per} (one per frame)")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr.reshape(frames, -1)))[0, 0])
        raise _fail(name, f"frame index {bad} holds NaN or infinity")
    return arr


def _check_affine(mats: np.ndarray, name: str, frame_start: int) -> None:
    bottom = np.array([0.0, 0.0, 0.0, 1.0])
    for i, m in enumerate(mats):
        if not np.allclose(m[3], bottom, atol=1e-6):
            raise _fail(name, f"frame {frame_start + i}: last row must be [0, 0, 0, 1], got {m[3].tolist()}")


def _check_avatar_matrix(mats: np.ndarray, frame_start: int) -> None:
    _check_affine(mats, "avatar_matrix", frame_start)
    sv = np.linalg.svd(mats[:, :3, :3], compute_uv=False)  # [F, 3]
    det = np.linalg.det(mats[:, :3, :3])
    for i in range(len(mats)):
        if det[i] <= 0 or sv[i, 2] <= 1e-9:
            raise _fail("avatar_matrix", f"frame {frame_start + i}: the avatar object is mirrored or flattened "
                        "(negative or zero scale); give it a positive scale")
        if sv[i, 0] - sv[i, 2] > 1e-3 * sv[i, 0]:
            raise _fail("avatar_matrix", f"frame {frame_start + i}: the avatar object has a non-uniform scale "
                        f"{np.round(sv[i], 4).tolist()}; Gaussians need one uniform scale (set X, Y and Z equal)")


def _check_cameras(K: np.ndarray, viewmat: np.ndarray, frame_start: int) -> None:
    _check_affine(viewmat, "camera.viewmat", frame_start)
    for i, k in enumerate(K):
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.allclose(k[2], [0, 0, 1]) or k[1, 0] != 0 or k[2, 0] != 0:
            raise _fail("camera.K", f"frame {frame_start + i}: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                        f"with fx, fy > 0, got {k.tolist()}")
        rot = viewmat[i, :3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
            raise _fail("camera.viewmat", f"frame {frame_start + i}: the rotation part is not a rotation "
                        "(a camera with scale or shear?); apply the camera's scale or reset it to 1")


def _resolve_path(value: Any, name: str, base_dir: Path | None) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(name, f"expected a path string, got {value!r:.80}")
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def parse_shot_spec(data: Any, base_dir: str | os.PathLike | None = None) -> ShotSpec:
    """Validate a decoded spec (dict) -> ShotSpec. Relative paths resolve against `base_dir`."""
    base = Path(base_dir) if base_dir is not None else None
    if not isinstance(data, dict):
        raise ShotSpecError("shot spec must be a JSON object")
    known = {"version", "fps", "frame_range", "resolution", "audio", "emotion", "blink", "camera",
             "avatar_matrix", "avatar", "output", "backend", "device", "seed", "motion"}
    for required in ("version", "fps", "frame_range", "resolution", "emotion", "camera", "output"):
        if required not in data:
            raise _fail(required, "is missing (see docs/shot-spec.md)")
    if data["version"] != SPEC_VERSION:
        raise _fail("version", f"this backend reads version {SPEC_VERSION}, the spec is {data['version']!r}; "
                    "update the add-on and the backend together")
    fps = _number(data["fps"], "fps")
    if not 0 < fps <= 1000:
        raise _fail("fps", f"must be in (0, 1000], got {fps}")

    fr = data["frame_range"]
    if not isinstance(fr, list) or len(fr) != 2:
        raise _fail("frame_range", f"expected [start, end] (end inclusive), got {fr!r:.80}")
    start, end = _integer(fr[0], "frame_range[0]"), _integer(fr[1], "frame_range[1]")
    if end < start:
        raise _fail("frame_range", f"end {end} is before start {start}")
    if start < 0:
        raise _fail("frame_range", f"frames must be >= 0 (file names are <stem>_<frame:04d>), got {start}")
    frames = end - start + 1

    res = data["resolution"]
    if not isinstance(res, list) or len(res) != 2:
        raise _fail("resolution", f"expected [width, height] in pixels, got {res!r:.80}")
    width, height = _integer(res[0], "resolution[0]"), _integer(res[1], "resolution[1]")
    if not (1 <= width <= MAX_RESOLUTION and 1 <= height <= MAX_RESOLUTION):
        raise _fail("resolution", f"{width}x{height} is outside 1..{MAX_RESOLUTION} pixels")

    emotion = data["emotion"]
    if not isinstance(emotion, dict) or "weights" not in emotion or "intensity" not in emotion:
        raise _fail("emotion", 'expected {"weights": [8] or [F, 8], "intensity": number or [F]}')
    weights = _array(emotion["weights"], "emotion.weights", (NUM_EMOTIONS,), frames, np.float32)
    intensity = _array(emotion["intensity"], "emotion.intensity", (), frames, np.float32)
    if np.any(weights < 0):
        raise _fail("emotion.weights", f"frame {start + int(np.argwhere(weights < 0)[0, 0])}: weights must be >= 0")
    if np.any(weights.sum(1) <= 0):
        raise _fail("emotion.weights", f"frame {start + int(np.argwhere(weights.sum(1) <= 0)[0, 0])}: all eight "
                    "weights are 0; key at least one emotion (neutral = [1, 0, 0, 0, 0, 0, 0, 0])")
    if np.any((intensity < 0) | (intensity > 1)):
        raise _fail("emotion.intensity", f"frame {start + int(np.argwhere((intensity < 0) | (intensity > 1))[0, 0])}:"
                    " intensity must be in [0, 1]")

    blink_value = data.get("blink", "auto")
    if blink_value == "auto":
        blink = None
    else:
        blink = _array(0.0 if blink_value is None else blink_value, "blink", (), frames, np.float32)
        if np.any((blink < 0) | (blink > 1)):
            raise _fail("blink", "values must be in [0, 1] (0 = open, 1 = closed), or \"auto\"")

    camera = data["camera"]
    if not isinstance(camera, dict) or "K" not in camera or "viewmat" not in camera:
        raise _fail("camera", 'expected {"K": [3,3] or [F,3,3], "viewmat": [4,4] or [F,4,4]} (OpenCV)')
    K = _array(camera["K"], "camera.K", (3, 3), frames)
    viewmat = _array(camera["viewmat"], "camera.viewmat", (4, 4), frames)
    _check_cameras(K, viewmat, start)
    avatar_matrix = _array(data.get("avatar_matrix", np.eye(4).tolist()), "avatar_matrix", (4, 4), frames)
    _check_avatar_matrix(avatar_matrix, start)

    avatar = data.get("avatar", "default")
    if not isinstance(avatar, str) or not avatar:
        raise _fail("avatar", f'expected "default" or a bundle path, got {avatar!r:.80}')
    if avatar != "default":
        avatar = str(_resolve_path(avatar, "avatar", base))

    audio = None
    if data.get("audio") not in (None, ""):
        audio = _resolve_path(data["audio"], "audio", base)
        if not audio.is_file():
            raise _fail("audio", f"{audio} does not exist; fix the path or remove the field")

    output = data["output"]
    if not isinstance(output, dict) or "folder" not in output:
        raise _fail("output", 'expected {"folder": "...", "stem": "avatar", "format": "png"}')
    output_dir = _resolve_path(output["folder"], "output.folder", base)
    stem = output.get("stem", "avatar")
    if not isinstance(stem, str) or not stem or any(c in stem for c in '/\\:*?"<>|') or stem.startswith("."):
        raise _fail("output.stem", f"{stem!r:.80} is not a plain file name stem (no slashes, no leading dot)")
    fmt = output.get("format", "png")
    if fmt not in FORMATS:
        raise _fail("output.format", f"{fmt!r} is not supported; use one of {', '.join(FORMATS)}")

    backend = data.get("backend", "auto")
    if backend not in RENDER_BACKENDS:
        raise _fail("backend", f"{backend!r}; choose one of {', '.join(RENDER_BACKENDS)}")
    device = data.get("device", "auto")
    if device not in DEVICES:
        raise _fail("device", f"{device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu" and backend == "gsplat":
        raise _fail("backend", "'gsplat' runs on CUDA only; with device 'cpu' use backend 'cpu' or 'auto'")
    seed = _integer(data.get("seed", 0), "seed")
    motion = data.get("motion", "auto")
    if motion not in MOTION_SOURCES:
        raise _fail("motion", f"{motion!r}; choose one of {', '.join(MOTION_SOURCES)}")
    if motion == "a2et" and audio is None:
        raise _fail("motion", "'a2et' drives the face from speech, and the spec has no 'audio'; add one or use 'recipe'")

    return ShotSpec(fps=fps, frame_start=start, frame_end=end, width=width, height=height, weights=weights,
                    intensity=intensity, blink=blink, K=K, viewmat=viewmat, avatar_matrix=avatar_matrix,
                    avatar=avatar, output_dir=output_dir, stem=stem, format=fmt, audio=audio, backend=backend,
                    device=device, seed=seed, motion=motion, extra={k: v for k, v in data.items() if k not in known})


def load_shot_spec(path: str | os.PathLike) -> ShotSpec:
    """Read and validate a spec file; relative paths inside it are relative to its folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: no such shot spec") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidFileError(f"{path}: not a JSON shot spec ({err})") from None
    try:
        return parse_shot_spec(data, base_dir=path.parent)
    except ShotSpecError as err:
        raise ShotSpecError(f"{path}: {err}") from None


def shot_spec_to_json(spec: ShotSpec) -> dict[str, Any]:
    """ShotSpec -> the JSON form (per-frame arrays written out in full)."""
    return {
        "version": SPEC_VERSION, "fps": spec.fps, "frame_range": [spec.frame_start, spec.frame_end],
        "resolution": [spec.width, spec.height], "audio": None if spec.audio is None else str(spec.audio),
        "emotion": {"weights": spec.weights.tolist(), "intensity": spec.intensity.tolist()},
        "blink": "auto" if spec.blink is None else spec.blink.tolist(),
        "camera": {"K": spec.K.tolist(), "viewmat": spec.viewmat.tolist()},
        "avatar_matrix": spec.avatar_matrix.tolist(), "avatar": spec.avatar,
        "output": {"folder": str(spec.output_dir), "stem": spec.stem, "format": spec.format},
        "backend": spec.backend, "device": spec.device, "seed": spec.seed, "motion": spec.motion, **spec.extra,
    }


# ---------------------------------------------------------------------------------------------- motion


def frame_controls(spec: ShotSpec, num_expressions: int):
    """Per-frame expression [F, E] and joint pose [F, 5, 3] (axis-angle) from the FACS emotion recipe and blink.

    The motion when there is no speech to follow (no audio, no A2ET, or spec
    `motion` "recipe"): the recipe gives the expression and a jaw opening;
    blink closes both eyelids (AU45) on top.
    """
    import torch

    from emo_backend.emotion.facs import emotion_to_expression
    from emo_backend.head.expressions import au_indices
    from emo_backend.head.model import JOINT_NAMES

    expression, jaw = emotion_to_expression(torch.from_numpy(spec.weights), torch.from_numpy(spec.intensity))
    expression = torch.as_tensor(expression, dtype=torch.float32).clone()
    jaw = torch.as_tensor(jaw, dtype=torch.float32).reshape(spec.num_frames)
    if expression.shape != (spec.num_frames, num_expressions):
        raise EmoSplatError(f"emotion recipe gave expressions of shape {tuple(expression.shape)}, the avatar has "
                            f"{num_expressions} expression bases; the avatar was made for another head model")
    blink = shot_blink(spec)
    eyes = au_indices("AU45")
    expression[:, eyes] = torch.maximum(expression[:, eyes], blink[:, None].to(expression))
    pose = torch.zeros(spec.num_frames, len(JOINT_NAMES), 3)
    pose[:, JOINT_NAMES.index("jaw"), 0] = jaw  # jaw opens about the avatar's X axis
    return expression, pose


@dataclass
class ShotDrive:
    """What moves the avatar in each frame of a shot."""

    source: str                       # "a2et" or "recipe"
    expression: Any                   # [F, E] ψ_emo
    pose: Any                         # [F, J, 3] θ_emo
    motion: Any = None                # motion.pipeline.ShotMotion (a2et only)
    features: Any = None              # [F, Da] audio features (a2et only)
    egd: Any = None                   # stage 2 network, or None


def shot_blink(spec: ShotSpec):
    import torch

    return torch.from_numpy(spec.blink).float() if spec.blink is not None else _auto_blink(spec)


def shot_drive(spec: ShotSpec, avatar, avatar_path: Path) -> ShotDrive:
    """A2ET (+ the avatar's stage 2) when the spec has audio and a matching A2ET is installed, else the FACS recipe.

    "auto" falls back to the recipe when there is no audio, no A2ET, or the
    installed A2ET predicts another head model's expression bases than the
    avatar's; "a2et" makes each of those an error.
    """
    import torch

    from emo_backend.motion.models import find_default_a2et, stage2_folder
    from emo_backend.train.a2et import load_a2et

    names = tuple(avatar.head.expr_names)
    a2et_folder = find_default_a2et() if spec.motion in ("auto", "a2et") and spec.audio is not None else None
    a2et = None
    if a2et_folder is not None:
        a2et, info = load_a2et(a2et_folder)
        if tuple(info.get("expression_names", names)) != names:
            if spec.motion == "a2et":
                raise EmoSplatError(f"{a2et_folder}: A2ET predicts another head model's expressions than the avatar "
                                    f"{avatar_path} uses; pick an avatar of that head model or use motion 'recipe'")
            a2et = None
    if a2et is None:
        if spec.motion == "a2et":
            raise _fail("motion", "'a2et' was asked for but no A2ET weights are installed (assets/models/a2et); "
                        "train them with `emosplat train a2et` or use 'recipe'")
        expression, pose = frame_controls(spec, avatar.num_expressions)
        return ShotDrive("recipe", expression, pose)

    from emo_backend.audio.features import logmel_frames
    from emo_backend.audio.loading import load_audio
    from emo_backend.motion.pipeline import predict_motion
    from emo_backend.train.stage2 import load_egd

    samples, rate = load_audio(spec.audio)
    features = logmel_frames(samples, rate, spec.fps, num_frames=spec.num_frames)
    motion = predict_motion(a2et, features, torch.from_numpy(spec.weights).float(),
                            torch.from_numpy(spec.intensity).float(), shot_blink(spec), names)
    folder = stage2_folder(avatar_path)
    egd = load_egd(folder)[0] if folder is not None else None
    return ShotDrive("a2et", motion.expression_emo, motion.pose_emo, motion, features, egd)


def _auto_blink(spec: ShotSpec):
    """Natural blinks for the shot, deterministic from the spec's seed."""
    import torch

    from emo_backend.emotion.blink import blink_curve

    return torch.as_tensor(blink_curve(spec.num_frames, spec.fps, seed=spec.seed), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- placement


def place_gaussians(means, quats, scales, matrix):
    """Activated avatar-space Gaussians -> world, by a 4x4 similarity (rotation, uniform scale, translation).

    means [N, 3], quats [N, 4] wxyz, scales [N, 3], matrix [4, 4] -> (means, quats, scales) in world space.
    """
    import torch

    from emo_backend.avatar.rotations import matrix_to_quat, polar_rotation, quat_multiply

    matrix = matrix.to(means)
    linear = matrix[:3, :3]
    scale = torch.linalg.det(linear).abs() ** (1.0 / 3.0)
    rotation = polar_rotation(linear)
    world_means = means @ linear.T + matrix[:3, 3]
    world_quats = quat_multiply(matrix_to_quat(rotation).expand_as(quats), quats)
    return world_means, world_quats, scales * scale


def to_straight_rgba(rgb, alpha) -> np.ndarray:
    """Renderer output (colour premultiplied by coverage) -> straight-alpha RGBA uint8 [H, W, 4]."""
    rgb = rgb.detach().cpu().numpy().astype(np.float32)
    alpha = alpha.detach().cpu().numpy().astype(np.float32)
    covered = alpha > ALPHA_EPS
    straight = np.where(covered, rgb / np.maximum(alpha, ALPHA_EPS), 0.0)
    rgba = np.concatenate([straight, np.where(covered, alpha, 0.0)], axis=-1)
    return np.round(np.clip(rgba, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_depth(depth, alpha) -> np.ndarray:
    """Camera-space z [H, W] float32, +inf where nothing is covered (the compositor's 'far')."""
    depth = depth.detach().cpu().numpy()[..., 0].astype(np.float32)
    alpha = alpha.detach().cpu().numpy()[..., 0]
    return np.where(alpha > ALPHA_EPS, depth, np.float32(np.inf)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- rendering


def _compute_device(spec: ShotSpec) -> tuple[str, str]:
    """(torch device for evaluation, resolved render backend)."""
    from emo_backend.errors import DeviceError
    from emo_backend.render import cuda_works, resolve_backend

    if spec.device == "cuda" and not cuda_works():
        raise DeviceError("device 'cuda' was asked for but torch sees no CUDA GPU; choose device 'cpu' or 'auto'")
    backend = spec.backend
    if backend == "auto":
        backend = "cpu" if spec.device == "cpu" else resolve_backend("auto")
    backend = resolve_backend(backend)
    device = "cuda" if (backend == "gsplat" or (spec.device == "cuda")) else "cpu"
    return device, backend


def _avatar_key(avatar_path: Path) -> str:
    """What identifies the avatar's content cheaply: resolved path, size and mtime of its files."""
    parts = [str(avatar_path.resolve())]
    files = sorted(avatar_path.rglob("*")) if avatar_path.is_dir() else [avatar_path]
    for f in files:
        if f.is_file():
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _frame_digests(spec: ShotSpec, expression, pose, avatar_key: str, backend: str) -> list[str]:
    common = hashlib.sha256(json.dumps([avatar_key, backend, spec.width, spec.height, spec.format,
                                        SPEC_VERSION]).encode()).digest()
    digests = []
    for i in range(spec.num_frames):
        h = hashlib.sha256(common)
        for arr in (expression[i].numpy(), pose[i].numpy(), spec.weights[i], spec.intensity[i], spec.K[i],
                    spec.viewmat[i], spec.avatar_matrix[i]):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        digests.append(h.hexdigest())
    return digests


def _read_record(spec: ShotSpec) -> dict[str, str]:
    try:
        record = json.loads(spec.record_path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in record.get("frames", {}).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def _write_record(spec: ShotSpec, record: dict[str, str]) -> None:
    from emo_backend.files.atomic import write_text_atomic

    write_text_atomic(spec.record_path, json.dumps({"version": SPEC_VERSION, "frames": record}, indent=0))


def render_shot(
    spec: ShotSpec,
    progress: Callable[[int, int, int], None] | None = None,  # (frames done, total, frame just finished)
    cancel: Callable[[], bool] | None = None,                 # polled between frames
    only_frames: list[int] | None = None,                      # a subset (preview); default: the whole range
) -> ShotResult:
    """Render every frame of `spec` to disk; skip frames whose files exist and whose inputs are unchanged."""
    import time

    import torch

    from emo_backend.avatar.bundle import resolve_avatar_path
    from emo_backend.avatar.gaussians import activate
    from emo_backend.files.images import write_exr_depth, write_png
    from emo_backend.render import rasterize

    started = time.perf_counter()
    device, backend = _compute_device(spec)
    avatar_path = Path(resolve_avatar_path(spec.avatar))
    avatar, prepared = _cached_avatar(avatar_path, device)
    drive = shot_drive(spec, avatar, avatar_path)
    expression, pose = drive.expression, drive.pose
    digests = _frame_digests(spec, expression, pose, _avatar_key(avatar_path) + drive.source, backend)

    wanted = list(spec.frames) if only_frames is None else sorted(set(only_frames))
    for f in wanted:
        if f not in spec.frames:
            raise _fail("frame", f"{f} is outside the shot's frame range {spec.frame_start}..{spec.frame_end}")
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    record = _read_record(spec)
    todo, skipped = [], []
    for f in wanted:
        i = f - spec.frame_start
        done = record.get(str(f)) == digests[i] and spec.image_path(f).is_file() and spec.depth_path(f).is_file()
        (skipped if done else todo).append(f)

    result = ShotResult(frames=[], rendered=[], skipped=skipped, backend=backend)
    total = len(wanted)
    if progress is not None and skipped:
        progress(len(skipped), total, skipped[-1])
    with torch.inference_mode():
        fast = _prepare_fast_paths(prepared, drive, device) if todo else None
        for chunk_start in range(0, len(todo), CHUNK_FRAMES):
            chunk = todo[chunk_start:chunk_start + CHUNK_FRAMES]
            idx = torch.tensor([f - spec.frame_start for f in chunk])
            gaussians = _chunk_gaussians(spec, avatar, drive, idx, device, fast)
            for j, f in enumerate(chunk):
                if cancel is not None and cancel():
                    result.cancelled = True
                    break
                i = f - spec.frame_start
                g = activate(gaussians.frame(j))
                matrix = torch.from_numpy(spec.avatar_matrix[i]).to(device, torch.float32)
                means, quats, scales = place_gaussians(g.means, g.quats, g.scales, matrix)
                rgb, alpha, depth = rasterize(
                    means, quats, scales, g.opacities, g.colors.clamp(0.0, 1.0),
                    torch.from_numpy(spec.viewmat[i]).to(device, torch.float32),
                    torch.from_numpy(spec.K[i]).to(device, torch.float32),
                    spec.width, spec.height, backend=backend,
                )
                write_png(spec.image_path(f), to_straight_rgba(rgb, alpha))
                write_exr_depth(spec.depth_path(f), to_depth(depth, alpha))
                record[str(f)] = digests[i]
                _write_record(spec, record)
                result.rendered.append(f)
                if progress is not None:
                    progress(len(skipped) + len(result.rendered), total, f)
            if result.cancelled:
                break
    done = set(result.rendered) | set(skipped)
    result.frames = [f for f in wanted if f in done]
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------- without Blender


_AVATAR_CACHE: dict = {}  # (content key, device) -> (avatar, prepared): previews re-render one avatar often


def _cached_avatar(avatar_path: Path, device: str):
    """The avatar and its inference fast path (`avatar.prepared`), loaded once per content and device.

    The key is `_avatar_key` (path, sizes and mtimes of the bundle's files), so an edited bundle is reloaded.
    One avatar is kept: memory stays bounded.
    """
    from emo_backend.avatar.bundle import load_avatar
    from emo_backend.avatar.prepared import prepare_avatar

    key = (_avatar_key(avatar_path), device)
    if key not in _AVATAR_CACHE:
        avatar = load_avatar(avatar_path, device=device)
        _AVATAR_CACHE.clear()
        _AVATAR_CACHE[key] = (avatar, prepare_avatar(avatar))
    return _AVATAR_CACHE[key]


def _prepare_fast_paths(prepared, drive: ShotDrive, device: str):
    """(PreparedAvatar, its EGD prepared for inference or None) for `_chunk_gaussians`."""
    from emo_backend.motion.egd_fast import prepare_egd

    egd = prepare_egd(drive.egd.to(device), prepared.neutral_means) if drive.egd is not None else None
    return prepared, egd


def _chunk_gaussians(spec: ShotSpec, avatar, drive: ShotDrive, idx, device: str, fast=None):
    """Avatar-space Gaussians [B, N] of the frames `idx` [B]: stage 1, plus stage 2 when the avatar has it.

    `fast` is `_prepare_fast_paths(...)`'s result (the same Gaussians, faster); None uses the reference path.
    """
    import torch

    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.prepared import evaluate_prepared
    from emo_backend.motion.pipeline import AUDIO_HALF_WIDTH, audio_windows, frame_gaussians

    prepared, prepared_egd = fast if fast is not None else (None, None)
    if drive.egd is None:
        expression, pose = drive.expression[idx].to(device), drive.pose[idx].to(device)
        if prepared is not None:
            return evaluate_prepared(prepared, expression, pose)[0]
        return evaluate(avatar, expression, pose)[0]
    m = drive.motion
    to = lambda t: t.to(device)  # noqa: E731
    gaussians, _ = frame_gaussians(
        avatar, drive.egd.to(device), to(m.expression_emo[idx]), to(m.pose_emo[idx]), to(m.expression_neu[idx]),
        to(m.pose_neu[idx]), to(m.blink[idx]), to(audio_windows(drive.features, idx, AUDIO_HALF_WIDTH)),
        to(torch.from_numpy(spec.weights[idx.numpy()]).float()), to(torch.from_numpy(spec.intensity[idx.numpy()]).float()),
        prepared=prepared, prepared_egd=prepared_egd,
    )
    return gaussians


def spec_from_options(
    output_dir: str | os.PathLike,
    audio: str | os.PathLike | None = None,
    emotion: str = "neutral",     # an emotion string ("happy:0.7@0.8") or an emotion-curves JSON file
    avatar: str = "default",
    size: int = 512,
    fps: float = 25.0,
    seconds: float | None = None,  # default: the audio's length, else 4 s
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
) -> ShotSpec:
    """A front-camera portrait shot for `emosplat render --audio ... --emotion ...` (no Blender, no spec file)."""
    import torch

    from emo_backend.avatar.blendshapes import neutral_means
    from emo_backend.avatar.bundle import load_avatar, resolve_avatar_path
    from emo_backend.preview_render import FOV_Y_DEG, frame_avatar
    from emo_backend.render.camera import intrinsics_from_fov

    if seconds is None:
        if audio is not None:
            from emo_backend.audio.loading import duration_s, load_audio

            samples, rate = load_audio(audio)
            seconds = duration_s(samples, rate)
        else:
            seconds = 4.0
    frames = max(1, int(math.ceil(seconds * fps - 1e-6)))
    if Path(emotion).suffix.lower() == ".json":
        from emo_backend.emotion.curves import load_curves

        weights, intensity, blink = load_curves(emotion).sample(frames, fps)
        emotion_json = {"weights": weights.tolist(), "intensity": intensity.tolist()}
        blink_json: Any = blink.tolist()
    else:
        from emo_backend.emotion.space import parse_emotion

        frame = parse_emotion(emotion)
        emotion_json = {"weights": list(frame.weights), "intensity": frame.intensity}
        blink_json = "auto"
    path = resolve_avatar_path(avatar)
    means = neutral_means(load_avatar(path))
    viewmat = frame_avatar(means, FOV_Y_DEG)
    K = intrinsics_from_fov(FOV_Y_DEG, size, size)
    data = {
        "version": SPEC_VERSION, "fps": fps, "frame_range": [0, frames - 1], "resolution": [size, size],
        "audio": None if audio is None else str(Path(audio).resolve()), "avatar": str(path),
        "emotion": emotion_json, "blink": blink_json,
        "camera": {"K": K.tolist(), "viewmat": viewmat.tolist()}, "avatar_matrix": torch.eye(4).tolist(),
        "output": {"folder": str(Path(output_dir).resolve()), "stem": "avatar", "format": "png"},
        "backend": backend, "device": device, "seed": seed,
    }
    return parse_shot_spec(data)


def write_video(spec: ShotSpec, path: str | os.PathLike, background=None) -> Path:
    """The shot's frames over a flat background (the preview's grey by default), with its audio, as an
    H.264/AAC MP4 (atomically)."""
    from emo_backend.files.images import read_png
    from emo_backend.files.video import mp4_writer
    from emo_backend.preview_render import BACKGROUND

    if background is None:
        background = BACKGROUND

    audio, rate = None, 16000
    if spec.audio is not None:
        from emo_backend.audio.loading import load_audio

        samples, rate = load_audio(spec.audio)
        audio = samples[: int(round(spec.num_frames / spec.fps * rate))]  # the clip starts with the first frame
    width, height = spec.width - spec.width % 2, spec.height - spec.height % 2
    bg = np.asarray(background, dtype=np.float32)
    with mp4_writer(path, spec.fps, width, height, audio=audio, audio_rate=rate) as write:
        for f in spec.frames:
            rgba = read_png(spec.image_path(f)).astype(np.float32) / 255.0
            alpha = rgba[..., 3:4]
            rgb = rgba[..., :3] * alpha + bg * (1.0 - alpha)  # straight alpha "over" the background
            write(np.round(rgb[:height, :width] * 255.0).astype(np.uint8))
    return Path(path)

"""Import a metrical-tracker result (https://github.com/Zielon/metrical-tracker) as one tracked clip.

Its output folder holds `checkpoint/%05d.frame` files, each written by
`torch.save` of a dict of numpy arrays:

    flame:  exp [1, 100] (newer versions: expr), jaw [1, 6] (jaw_pose), eyes [1, 12] (eyes_pose),
            eyelids [1, 2], shape [1, 300], optional neck_pose / rotation / translation
    opencv: R [1, 3, 3], t [1, 3], K [1, 3, 3]   (world-to-camera, pixels; the head sits at the origin)
    img_size: [2] (height, width) of the tracked (cropped) images

Rotations are 6D (PyTorch3D convention: the matrix's first two rows) and are
converted to axis-angle. Eye poses fill FLAME's eye joints in their order
(first 6 numbers -> joint 3, next 6 -> joint 4; JOINT_NAMES follows FLAME). The
two eyelid coefficients (left, right; FLAME's l_eyelid/r_eyelid blendshapes)
become the clip's `blink`. Frames come from the tracker's `input/` folder (the
cropped images it tracked), or from a folder given with `images=`.

Files are read with `torch.load(weights_only=True)` plus only the numpy
globals needed to rebuild plain arrays; anything else in a file is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from emo_backend.data.dataset import DatasetWriter
from emo_backend.data.importers.media import decode_audio
from emo_backend.data.rotations import rotation_6d_to_axis_angle
from emo_backend.data.schema import ClipInfo, check_clip_id
from emo_backend.errors import InvalidFileError
from emo_backend.head.model import JOINT_NAMES

_FRAME_FILE = re.compile(r"^(\d+)\.frame$")
IMAGE_FOLDERS = ("input", "images", "source")


def _numpy_safe_globals() -> list:
    """The numpy callables pickle needs to rebuild plain ndarrays (and numpy scalars)."""
    import numpy.core.multiarray as multiarray

    names: list = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    names += [type(np.dtype(t)) for t in ("f4", "f8", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")]
    # Files pickled under numpy 2 name the same functions under numpy._core (and numpy 1 under numpy.core).
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    return names


def load_frame_file(path: Path) -> dict:
    """One checkpoint, unpickled with torch's weights-only unpickler (no arbitrary objects)."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidFileError(
            f"{path}: not a readable metrical-tracker checkpoint ({first_line}); only plain arrays are accepted"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidFileError(f"{path}: expected a dict of tracking results, got {type(payload).__name__}")
    return payload


def _array(path: Path, group: dict, names: tuple[str, ...], width: int | tuple[int, ...] | None, required: bool = True):
    for name in names:
        if name in group:
            value = group[name]
            a = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            a = a.astype(np.float64)
            widths = (width,) if isinstance(width, int) else width
            if widths is not None and a.reshape(-1).size not in widths:
                raise InvalidFileError(f"{path}: field {name!r} has shape {list(a.shape)}; expected {widths} numbers")
            return a.reshape(-1)
    if required:
        raise InvalidFileError(f"{path}: missing field {' / '.join(names)}; is this a metrical-tracker checkpoint?")
    return None


def _rotation(a: np.ndarray | None) -> np.ndarray:
    """6D or axis-angle -> axis-angle [3]."""
    if a is None:
        return np.zeros(3, np.float32)
    return rotation_6d_to_axis_angle(a) if a.size == 6 else a.astype(np.float32)


def read_checkpoints(src: Path) -> list[tuple[int, Path, dict]]:
    folder = src / "checkpoint"
    if not folder.is_dir():
        raise InvalidFileError(f"{src}: no checkpoint/ folder; point at the metrical-tracker output of one actor")
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _FRAME_FILE.match(p.name)))
    if not found:
        raise InvalidFileError(f"{folder}: holds no NNNNN.frame files")
    ids = [i for i, _ in found]
    gaps = [b for a, b in zip(ids, ids[1:]) if b != a + 1]
    if gaps:
        raise InvalidFileError(f"{folder}: frames are not consecutive (missing before {gaps[0]:05d}.frame); "
                               "a clip needs every frame; re-run the tracker on the missing frames")
    return [(i, p, load_frame_file(p)) for i, p in found]


def convert_checkpoint(path: Path, payload: dict) -> dict[str, np.ndarray]:
    """One checkpoint -> one frame of our tracking fields (no frame axis) + 'img_size' (h, w)."""
    flame = payload.get("flame")
    opencv = payload.get("opencv")
    if not isinstance(flame, dict) or not isinstance(opencv, dict):
        raise InvalidFileError(f"{path}: needs 'flame' and 'opencv' groups; is this a metrical-tracker checkpoint?")
    expression = _array(path, flame, ("exp", "expr"), None)
    jaw = _array(path, flame, ("jaw", "jaw_pose"), (6, 3))
    eyes = _array(path, flame, ("eyes", "eyes_pose"), (12, 6), required=False)
    neck = _array(path, flame, ("neck_pose", "neck"), (6, 3), required=False)
    root = _array(path, flame, ("rotation",), (6, 3), required=False)
    translation = _array(path, flame, ("translation",), 3, required=False)
    eyelids = _array(path, flame, ("eyelids",), 2, required=False)
    shape = _array(path, flame, ("shape",), None, required=False)

    pose = np.zeros((len(JOINT_NAMES), 3), np.float32)
    pose[JOINT_NAMES.index("root")] = _rotation(root)
    # Older metrical-tracker checkpoints store neck as ones (a placeholder); only a 6D/axis-angle neck is a pose.
    if neck is not None and not np.allclose(neck, 1.0):
        pose[JOINT_NAMES.index("neck")] = _rotation(neck)
    pose[JOINT_NAMES.index("jaw")] = _rotation(jaw)
    if eyes is not None:
        half = eyes.size // 2
        pose[JOINT_NAMES.index("left_eye")] = _rotation(eyes[:half])
        pose[JOINT_NAMES.index("right_eye")] = _rotation(eyes[half:])

    R = _array(path, opencv, ("R",), 9).reshape(3, 3)
    t = _array(path, opencv, ("t",), 3)
    K = _array(path, opencv, ("K",), 9).reshape(3, 3)
    viewmat = np.eye(4)
    viewmat[:3, :3], viewmat[:3, 3] = R, t
    img_size = np.asarray(payload.get("img_size", []), dtype=np.int64).reshape(-1)
    if img_size.size != 2:
        raise InvalidFileError(f"{path}: field 'img_size' must be (height, width)")
    out = {
        "expression": expression.astype(np.float32),
        "pose": pose,
        "translation": (translation if translation is not None else np.zeros(3)).astype(np.float32),
        "identity": (shape if shape is not None else np.zeros(0)).astype(np.float32),
        "K": K.astype(np.float32),
        "viewmat": viewmat.astype(np.float32),
        "img_size": img_size,
    }
    if eyelids is not None:
        out["blink"] = eyelids.astype(np.float32)
    return out


def _find_image(folder: Path, frame_id: int) -> Path | None:
    for stem in (f"{frame_id:05d}", f"{frame_id:04d}", f"{frame_id:06d}", str(frame_id)):
        for ext in (".png", ".jpg", ".jpeg"):
            if (folder / (stem + ext)).exists():
                return folder / (stem + ext)
    return None


def import_metrical(
    src: str | Path,
    writer: DatasetWriter,
    *,
    clip_id: str | None = None,
    identity: str | None = None,
    emotion: str = "neutral",
    intensity: float = 0.0,
    images: str | Path | None = None,
    audio: str | Path | None = None,
    split: str = "train",
    text: str | None = None,
) -> ClipInfo:
    """Add one metrical-tracker actor folder to `writer` as one tracked clip."""
    from PIL import Image

    src = Path(src)
    clip_id = check_clip_id(clip_id or src.name)
    checkpoints = read_checkpoints(src)
    frames = [convert_checkpoint(p, payload) for _, p, payload in checkpoints]
    first = frames[0]
    for (_, path, _), f in zip(checkpoints, frames):
        if f["expression"].shape != first["expression"].shape or f["identity"].shape != first["identity"].shape:
            raise InvalidFileError(f"{path}: expression/shape sizes differ from {checkpoints[0][1].name}")
        if ("blink" in f) != ("blink" in first):
            raise InvalidFileError(f"{path}: eyelids present in some frames only")
    if len(writer.info.expression_names) != first["expression"].size:
        raise InvalidFileError(f"{checkpoints[0][1]}: {first['expression'].size} expression coefficients, but the dataset "
                               f"expects {len(writer.info.expression_names)}")

    if images is None:
        candidates = [src / name for name in IMAGE_FOLDERS if (src / name).is_dir()]
        if not candidates:
            raise InvalidFileError(f"{src}: no image folder ({', '.join(IMAGE_FOLDERS)}) beside checkpoint/; "
                                   "pass the tracked images' folder explicitly")
        images = candidates[0]
    images = Path(images)
    height, width = (int(v) for v in first["img_size"])

    def frame_iter():
        for (frame_id, ckpt, _), f in zip(checkpoints, frames):
            path = _find_image(images, frame_id)
            if path is None:
                raise InvalidFileError(f"{images}: no image for frame {frame_id:05d} (tracked in {ckpt.name})")
            rgb = np.asarray(Image.open(path).convert("RGB"))
            if rgb.shape[:2] != (height, width):
                raise InvalidFileError(
                    f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]} but the tracker worked at {width}x{height} "
                    "(img_size); use the tracker's cropped input images"
                )
            yield rgb

    tracking = {
        name: np.stack([f[name] for f in frames])
        for name in ("expression", "pose", "translation", "K", "viewmat") + (("blink",) if "blink" in first else ())
    }
    tracking["identity"] = first["identity"]
    sound = decode_audio(Path(audio)) if audio is not None else None
    return writer.add_clip(
        clip_id, identity=identity or src.name, emotion=emotion, intensity=intensity, frames=frame_iter(),
        audio=sound, tracking=tracking, split=split, text=text,
        source={"importer": "metrical-tracker", "path": str(src), "frames": f"{checkpoints[0][0]:05d}..{checkpoints[-1][0]:05d}"},
    )


def metrical_expression_names(src: str | Path) -> tuple[str, ...]:
    """FLAME expression names ("exp000", ...) sized from the first checkpoint."""
    checkpoints = sorted((Path(src) / "checkpoint").glob("*.frame"))
    if not checkpoints:
        raise InvalidFileError(f"{src}: no checkpoint/*.frame files")
    f = convert_checkpoint(checkpoints[0], load_frame_file(checkpoints[0]))
    return tuple(f"exp{i:03d}" for i in range(f["expression"].size))

"""Import a VHAP / GaussianAvatars export (NeRF-style `transforms_*.json` + FLAME parameters).

Layout (https://github.com/ShenhanQian/VHAP, GaussianAvatars):

    transforms_train.json, transforms_val.json, transforms_test.json (or transforms.json)
        {"frames": [{"file_path": "images/00000_00.png", "fg_mask_path": ...optional,
                     "transform_matrix": 4x4 OpenGL camera-to-world,
                     "fl_x", "fl_y", "cx", "cy", "w", "h",   (per frame or at top level)
                     "timestep_index": t, "camera_index": c,
                     "flame_param_path": "flame_param/00000.npz"}, ...]}
    flame_param/<t>.npz: translation [1,3], rotation [1,3], neck_pose [1,3], jaw_pose [1,3],
                         eyes_pose [1,6], expr [1,E], shape [S]   (axis-angle; a whole-sequence
                         file with [T, ...] rows is indexed by timestep_index)

Each (transforms file, camera, run of consecutive timesteps) becomes one clip
whose frames are that camera's timesteps in order; clips from transforms_train.json go to the train split,
the others to test. Cameras are converted once, by
`render.camera.opengl_c2w_to_viewmat`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from emo_backend.data.dataset import DatasetWriter
from emo_backend.data.importers.media import decode_audio
from emo_backend.data.schema import ClipInfo, check_clip_id
from emo_backend.errors import InvalidFileError
from emo_backend.render.camera import opengl_c2w_to_viewmat

TRANSFORMS_FILES = {
    "transforms_train.json": "train",
    "transforms_val.json": "test",
    "transforms_test.json": "test",
    "transforms.json": "train",
}
FLAME_KEYS = ("translation", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "expr")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidFileError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise InvalidFileError(f"{path}: needs a non-empty 'frames' list")
    return data


def transforms_files(src: Path) -> list[tuple[Path, str]]:
    found = [(src / name, split) for name, split in TRANSFORMS_FILES.items() if (src / name).exists()]
    if any(p.name != "transforms.json" for p, _ in found):
        found = [(p, s) for p, s in found if p.name != "transforms.json"]
    if not found:
        raise InvalidFileError(f"{src}: no transforms_train.json / transforms_test.json / transforms.json; "
                               "point at a VHAP or GaussianAvatars export folder")
    return found


class _FlameParams:
    """Loads flame_param files once each (allow_pickle=False), one timestep at a time."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, np.ndarray]] = {}

    def get(self, path: Path, timestep: int, where: str) -> dict[str, np.ndarray]:
        if path not in self._cache:
            try:
                with np.load(path, allow_pickle=False) as npz:
                    self._cache[path] = {k: npz[k] for k in npz.files}
            except FileNotFoundError:
                raise InvalidFileError(f"{path}: missing (flame_param_path of {where})") from None
            except (ValueError, OSError, zipfile.BadZipFile) as err:
                raise InvalidFileError(f"{path}: not a readable plain .npz ({err})") from None
        data = self._cache[path]
        out = {}
        for key in FLAME_KEYS + ("shape", "eyelids"):
            if key not in data:
                if key in ("eyelids",):
                    continue
                if key == "shape":
                    out[key] = np.zeros(0, np.float32)
                    continue
                raise InvalidFileError(f"{path}: missing FLAME field {key!r}")
            a = np.asarray(data[key], np.float64)
            if key != "shape" and a.ndim == 2:
                row = timestep if a.shape[0] > 1 else 0
                if row >= a.shape[0]:
                    raise InvalidFileError(f"{path}: field {key!r} has {a.shape[0]} rows; {where} needs timestep {timestep}")
                a = a[row]
            out[key] = a.reshape(-1)
        widths = {"translation": 3, "rotation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6, "eyelids": 2}
        for key, n in widths.items():
            if key in out and out[key].size != n:
                raise InvalidFileError(f"{path}: field {key!r} has {out[key].size} numbers, expected {n} (axis-angle)")
        return out


def _intrinsics(frame: dict, top: dict, where: str) -> tuple[np.ndarray, int, int]:
    def get(key):
        value = frame.get(key, top.get(key))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidFileError(f"{where}: missing or non-numeric {key!r}")
        return float(value)

    fx, fy, cx, cy = get("fl_x"), get("fl_y"), get("cx"), get("cy")
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    return K, int(get("w")), int(get("h"))


def vhap_expression_count(src: str | Path) -> int:
    """Number of FLAME expression coefficients in the export (from its first frame)."""
    src = Path(src)
    path, _ = transforms_files(src)[0]
    frame = _read_json(path)["frames"][0]
    params = _FlameParams().get(src / frame["flame_param_path"], int(frame.get("timestep_index", 0)), str(path))
    return int(params["expr"].size)


def import_vhap(
    src: str | Path,
    writer: DatasetWriter,
    *,
    identity: str | None = None,
    emotion: str = "neutral",
    intensity: float = 0.0,
    audio: str | Path | None = None,
    cameras: list[int] | None = None,
) -> list[ClipInfo]:
    """Add a VHAP/GaussianAvatars export to `writer`: one clip per (transforms file, camera)."""
    from PIL import Image

    src = Path(src)
    identity = identity or src.name
    params = _FlameParams()
    sound = decode_audio(Path(audio)) if audio is not None else None
    added = []
    for json_path, split in transforms_files(src):
        top = _read_json(json_path)
        by_camera: dict[int, list[tuple[int, dict]]] = {}
        for n, frame in enumerate(top["frames"]):
            where = f"{json_path} frames[{n}]"
            if not isinstance(frame, dict):
                raise InvalidFileError(f"{where}: must be an object")
            for key in ("file_path", "transform_matrix", "flame_param_path"):
                if key not in frame:
                    raise InvalidFileError(f"{where}: missing {key!r}")
            camera = int(frame.get("camera_index", 0))
            if cameras is not None and camera not in cameras:
                continue
            by_camera.setdefault(camera, []).append((int(frame.get("timestep_index", n)), frame | {"_where": where}))
        runs = []
        for camera, items in sorted(by_camera.items()):
            items.sort(key=lambda it: it[0])
            timesteps = [t for t, _ in items]
            if len(set(timesteps)) != len(timesteps):
                raise InvalidFileError(f"{json_path}: camera {camera} has two frames for one timestep")
            # A gap in the timesteps (another sequence, a subsampled split) starts a new clip: frames of a
            # clip must be consecutive in time.
            cuts = [0] + [k for k in range(1, len(timesteps)) if timesteps[k] != timesteps[k - 1] + 1] + [len(items)]
            for a, b in zip(cuts, cuts[1:]):
                runs.append((camera, items[a:b], len(cuts) > 2))
        for camera, items, several in runs:
            timesteps = [t for t, _ in items]
            rows = {k: [] for k in ("expression", "pose", "translation", "K", "viewmat", "blink")}
            shape = None
            size = None
            for t, frame in items:
                where = frame["_where"]
                c2w = np.asarray(frame["transform_matrix"], np.float64)
                if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
                    raise InvalidFileError(f"{where}: 'transform_matrix' must be a finite 4x4 matrix")
                K, w, h = _intrinsics(frame, top, where)
                if size is None:
                    size = (w, h)
                p = params.get(src / frame["flame_param_path"], t, where)
                shape = p["shape"] if shape is None else shape
                rows["expression"].append(p["expr"])
                rows["pose"].append(np.stack([p["rotation"], p["neck_pose"], p["jaw_pose"],
                                              p["eyes_pose"][:3], p["eyes_pose"][3:]]))
                rows["translation"].append(p["translation"])
                rows["K"].append(K)
                rows["viewmat"].append(opengl_c2w_to_viewmat(c2w).numpy())
                if "eyelids" in p:
                    rows["blink"].append(p["eyelids"])
            tracking = {k: np.stack(v).astype(np.float32) for k, v in rows.items() if v}
            if "blink" in tracking and len(rows["blink"]) != len(items):
                del tracking["blink"]
            tracking["identity"] = np.asarray(shape, np.float32)
            has_masks = all("fg_mask_path" in f for _, f in items)

            def images(key, mode, items=items, size=size):
                for _, frame in items:
                    path = src / frame[key]
                    try:
                        image = Image.open(path).convert(mode)
                    except FileNotFoundError:
                        raise InvalidFileError(f"{path}: missing ({key} of {frame['_where']})") from None
                    except OSError as err:
                        raise InvalidFileError(f"{path}: not a readable image ({err})") from None
                    if image.size != size:
                        raise InvalidFileError(f"{path}: image is {image.size[0]}x{image.size[1]}, "
                                               f"but w, h say {size[0]}x{size[1]}")
                    yield np.asarray(image)

            clip_id = check_clip_id(f"{identity}_{json_path.stem.removeprefix('transforms').strip('_') or 'all'}"
                                    f"_cam{camera:02d}" + (f"_t{timesteps[0]:05d}" if several else ""))
            added.append(writer.add_clip(
                clip_id, identity=identity, emotion=emotion, intensity=intensity,
                frames=images("file_path", "RGB"), masks=images("fg_mask_path", "L") if has_masks else None,
                audio=sound, tracking=tracking, split=split,
                source={"importer": "vhap", "path": str(json_path), "camera_index": camera,
                        "timesteps": f"{timesteps[0]}..{timesteps[-1]}"},
            ))
    if not added:
        raise InvalidFileError(f"{src}: no frames matched the requested cameras {cameras}")
    return added

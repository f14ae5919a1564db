"""Reading and writing tracked-clip datasets (format: emo_backend/data/schema.py, docs/dataset-format.md).

    ds = load_dataset("data/actor")            # validates dataset.json
    tracking = ds.load_tracking("clip_0001")   # validates the clip's .npz (allow_pickle=False)
    for record in iter_frames(ds, "train"):    # FrameRecords with torch tensors, for training
        ...

    with DatasetWriter("out", head_model=..., expression_names=..., fps=25, resolution=(512, 512)) as w:
        w.add_clip("clip_0001", identity="actor01", emotion="happy", intensity=2/3, frames=frames, ...)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from emo_backend.errors import InvalidFileError
from emo_backend.files.atomic import atomic_path, write_text_atomic
from emo_backend.data.schema import (
    AWAITING_TRACKING, EMOTIONS, SPLITS, TRACKED, ClipInfo, DatasetInfo, check_clip_id, frame_name,
    parse_dataset_json, validate_tracking,
)

DATASET_JSON = "dataset.json"


@dataclass
class ClipTracking:
    """One clip's tracking, validated, float32 numpy; K and viewmat always per frame."""

    expression: np.ndarray          # [F, E]
    pose: np.ndarray                # [F, 5, 3] axis-angle, JOINT_NAMES order
    translation: np.ndarray         # [F, 3]
    identity: np.ndarray            # [S]
    K: np.ndarray                   # [F, 3, 3]
    viewmat: np.ndarray             # [F, 4, 4] OpenCV world-to-camera
    landmarks2d: np.ndarray | None  # [F, 68, 2] or None
    blink: np.ndarray | None        # [F, 2] or None

    @property
    def num_frames(self) -> int:
        return int(self.expression.shape[0])


class Dataset:
    """A dataset folder opened for reading. Cheap to open: clips load lazily."""

    def __init__(self, root: Path, info: DatasetInfo) -> None:
        self.root = root
        self.info = info

    @property
    def clips(self) -> dict[str, ClipInfo]:
        return self.info.clips

    def clip_ids(self, split: str | None = None) -> list[str]:
        if split is None:
            return list(self.info.clips)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        return list(self.info.splits.get(split, []))

    def clip(self, clip_id: str) -> ClipInfo:
        try:
            return self.info.clips[clip_id]
        except KeyError:
            raise KeyError(f"dataset {self.root} has no clip {clip_id!r}") from None

    def tracking_path(self, clip_id: str) -> Path:
        return self.root / "tracking" / f"{clip_id}.npz"

    def frame_path(self, clip_id: str, index: int) -> Path:
        return self.root / "frames" / clip_id / frame_name(index)

    def mask_path(self, clip_id: str, index: int) -> Path:
        return self.root / "masks" / clip_id / frame_name(index)

    def audio_path(self, clip_id: str) -> Path | None:
        audio = self.clip(clip_id).audio
        return None if audio is None else self.root / audio

    def load_tracking(self, clip_id: str) -> ClipTracking:
        clip = self.clip(clip_id)
        path = self.tracking_path(clip_id)
        if clip.tracking == AWAITING_TRACKING:
            raise InvalidFileError(
                f"{self.root / DATASET_JSON}: clip {clip_id!r} is awaiting tracking (imported without face "
                "tracking); training needs tracking: run a face tracker (metrical-tracker or VHAP) on its frames "
                "and import the result, or leave the clip out"
            )
        arrays = _read_npz(path, clip_id)
        checked = validate_tracking(
            arrays, path=path, clip_id=clip_id, num_frames=clip.num_frames,
            num_expressions=len(self.info.expression_names),
        )
        return ClipTracking(
            expression=checked["expression"], pose=checked["pose"], translation=checked["translation"],
            identity=checked["identity"], K=np.ascontiguousarray(checked["K"]),
            viewmat=np.ascontiguousarray(checked["viewmat"]),
            landmarks2d=checked.get("landmarks2d"), blink=checked.get("blink"),
        )

    def load_frame(self, clip_id: str, index: int) -> np.ndarray:
        """RGB uint8 [H, W, 3]."""
        path = self.frame_path(clip_id, index)
        image = _read_png(path, clip_id, index, "frame")
        if image.mode not in ("RGB", "RGBA", "L"):
            raise InvalidFileError(f"{path}: clip {clip_id!r} frame {index}: image mode {image.mode} is not RGB")
        rgb = np.asarray(image.convert("RGB"))
        self._check_size(path, clip_id, index, rgb)
        return rgb

    def load_mask(self, clip_id: str, index: int) -> np.ndarray | None:
        """Foreground mask float32 [H, W] in [0, 1], or None when the clip has no masks."""
        if not self.clip(clip_id).has_masks:
            return None
        path = self.mask_path(clip_id, index)
        mask = np.asarray(_read_png(path, clip_id, index, "mask").convert("L"), dtype=np.float32) / 255.0
        self._check_size(path, clip_id, index, mask)
        return mask

    def load_audio(self, clip_id: str) -> tuple[np.ndarray, int]:
        """(samples float32 [N] mono, sample rate). Raises if the clip has no audio."""
        import soundfile

        path = self.audio_path(clip_id)
        if path is None:
            raise InvalidFileError(f"{self.root / DATASET_JSON}: clip {clip_id!r} has no audio")
        try:
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as err:
            raise InvalidFileError(f"{path}: clip {clip_id!r} audio cannot be read ({err}); re-import the clip") from None
        return samples.mean(1), int(rate)

    def _check_size(self, path: Path, clip_id: str, index: int, image: np.ndarray) -> None:
        w, h = self.info.resolution
        if image.shape[:2] != (h, w):
            raise InvalidFileError(
                f"{path}: clip {clip_id!r} frame {index}: size {image.shape[1]}x{image.shape[0]} differs from the "
                f"dataset resolution {w}x{h}"
            )


def _read_png(path: Path, clip_id: str, index: int, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: clip {clip_id!r} {what} {index} is missing; re-import the clip") from None
    except (OSError, SyntaxError) as err:
        raise InvalidFileError(f"{path}: clip {clip_id!r} {what} {index} is not a readable PNG ({err})") from None


def _read_npz(path: Path, clip_id: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: clip {clip_id!r} tracking file is missing; re-run the import") from None
    except ValueError as err:  # object arrays need pickle: refused
        raise InvalidFileError(f"{path}: clip {clip_id!r} holds a field that needs pickle ({err}); "
                               "tracking arrays must be plain numeric arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise InvalidFileError(f"{path}: clip {clip_id!r} tracking is not a readable .npz ({err}); re-run the import") from None


def load_dataset(root: str | os.PathLike) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise InvalidFileError(f"{root}: not a dataset folder (it does not exist or is not a folder)")
    return Dataset(root, parse_dataset_json(root / DATASET_JSON))


@dataclass
class CheckReport:
    clips: int
    frames: int
    tracked_clips: int
    awaiting_tracking: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(root: str | os.PathLike, *, check_images: bool = True) -> CheckReport:
    """Validate everything: dataset.json, each clip's tracking, audio and (optionally) every frame's PNG header.

    dataset.json errors raise; per-clip problems are collected so one run lists them all.
    """
    import soundfile

    ds = load_dataset(root)
    report = CheckReport(len(ds.clips), 0, 0, [])
    for clip_id, clip in ds.clips.items():
        report.frames += clip.num_frames
        if clip.tracking == AWAITING_TRACKING:
            report.awaiting_tracking.append(clip_id)
            if ds.tracking_path(clip_id).exists():
                report.problems.append(f"clip {clip_id!r}: marked awaiting tracking but {ds.tracking_path(clip_id)} exists")
        else:
            try:
                ds.load_tracking(clip_id)
                report.tracked_clips += 1
            except InvalidFileError as err:
                report.problems.append(str(err))
        audio = ds.audio_path(clip_id)
        if audio is not None:
            try:
                soundfile.info(str(audio))
            except Exception as err:  # noqa: BLE001 - libsndfile raises several kinds
                report.problems.append(f"{audio}: clip {clip_id!r} audio cannot be read ({err})")
        frames_dir = ds.root / "frames" / clip_id
        extra = sorted(frames_dir.glob("*.png"))[clip.num_frames:] if frames_dir.is_dir() else []
        if extra:
            report.problems.append(f"{frames_dir}: clip {clip_id!r} has more frames than num_frames={clip.num_frames}")
        if not check_images:
            continue
        w, h = ds.info.resolution
        kinds = [("frame", ds.frame_path)] + ([("mask", ds.mask_path)] if clip.has_masks else [])
        for what, path_of in kinds:
            for i in range(clip.num_frames):
                path = path_of(clip_id, i)
                try:
                    with Image.open(path) as im:
                        size = im.size
                except FileNotFoundError:
                    report.problems.append(f"{path}: clip {clip_id!r} {what} {i} is missing")
                    break
                except OSError as err:
                    report.problems.append(f"{path}: clip {clip_id!r} {what} {i} is not a readable image ({err})")
                    break
                if size != (w, h):
                    report.problems.append(f"{path}: clip {clip_id!r} {what} {i} is {size[0]}x{size[1]}, dataset says {w}x{h}")
                    break
    return report


# ----------------------------------------------------------------------------------------------- writing


class DatasetWriter:
    """Writes a dataset folder clip by clip.

    Each clip is complete or absent: frames and masks go into a hidden temporary
    folder renamed into place, tracking and audio are written atomically, and
    dataset.json is rewritten (atomically) after every clip. An interrupted
    import therefore leaves a valid dataset of the clips finished so far;
    `append=True` continues it.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        head_model: str,
        expression_names: Iterable[str],
        fps: float,
        resolution: tuple[int, int] | None = None,
        description: str = "",
        append: bool = False,
    ) -> None:
        self.root = Path(root)
        json_path = self.root / DATASET_JSON
        if json_path.exists():
            if not append:
                raise InvalidFileError(f"{self.root}: already holds a dataset; choose an empty folder or append to it")
            self.info = parse_dataset_json(json_path)
            if self.info.head_model != head_model or list(self.info.expression_names) != list(expression_names):
                raise InvalidFileError(f"{json_path}: head model / expression names differ from the data being added")
            if abs(self.info.fps - fps) > 1e-6:
                raise InvalidFileError(f"{json_path}: fps {self.info.fps} differs from the data being added ({fps})")
        else:
            if self.root.exists() and any(p for p in self.root.iterdir() if not p.name.startswith(".")):
                raise InvalidFileError(f"{self.root}: folder is not empty; choose an empty or new folder")
            self.info = DatasetInfo(head_model, tuple(expression_names), float(fps),
                                    tuple(resolution) if resolution else (0, 0), description=description)
        self.root.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root / ".incoming")

    def _write_json(self) -> None:
        import json

        write_text_atomic(self.root / DATASET_JSON, json.dumps(self.info.to_json(), indent=1) + "\n")

    def add_clip(
        self,
        clip_id: str,
        *,
        identity: str,
        emotion: str,
        intensity: float,
        frames: Iterable[np.ndarray],
        masks: Iterable[np.ndarray] | None = None,
        audio: tuple[np.ndarray, int] | None = None,
        tracking: Mapping[str, np.ndarray] | None = None,
        split: str = "train",
        text: str | None = None,
        source: dict | None = None,
    ) -> ClipInfo:
        """Add one clip. frames: RGB uint8 [H, W, 3] each; masks: [H, W] uint8 or float in [0, 1];
        audio: (samples [N] or [N, C], rate); tracking: TRACKING_FIELDS arrays, or None = awaiting tracking.
        """
        check_clip_id(clip_id)
        if clip_id in self.info.clips:
            raise ValueError(f"clip {clip_id!r} is already in {self.root}")
        if emotion not in EMOTIONS:
            raise ValueError(f"emotion {emotion!r} is not one of {EMOTIONS}")
        if not 0.0 <= float(intensity) <= 1.0:
            raise ValueError(f"intensity {intensity} is outside [0, 1]")
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")

        self._first_size: tuple[int, int] | None = None
        incoming = self.root / ".incoming"
        incoming.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{clip_id}.", dir=incoming))
        try:
            num_frames = self._stage_images(staging / "frames", frames, clip_id, "frame", rgb=True)
            num_masks = self._stage_images(staging / "masks", masks, clip_id, "mask", rgb=False) if masks is not None else 0
            if num_frames == 0:
                raise ValueError(f"clip {clip_id!r} has no frames")
            if masks is not None and num_masks != num_frames:
                raise ValueError(f"clip {clip_id!r}: {num_masks} masks for {num_frames} frames")
            if tracking is not None:
                checked = validate_tracking(
                    dict(tracking), path=self.tracking_target(clip_id), clip_id=clip_id,
                    num_frames=num_frames, num_expressions=len(self.info.expression_names),
                )
                with atomic_path(staging / "tracking.npz") as tmp:
                    np.savez(tmp, **{k: np.ascontiguousarray(v) for k, v in checked.items()})
            audio_rel = None
            if audio is not None:
                import soundfile

                samples, rate = audio
                samples = np.asarray(samples, dtype=np.float32)
                if samples.size == 0 or not np.isfinite(samples).all():
                    raise ValueError(f"clip {clip_id!r}: audio is empty or not finite")
                soundfile.write(str(staging / "audio.wav"), np.clip(samples, -1, 1), int(rate), subtype="PCM_16")
                audio_rel = f"audio/{clip_id}.wav"

            # Commit: move the staged pieces into place, then record the clip in dataset.json.
            for sub in ("frames", "masks"):
                if (staging / sub).exists():
                    dest = self.root / sub / clip_id
                    dest.parent.mkdir(exist_ok=True)
                    if dest.exists():
                        shutil.rmtree(dest)  # leftovers of an interrupted earlier attempt
                    os.replace(staging / sub, dest)
            if tracking is not None:
                self.tracking_target(clip_id).parent.mkdir(exist_ok=True)
                os.replace(staging / "tracking.npz", self.tracking_target(clip_id))
            if audio_rel:
                (self.root / "audio").mkdir(exist_ok=True)
                os.replace(staging / "audio.wav", self.root / audio_rel)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        clip = ClipInfo(clip_id, identity, emotion, float(intensity), num_frames, audio_rel,
                        TRACKED if tracking is not None else AWAITING_TRACKING, masks is not None, text, source or {})
        if tuple(self.info.resolution) == (0, 0):
            self.info.resolution = self._first_size
        if identity not in self.info.identities:
            self.info.identities.append(identity)
        self.info.clips[clip_id] = clip
        self.info.splits.setdefault(split, []).append(clip_id)
        self._write_json()
        return clip

    def tracking_target(self, clip_id: str) -> Path:
        return self.root / "tracking" / f"{clip_id}.npz"

    def _stage_images(self, folder: Path, images: Iterable[np.ndarray], clip_id: str, what: str, rgb: bool) -> int:
        folder.mkdir()
        count = 0
        for i, image in enumerate(images):
            a = np.asarray(image)
            if a.dtype != np.uint8:
                a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
            if rgb and (a.ndim != 3 or a.shape[2] != 3):
                raise ValueError(f"clip {clip_id!r} {what} {i}: expected [H, W, 3] RGB, got shape {list(a.shape)}")
            if not rgb and a.ndim != 2:
                raise ValueError(f"clip {clip_id!r} {what} {i}: expected [H, W] mask, got shape {list(a.shape)}")
            h, w = a.shape[:2]
            expected = tuple(self.info.resolution) if tuple(self.info.resolution) != (0, 0) else self._first_size
            if expected is None:
                self._first_size = expected = (w, h)  # the first clip sets the dataset's resolution
            if (w, h) != expected:
                raise ValueError(f"clip {clip_id!r} {what} {i}: size {w}x{h} differs from the dataset's "
                                 f"{expected[0]}x{expected[1]}")
            Image.fromarray(a).save(folder / frame_name(i), compress_level=1)
            count += 1
        return count


# ----------------------------------------------------------------------------------------------- sampling


@dataclass
class FrameRecord:
    """One training frame: image, camera and tracking as torch tensors (float32, CPU)."""

    clip_id: str
    frame_index: int
    time_s: float                 # frame_index / fps: the audio time this frame shows
    image: Tensor                 # [H, W, 3] in [0, 1]
    mask: Tensor | None           # [H, W] in [0, 1], or None
    expression: Tensor            # [E]
    pose: Tensor                  # [5, 3] axis-angle
    translation: Tensor           # [3]
    identity: Tensor              # [S]
    K: Tensor                     # [3, 3]
    viewmat: Tensor               # [4, 4]
    landmarks2d: Tensor | None    # [68, 2] or None
    blink: Tensor | None          # [2] or None
    emotion: int                  # index into EMOTIONS
    intensity: float


def iter_frames(
    dataset: Dataset,
    split: str,
    *,
    shuffle: bool = False,
    seed: int = 0,
    load_images: bool = True,
) -> Iterator[FrameRecord]:
    """Every tracked frame of a split, in clip order or shuffled (reproducibly, by `seed`).

    Raises (naming the clip) when a clip of the split is still awaiting tracking.
    Tracking is loaded once per clip and cached for the iteration.
    """
    clip_ids = dataset.clip_ids(split)
    awaiting = [c for c in clip_ids if dataset.clip(c).tracking == AWAITING_TRACKING]
    if awaiting:
        dataset.load_tracking(awaiting[0])  # raises the clear "awaiting tracking" error
    index = [(c, i) for c in clip_ids for i in range(dataset.clip(c).num_frames)]
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(index))
        index = [index[k] for k in order]
    cache: dict[str, ClipTracking] = {}
    for clip_id, i in index:
        if clip_id not in cache:
            if len(cache) > 8:
                cache.pop(next(iter(cache)))
            cache[clip_id] = dataset.load_tracking(clip_id)
        yield _record(dataset, clip_id, i, cache[clip_id], load_images)


def _record(dataset: Dataset, clip_id: str, i: int, t: ClipTracking, load_images: bool) -> FrameRecord:
    clip = dataset.clip(clip_id)
    image = torch.from_numpy(dataset.load_frame(clip_id, i).astype(np.float32) / 255.0) if load_images else torch.empty(0)
    mask = dataset.load_mask(clip_id, i) if load_images else None
    return FrameRecord(
        clip_id=clip_id,
        frame_index=i,
        time_s=i / dataset.info.fps,
        image=image,
        mask=None if mask is None else torch.from_numpy(mask),
        expression=torch.from_numpy(t.expression[i].copy()),
        pose=torch.from_numpy(t.pose[i].copy()),
        translation=torch.from_numpy(t.translation[i].copy()),
        identity=torch.from_numpy(t.identity.copy()),
        K=torch.from_numpy(t.K[i].copy()),
        viewmat=torch.from_numpy(t.viewmat[i].copy()),
        landmarks2d=None if t.landmarks2d is None else torch.from_numpy(t.landmarks2d[i].copy()),
        blink=None if t.blink is None else torch.from_numpy(t.blink[i].copy()),
        emotion=clip.emotion_index,
        intensity=clip.intensity,
    )


class FrameDataset(torch.utils.data.Dataset):
    """Map-style view of a split's frames for `torch.utils.data.DataLoader` (shuffling, workers).

    Use `collate_frames` as the loader's `collate_fn`. Tracking is cached per
    clip inside each worker.
    """

    def __init__(self, dataset: Dataset, split: str) -> None:
        self.dataset = dataset
        ids = dataset.clip_ids(split)
        awaiting = [c for c in ids if dataset.clip(c).tracking == AWAITING_TRACKING]
        if awaiting:
            dataset.load_tracking(awaiting[0])  # raises the clear "awaiting tracking" error
        self.index = [(c, i) for c in ids for i in range(dataset.clip(c).num_frames)]
        self._tracking: dict[str, ClipTracking] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> FrameRecord:
        clip_id, i = self.index[k]
        if clip_id not in self._tracking:
            if len(self._tracking) > 8:
                self._tracking.pop(next(iter(self._tracking)))
            self._tracking[clip_id] = self.dataset.load_tracking(clip_id)
        return _record(self.dataset, clip_id, i, self._tracking[clip_id], load_images=True)


def collate_frames(records: list[FrameRecord]) -> dict[str, object]:
    """Stack FrameRecords into a batch dict: tensors get a leading [B]; optional fields are None unless all have them."""
    batch: dict[str, object] = {
        "clip_id": [r.clip_id for r in records],
        "frame_index": torch.tensor([r.frame_index for r in records]),
        "time_s": torch.tensor([r.time_s for r in records], dtype=torch.float64),
        "emotion": torch.tensor([r.emotion for r in records]),
        "intensity": torch.tensor([r.intensity for r in records], dtype=torch.float32),
    }
    for name in ("image", "expression", "pose", "translation", "identity", "K", "viewmat"):
        batch[name] = torch.stack([getattr(r, name) for r in records])
    for name in ("mask", "landmarks2d", "blink"):
        values = [getattr(r, name) for r in records]
        batch[name] = torch.stack(values) if all(v is not None for v in values) else None
    return batch

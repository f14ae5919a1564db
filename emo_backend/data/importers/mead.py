"""Import MEAD's folder layout as untracked clips labelled with emotion and intensity.

    <actor>/video/<view>/<emotion>/level_<n>/<nnn>.mp4
    <actor>/audio/<emotion>/level_<n>/<nnn>.m4a        (shared by all views)

Emotion folders are the eight categories (angry, contempt, disgusted, fear,
happy, neutral, sad, surprised); level 1, 2, 3 become intensity 1/3, 2/3, 1.
Neutral clips get intensity 0: in the emotion space (emotion/space.py) neutral
is the origin, one-hot neutral at intensity 0 (MEAD records neutral at level 1 only). Frames are decoded with PyAV at
the videos' own rate. MEAD has no face tracking, so every clip is written
"awaiting tracking": dataset.json lists them, and loading their tracking says a
tracker has to run first. MEAD has no official split: sentence numbers
divisible by `test_every` go to the test split (held-out sentences).
"""

from __future__ import annotations

import re
from pathlib import Path

from emo_backend.data.dataset import DatasetWriter
from emo_backend.data.importers.media import decode_audio, decode_video, video_info
from emo_backend.data.schema import EMOTIONS, ClipInfo
from emo_backend.errors import InvalidFileError

MEAD_EMOTIONS = EMOTIONS  # MEAD's folder names are exactly our categories
_LEVEL = re.compile(r"^level_(\d)$")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv")
AUDIO_EXTS = (".m4a", ".wav", ".aac", ".mp3", ".flac")


def level_intensity(level: int) -> float:
    if level not in (1, 2, 3):
        raise ValueError(f"MEAD intensity level must be 1, 2 or 3, got {level}")
    return level / 3.0


def find_mead_clips(src: Path, views: tuple[str, ...] = ("front",)) -> list[dict]:
    """Every video of the requested views under `src` (one actor folder or a folder of actors)."""
    src = Path(src)
    actors = [src] if (src / "video").is_dir() else sorted(p for p in src.iterdir() if (p / "video").is_dir())
    if not actors:
        raise InvalidFileError(f"{src}: no MEAD actor folder (<actor>/video/<view>/<emotion>/level_<n>/) found")
    clips = []
    for actor in actors:
        for view in views:
            view_dir = actor / "video" / view
            if not view_dir.is_dir():
                raise InvalidFileError(f"{view_dir}: view {view!r} not found for actor {actor.name}; "
                                       f"available: {sorted(p.name for p in (actor / 'video').iterdir())}")
            for emotion_dir in sorted(p for p in view_dir.iterdir() if p.is_dir()):
                if emotion_dir.name not in MEAD_EMOTIONS:
                    raise InvalidFileError(f"{emotion_dir}: unknown emotion folder; MEAD's are {', '.join(MEAD_EMOTIONS)}")
                for level_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                    m = _LEVEL.match(level_dir.name)
                    if not m or int(m.group(1)) not in (1, 2, 3):
                        raise InvalidFileError(f"{level_dir}: expected level_1, level_2 or level_3")
                    level = int(m.group(1))
                    for video in sorted(p for p in level_dir.iterdir() if p.suffix.lower() in VIDEO_EXTS):
                        audio_dir = actor / "audio" / emotion_dir.name / level_dir.name
                        audio = next((audio_dir / (video.stem + ext) for ext in AUDIO_EXTS
                                      if (audio_dir / (video.stem + ext)).exists()), None)
                        clips.append({
                            "actor": actor.name, "view": view, "emotion": emotion_dir.name, "level": level,
                            "number": video.stem, "video": video, "audio": audio,
                        })
    if not clips:
        raise InvalidFileError(f"{src}: no videos found in views {views}")
    return clips


def mead_fps(clips: list[dict]) -> float:
    fps, _, _ = video_info(clips[0]["video"])
    return fps


def import_mead(
    src: str | Path,
    writer: DatasetWriter,
    *,
    views: tuple[str, ...] = ("front",),
    size: tuple[int, int] | None = None,
    test_every: int = 10,
    limit: int | None = None,
    clips: list[dict] | None = None,
) -> list[ClipInfo]:
    """Add MEAD videos to `writer` as awaiting-tracking clips. `size` = (width, height) resizes frames."""
    clips = clips if clips is not None else find_mead_clips(Path(src), views)
    added = []
    for spec in clips[:limit]:
        clip_id = f"{spec['actor']}_{spec['view']}_{spec['emotion']}_l{spec['level']}_{spec['number']}"
        if clip_id in writer.info.clips:
            continue  # appended run: this clip is already in
        fps, _, _ = video_info(spec["video"])
        if abs(fps - writer.info.fps) > 1e-3:
            raise InvalidFileError(f"{spec['video']}: {fps:g} fps, but the dataset is {writer.info.fps:g} fps")
        if spec["audio"] is None:
            raise InvalidFileError(f"{spec['video']}: no matching audio file in "
                                   f"{spec['actor']}/audio/{spec['emotion']}/level_{spec['level']}/")
        number = int(spec["number"]) if spec["number"].isdigit() else 1
        added.append(writer.add_clip(
            clip_id, identity=spec["actor"], emotion=spec["emotion"],
            intensity=0.0 if spec["emotion"] == "neutral" else level_intensity(spec["level"]),
            frames=decode_video(spec["video"], size), audio=decode_audio(spec["audio"]), tracking=None,
            split="test" if test_every and number % test_every == 0 else "train",
            source={"importer": "mead", "video": str(spec["video"]), "audio": str(spec["audio"]),
                    "level": spec["level"], "view": spec["view"]},
        ))
    return added

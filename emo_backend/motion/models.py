"""Where the trained motion networks live, and loading them for a shot.

* A2ET belongs to a head model (it predicts that head's expression bases):
  the bundled one is `assets/models/a2et/` (looked up under the same asset
  roots as avatars, `avatar.bundle.asset_roots`).
* EGD (stage 2) belongs to one avatar: it sits in the avatar's bundle folder
  as `stage2/egd.json` + `stage2/egd.safetensors`. An avatar without it renders
  with stage 1 alone.
"""

from __future__ import annotations

from pathlib import Path

from emo_backend.avatar.bundle import asset_roots

A2ET_SUBDIR = Path("models") / "a2et"
STAGE2_SUBDIR = "stage2"


def find_default_a2et() -> Path | None:
    """The bundled A2ET weights folder, or None when none is installed."""
    for root in asset_roots():
        folder = root / A2ET_SUBDIR
        if (folder / "a2et.json").is_file():
            return folder
    return None


def stage2_folder(avatar_path: str | Path) -> Path | None:
    """An avatar bundle folder's EGD weights folder, or None."""
    folder = Path(avatar_path) / STAGE2_SUBDIR
    return folder if (folder / "egd.json").is_file() else None

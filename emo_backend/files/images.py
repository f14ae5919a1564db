"""Image files: PNG (RGB/RGBA uint8) and single-channel float32 EXR depth, written atomically.

Depth EXRs carry one FLOAT channel named "V" holding camera-space z in metres;
+inf marks pixels nothing covers. "V" because Blender 5.0's Image node reads a
lone "V" channel as a value image but misreads a lone "Z" one; readers here
accept "Z" and "depth" too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emo_backend.errors import InvalidFileError
from emo_backend.files.atomic import atomic_path

DEPTH_CHANNEL = "V"


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def write_png(path: str | os.PathLike, image) -> None:
    """image [H, W, 3] (RGB) or [H, W, 4] (straight-alpha RGBA) uint8 -> PNG at `path`, atomically."""
    from PIL import Image

    image = _to_numpy(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_png needs uint8 pixels, got {image.dtype}; convert with np.round(x * 255)")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"write_png needs [H, W, 3] or [H, W, 4], got {image.shape}")
    mode = "RGB" if image.shape[2] == 3 else "RGBA"
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image), mode=mode).save(tmp, format="PNG")


def read_png(path: str | os.PathLike) -> np.ndarray:
    """PNG -> uint8 [H, W, 3] or [H, W, 4] (greyscale and palette images are converted to RGB/RGBA)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            has_alpha = "A" in im.getbands() or "transparency" in im.info
            return np.asarray(im.convert("RGBA" if has_alpha else "RGB")).copy()
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InvalidFileError(f"{path}: not a readable PNG image ({err}); re-export or re-render it") from None


def write_exr_depth(path: str | os.PathLike, depth) -> None:
    """depth [H, W] float32 (camera z, +inf where empty) -> single-channel "V" EXR at `path`, atomically."""
    import OpenEXR

    depth = _to_numpy(depth)
    if depth.ndim != 2:
        raise ValueError(f"write_exr_depth needs [H, W], got {depth.shape}")
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, {DEPTH_CHANNEL: depth}) as exr:
            exr.write(str(tmp))


def read_exr_depth(path: str | os.PathLike) -> np.ndarray:
    """Single-channel depth EXR -> float32 [H, W]. Accepts a channel named "V", "Z", "depth" or "Depth.V"/"depth.Z"."""
    import OpenEXR

    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"{path}: no such depth file")
    try:
        with OpenEXR.File(str(path)) as exr:
            channels = exr.channels()
            for name in (DEPTH_CHANNEL, "Z", "depth", "Depth", "Depth.V", "depth.Z", "Depth.Z"):
                if name in channels:
                    return np.ascontiguousarray(channels[name].pixels, dtype=np.float32)
    except RuntimeError as err:
        raise InvalidFileError(f"{path}: not a readable EXR file ({err}); re-render it") from None
    raise InvalidFileError(
        f"{path}: EXR has no depth channel (looked for 'V', 'Z' or 'depth'; it has {sorted(channels)}); "
        "write depth with a channel named Z"
    )

"""Saving and loading network weights: a folder with `<name>.json` (config + info) and `<name>.safetensors`.

No pickle: a weights folder may come from someone else. Loading checks every
tensor's name, shape and finiteness against a freshly built network and names
the file and tensor at fault.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import torch
from torch import nn

from emo_backend.errors import InvalidFileError

M = TypeVar("M", bound=nn.Module)


def save_module(module: nn.Module, folder: str | os.PathLike, name: str, config: dict, info: dict | None = None) -> Path:
    """Write `<folder>/<name>.json` and `<name>.safetensors` atomically (both or neither replace old ones)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    try:
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, str(staging / f"{name}.safetensors"))
        meta = {"format": f"emosplat-{name}", "format_version": 1, "config": config, "info": info or {}}
        (staging / f"{name}.json").write_text(json.dumps(meta, indent=2))
        for suffix in (".safetensors", ".json"):  # weights first: a json always points at complete weights
            os.replace(staging / f"{name}{suffix}", folder / f"{name}{suffix}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_module(folder: str | os.PathLike, name: str, build: Callable[[dict], M]) -> tuple[M, dict]:
    """Rebuild a network from its folder: `build(config)` makes it, the safetensors fill it. -> (module, info)"""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    json_path, weights_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    for path in (json_path, weights_path):
        if not path.is_file():
            raise InvalidFileError(f"{path}: missing; a {name} weights folder holds {name}.json and {name}.safetensors")
    try:
        meta = json.loads(json_path.read_text())
        config = meta["config"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise InvalidFileError(f"{json_path}: not a valid {name} description ({err})") from None
    if meta.get("format") != f"emosplat-{name}":
        raise InvalidFileError(f"{json_path}: field 'format' is {meta.get('format')!r}, expected 'emosplat-{name}'")
    try:
        module = build(config)
    except (TypeError, ValueError) as err:
        raise InvalidFileError(f"{json_path}: field 'config' is not a valid {name} configuration ({err})") from None
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise InvalidFileError(f"{weights_path}: not a readable safetensors file ({err}); re-export or re-download it") from None
    expected = module.state_dict()
    for key, ref in expected.items():
        if key not in tensors:
            raise InvalidFileError(f"{weights_path}: tensor {key!r} is missing")
        got = tensors[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise InvalidFileError(f"{weights_path}: tensor {key!r} has shape {tuple(got.shape)}, expected {tuple(ref.shape)}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise InvalidFileError(f"{weights_path}: tensor {key!r} contains NaN or infinite values")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise InvalidFileError(f"{weights_path}: unexpected tensors {extra[:3]}; the file does not match {json_path.name}")
    module.load_state_dict({k: tensors[k].to(v.dtype) for k, v in expected.items()})
    module.eval()
    return module, meta.get("info", {})

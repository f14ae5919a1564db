"""Training checkpoints: one safetensors file, written atomically, no pickle.

Everything needed to continue a run bit-for-bit lives in one file:

* `param/<name>`     the optimised tensors (Gaussian blendshapes B0, ΔB_k, ...)
* `buffer/<name>`    other per-run tensors (binding, densification statistics)
* `optim/<i>/<key>`  Adam state per parameter (exp_avg, exp_avg_sq, step)
* `rng/torch`, `rng/cuda/<d>`, `rng/gen/<name>`  random generator states
* metadata `emosplat` (JSON): format, step, the optimizer's param groups (with
  their parameter names), numpy's and Python's RNG states and free-form `meta`.

A crash while saving leaves the previous checkpoint intact (temp + rename).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emo_backend.errors import InvalidFileError
from emo_backend.files.atomic import atomic_path

FORMAT = "emosplat-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    step: int
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    optimizer_state: dict | None    # ready for optimizer.load_state_dict (params as indices, as torch uses)
    param_names: list[str]          # parameter name of each optimizer index
    generator_states: dict[str, Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    torch_rng: Tensor | None = None
    cuda_rng: list[Tensor] = field(default_factory=list)
    numpy_rng: dict | None = None
    python_rng: list | None = None

    def restore_global_rng(self) -> None:
        """Put torch's, CUDA's, numpy's and Python's global generators back where they were at save time."""
        if self.torch_rng is not None:
            torch.set_rng_state(self.torch_rng)
        if self.cuda_rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.cuda_rng)
        if self.numpy_rng is not None:
            s = self.numpy_rng
            np.random.set_state((s["kind"], np.asarray(s["keys"], np.uint32), s["pos"], s["has_gauss"], s["gauss"]))
        if self.python_rng is not None:
            version, internal, gauss = self.python_rng
            random.setstate((version, tuple(internal), gauss))


def _param_names(optimizer: torch.optim.Optimizer, params: dict[str, Tensor]) -> list[str]:
    by_id = {id(t): name for name, t in params.items()}
    names = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in by_id:
                raise ValueError("the optimizer holds a tensor that is not among `params`")
            names.append(by_id[id(p)])
    return names


def save_checkpoint(
    path: str | os.PathLike,
    step: int,
    params: dict[str, Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    buffers: dict[str, Tensor] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a checkpoint to `path` (.safetensors) atomically; returns the path."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    for name, t in params.items():
        tensors[f"param/{name}"] = t.detach()
    for name, t in (buffers or {}).items():
        tensors[f"buffer/{name}"] = t.detach()
    header: dict = {"format": FORMAT, "version": VERSION, "step": int(step), "meta": meta or {}}
    if optimizer is not None:
        names = _param_names(optimizer, params)
        sd = optimizer.state_dict()
        for index, state in sd["state"].items():
            for key, value in state.items():
                if not isinstance(value, Tensor):
                    value = torch.tensor(value)
                tensors[f"optim/{index}/{key}"] = value.detach()
        groups = []
        for group in sd["param_groups"]:
            groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
        header["optimizer"] = {"class": type(optimizer).__name__, "param_groups": groups, "param_names": names}
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for d, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{d}"] = state
    for name, gen in (generators or {}).items():
        tensors[f"rng/gen/{name}"] = gen.get_state()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    header["numpy_rng"] = {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                           "gauss": float(gauss)}
    version, internal, gauss_next = random.getstate()
    header["python_rng"] = [version, list(internal), gauss_next]
    tensors = {k: v.to("cpu").contiguous() for k, v in tensors.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"emosplat": json.dumps(header)})
    return path


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`; a bad file raises InvalidFileError naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"checkpoint {path} not found; start without --resume or point at an existing run")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = json.loads((f.metadata() or {}).get("emosplat", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise InvalidFileError(f"checkpoint {path} is unreadable ({err}); delete it to start over") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidFileError(f"{path} is not an EmoSplat training checkpoint (no '{FORMAT}' header)")
    if header.get("version") != VERSION:
        raise InvalidFileError(f"checkpoint {path} has version {header.get('version')}, this EmoSplat reads {VERSION}")

    def section(prefix: str, to_device: bool = True) -> dict[str, Tensor]:
        out = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        return {k: v.to(device) for k, v in out.items()} if to_device else out

    for name, t in section("param/", False).items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise InvalidFileError(f"checkpoint {path}: parameter {name!r} has NaN or infinite values; "
                                   "training diverged before this save — resume from an earlier run or start over")
    optimizer_state = None
    names: list[str] = []
    if "optimizer" in header:
        opt = header["optimizer"]
        names = list(opt["param_names"])
        state: dict[int, dict[str, Tensor]] = {}
        for key, value in section("optim/").items():
            index, name = key.split("/", 1)
            state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
        groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in opt["param_groups"]]
        optimizer_state = {"state": state, "param_groups": groups}
    cuda = [v for k, v in sorted(tensors.items()) if k.startswith("rng/cuda/")]
    return Checkpoint(
        step=int(header["step"]),
        params=section("param/"),
        buffers=section("buffer/"),
        optimizer_state=optimizer_state,
        param_names=names,
        generator_states=section("rng/gen/", False),
        meta=header.get("meta", {}),
        torch_rng=tensors.get("rng/torch"),
        cuda_rng=cuda,
        numpy_rng=header.get("numpy_rng"),
        python_rng=header.get("python_rng"),
    )

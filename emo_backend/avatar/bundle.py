"""The avatar bundle: save, load and validate (DESIGN.md, Files).

A bundle is a folder, or the same files zipped into one `.emosplat` file:

    avatar.json                format, version, head model id, counts, names, dtypes, training, license
    gaussians.safetensors      B0 and its binding: face_ids, bary, offsets, parts, quats, log_scales,
                               opacity_logits, colors, identity
    blendshapes.safetensors    ΔB_k, sparse by rows: basis k owns rows[basis_offsets[k]:basis_offsets[k+1]]
                               (Gaussian ids, increasing) and the matching slices of delta_means,
                               delta_rotations, delta_log_scales, delta_colors, delta_opacity_logits
    head.safetensors           the head needed to evaluate: v_template (identity baked in), faces, exprdirs,
                               j_regressor, parents, lbs_weights, landmark_faces, landmark_bary,
                               region.<name>, optional posedirs and vertex_colors

A bundle is self-contained: the head model is rebuilt from it. With
`half=True` the big delta tensors (blendshape deltas, exprdirs) are stored as
float16 and deltas below what any render can show (1 µm, 1e-5 rad, ...) are
dropped; everything loads back as float32. Loading never unpickles anything
and fails with `InvalidFileError` naming the file and the field.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from emo_backend.avatar.binding import PART_NAMES, gaussian_skin_weights
from emo_backend.avatar.blendshapes import GaussianAvatar
from emo_backend.errors import EmoSplatError, InvalidFileError
from emo_backend.head.model import JOINT_NAMES, HeadModel

FORMAT = "emosplat-avatar"
FORMAT_VERSION = 1
BUNDLE_SUFFIX = ".emosplat"
MANIFEST = "avatar.json"
GAUSSIANS_FILE = "gaussians.safetensors"
BLENDSHAPES_FILE = "blendshapes.safetensors"
HEAD_FILE = "head.safetensors"
TENSOR_FILES = (GAUSSIANS_FILE, BLENDSHAPES_FILE, HEAD_FILE)
SOURCE_ASSETS = Path(__file__).resolve().parents[2] / "assets"  # <repo>/assets in a source checkout
MAX_MEMBER_BYTES = 4 << 30  # a zipped member larger than this is not an avatar (zip bomb guard)

DELTA_FIELDS = ("delta_means", "delta_rotations", "delta_log_scales", "delta_colors", "delta_opacity_logits")
# With half=True, a (basis, Gaussian) delta whose every channel is below these is dropped: far under a pixel.
INVISIBLE_DELTA = {"delta_means": 1e-6, "delta_rotations": 1e-5, "delta_log_scales": 1e-5, "delta_colors": 1e-4,
                   "delta_opacity_logits": 1e-4}
FLOAT16_MAX = 65504.0
REPAIR_HINT = "The avatar bundle is damaged or was not written by EmoSplat: export or build it again."

# Tensor fields: (file, name) -> (kind, shape with symbolic counts). Optional fields are listed apart.
GAUSSIAN_FIELDS = {
    "face_ids": ("int", ("N",)),
    "bary": ("float", ("N", 3)),
    "offsets": ("float", ("N", 3)),
    "parts": ("int", ("N",)),
    "quats": ("float", ("N", 4)),
    "log_scales": ("float", ("N", 3)),
    "opacity_logits": ("float", ("N",)),
    "colors": ("float", ("N", 3)),
    "identity": ("float", ("S",)),
}
BLENDSHAPE_FIELDS = {
    "rows": ("int", ("R",)),
    "basis_offsets": ("int", ("E+1",)),
    "delta_means": ("float", ("R", 3)),
    "delta_rotations": ("float", ("R", 3)),
    "delta_log_scales": ("float", ("R", 3)),
    "delta_colors": ("float", ("R", 3)),
    "delta_opacity_logits": ("float", ("R",)),
}
HEAD_FIELDS = {
    "v_template": ("float", ("V", 3)),
    "faces": ("int", ("F", 3)),
    "exprdirs": ("float", ("V", 3, "E")),
    "j_regressor": ("float", ("J", "V")),
    "parents": ("int", ("J",)),
    "lbs_weights": ("float", ("V", "J")),
    "landmark_faces": ("int", ("L",)),
    "landmark_bary": ("float", ("L", 3)),
}
OPTIONAL_HEAD_FIELDS = {
    "posedirs": ("float", ("9(J-1)", "3V")),
    "vertex_colors": ("float", ("V", 3)),
}
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.int32: "int32", torch.int64: "int64",
               torch.uint8: "uint8"}


# ----------------------------------------------------------------------------------------------- paths


def asset_roots() -> list[Path]:
    """Where bundled assets are looked up, in order.

    1. every folder in $EMOSPLAT_ASSETS (os.pathsep-separated), for relocated installs;
    2. <repo>/assets next to the `emo_backend` package (a source checkout);
    3. <sys.prefix>/share/emosplat/assets (an installed package's data files).
    """
    roots = [Path(p) for p in os.environ.get("EMOSPLAT_ASSETS", "").split(os.pathsep) if p]
    roots.append(SOURCE_ASSETS)
    roots.append(Path(sys.prefix) / "share" / "emosplat" / "assets")
    return roots


def resolve_avatar_path(name_or_path: str | os.PathLike) -> Path:
    """"default" (or another bundled avatar's name) or a path -> the bundle's path (folder or .emosplat).

    A bare name (no path separator) is looked up as avatars/<name> and
    avatars/<name>.emosplat under `asset_roots()` first; write ./name for a
    local folder of that name.
    """
    name = str(name_or_path)
    if name and os.sep not in name and "/" not in name:
        stem = name[: -len(BUNDLE_SUFFIX)] if name.endswith(BUNDLE_SUFFIX) else name
        for root in asset_roots():
            for candidate in (root / "avatars" / stem, root / "avatars" / (stem + BUNDLE_SUFFIX)):
                if (candidate / MANIFEST).is_file() or candidate.is_file():
                    return candidate.resolve()
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.resolve()
    if name == "default":
        looked = ", ".join(str(r / "avatars") for r in asset_roots())
        raise InvalidFileError(f"the default avatar is not installed (looked in {looked}): build it with "
                               "`python -m emo_backend.avatar.default`, or give an avatar's path.")
    raise InvalidFileError(f"avatar {path} does not exist: give the path of an avatar folder or .emosplat file.")


# ------------------------------------------------------------------------------------------------ save


def _license(model_id: str) -> dict:
    if model_id.lower().startswith("flame"):
        return {
            "head_model": "FLAME-derived",
            "notice": "Contains data derived from the FLAME head model (https://flame.is.tue.mpg.de). The FLAME "
                      "license applies: non-commercial scientific research only; do not share this avatar "
                      "with anyone who has not accepted that license.",
        }
    return {"head_model": model_id, "notice": "Built on the EmoSplat open head model; no third-party data."}


def _half_if_safe(t: Tensor) -> Tensor:
    t = t.detach().float()
    return t.half() if t.numel() == 0 or t.abs().max() <= FLOAT16_MAX else t


def _sparse_deltas(avatar: GaussianAvatar, half: bool) -> dict[str, Tensor]:
    """Dense [E, N, ...] deltas -> rows/basis_offsets/packed deltas, dropping all-zero (or invisible) entries."""
    e, n = avatar.num_expressions, avatar.num_gaussians
    dense = {f: getattr(avatar, f).detach().float().cpu().reshape(e, n, -1) for f in DELTA_FIELDS}
    if half:
        dense = {f: torch.where(d.abs() < INVISIBLE_DELTA[f], torch.zeros_like(d), d) for f, d in dense.items()}
        dense = {f: _half_if_safe(d) for f, d in dense.items()}
    keep = torch.zeros(e, n, dtype=torch.bool)
    for d in dense.values():
        keep |= (d != 0).any(-1)
    basis, rows = torch.nonzero(keep, as_tuple=True)  # row-major: grouped by basis, rows increasing
    counts = torch.bincount(basis, minlength=e)
    out = {
        "rows": rows.to(torch.int32),
        "basis_offsets": torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]),
    }
    for f, d in dense.items():
        packed = d[basis, rows]
        out[f] = packed[:, 0] if f == "delta_opacity_logits" else packed
    return out


def _bundle_tensors(avatar: GaussianAvatar, half: bool) -> dict[str, dict[str, Tensor]]:
    head = avatar.head.to("cpu")
    gaussians = {
        "face_ids": avatar.face_ids.to(torch.int32),
        "bary": avatar.bary,
        "offsets": avatar.offsets,
        "parts": avatar.parts.to(torch.uint8),
        "quats": avatar.quats,
        "log_scales": avatar.log_scales,
        "opacity_logits": avatar.opacity_logits,
        "colors": avatar.colors,
        "identity": avatar.identity.reshape(-1),
    }
    head_tensors = {
        "v_template": head.v_template,
        "faces": head.faces.to(torch.int32),
        "exprdirs": _half_if_safe(head.exprdirs) if half else head.exprdirs,
        "j_regressor": head.j_regressor,
        "parents": head.parents.to(torch.int64),
        "lbs_weights": head.lbs_weights,
        "landmark_faces": head.landmark_faces.to(torch.int32),
        "landmark_bary": head.landmark_bary,
        **{f"region.{name}": ids.to(torch.int32) for name, ids in head.regions.items()},
    }
    if head.posedirs is not None:
        head_tensors["posedirs"] = _half_if_safe(head.posedirs) if half else head.posedirs
    if head.vertex_colors is not None:
        head_tensors["vertex_colors"] = head.vertex_colors
    files = {GAUSSIANS_FILE: gaussians, BLENDSHAPES_FILE: _sparse_deltas(avatar, half), HEAD_FILE: head_tensors}
    return {
        name: {k: (v.detach().cpu().float() if v.is_floating_point() and v.dtype != torch.float16 else v.detach().cpu())
               .contiguous() for k, v in tensors.items()}
        for name, tensors in files.items()
    }


def _manifest(avatar: GaussianAvatar, tensors: dict[str, dict[str, Tensor]]) -> dict:
    head = avatar.head
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "head_model_id": head.model_id,
        "counts": {
            "gaussians": avatar.num_gaussians,
            "expressions": avatar.num_expressions,
            "vertices": head.num_vertices,
            "faces": int(head.faces.shape[0]),
            "joints": int(head.parents.shape[0]),
            "landmarks": int(head.landmark_faces.shape[0]),
            "identity": int(avatar.identity.numel()),
            "delta_rows": int(tensors[BLENDSHAPES_FILE]["rows"].shape[0]),
        },
        "expr_names": list(head.expr_names),
        "joint_names": list(JOINT_NAMES),
        "part_names": list(PART_NAMES),
        "regions": sorted(head.regions),
        "conventions": {
            "units": "metres",
            "avatar_space": "+Y up, +Z out of the face, +X subject's left",
            "quats": "wxyz",
            "rotation_deltas": "axis-angle in avatar space, composed on the left: exp(sum psi_k dw_k) * q0",
            "scales": "log", "opacities": "logit", "colors": "RGB",
            "offsets": "triangle frame: t = unit (v1 - v0), n = unit normal, b = n x t",
        },
        "dtypes": {file: {k: DTYPE_NAMES.get(v.dtype, str(v.dtype)) for k, v in t.items()}
                   for file, t in tensors.items()},
        "training": avatar.training or {},
        "license": _license(head.model_id),
    }


def _looks_like_bundle(path: Path) -> bool:
    if path.is_dir():
        return (path / MANIFEST).is_file() or not any(path.iterdir())
    return path.suffix == BUNDLE_SUFFIX and zipfile.is_zipfile(path)


def save_avatar(avatar: GaussianAvatar, path: str | os.PathLike, *, overwrite: bool = False, half: bool = True) -> Path:
    """Write `avatar` as a bundle folder, or a zipped bundle if `path` ends in .emosplat. Atomic.

    An existing bundle is replaced only with overwrite=True (and a path that is
    not an avatar bundle never is). Returns the written path.
    """
    target = Path(path).expanduser()
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise EmoSplatError(f"{target} already exists: choose another path or pass overwrite=True (--overwrite).")
        if not _looks_like_bundle(target):
            raise EmoSplatError(f"refusing to overwrite {target}: it is not an avatar bundle. Choose another path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = _bundle_tensors(avatar, half)
    payload = {name: save_safetensors_bytes(t) for name, t in tensors.items()}
    payload[MANIFEST] = (json.dumps(_manifest(avatar, tensors), indent=2, default=str) + "\n").encode("utf-8")

    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        if target.suffix == BUNDLE_SUFFIX:
            staged = staging / target.name
            with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in payload.items():
                    zf.writestr(name, data)
        else:
            staged = staging / "bundle"
            staged.mkdir()
            for name, data in payload.items():
                (staged / name).write_bytes(data)
        _replace(staged, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace(staged: Path, target: Path, staging: Path) -> None:
    """Move `staged` onto `target`; an old target is moved aside first and deleted only after success."""
    old = None
    if target.exists():
        old = staging / "previous"
        os.replace(target, old)
    try:
        os.replace(staged, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise


# ------------------------------------------------------------------------------------------------ load


class _Bundle:
    """Read access to the files of a folder or zipped bundle; never extracts anything."""

    def __init__(self, path: Path):
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if path.is_dir():
            return
        if not path.is_file():
            raise InvalidFileError(f"avatar {path} does not exist: check the path.")
        if not zipfile.is_zipfile(path):
            raise InvalidFileError(
                f"{path} is not an avatar bundle: expected a folder with {MANIFEST} or a zipped {BUNDLE_SUFFIX} file."
            )
        try:
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise InvalidFileError(f"{path}: the zip archive is damaged ({err}). {REPAIR_HINT}") from None
        # The folder may be zipped flat or as one top-level folder.
        manifests = [n for n in names if n == MANIFEST or (n.endswith("/" + MANIFEST) and n.count("/") == 1)]
        if len(manifests) != 1:
            raise InvalidFileError(f"{path}: no {MANIFEST} in the archive (or more than one). {REPAIR_HINT}")
        self.prefix = manifests[0][: -len(MANIFEST)]

    def label(self, name: str) -> str:
        return f"{self.path}:{name}" if self.zip is not None else str(self.path / name)

    def read(self, name: str) -> bytes:
        if self.zip is None:
            file = self.path / name
            if not file.is_file():
                raise InvalidFileError(f"{self.label(name)} is missing. {REPAIR_HINT}")
            return file.read_bytes()
        try:
            info = self.zip.getinfo(self.prefix + name)
        except KeyError:
            raise InvalidFileError(f"{self.label(name)} is missing from the archive. {REPAIR_HINT}") from None
        if info.file_size > MAX_MEMBER_BYTES:
            raise InvalidFileError(f"{self.label(name)} claims {info.file_size} bytes: too large for an avatar.")
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise InvalidFileError(f"{self.label(name)}: cannot read it from the archive ({err}). {REPAIR_HINT}") from None


def _read_manifest(bundle: _Bundle) -> dict:
    label = bundle.label(MANIFEST)
    try:
        manifest = json.loads(bundle.read(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidFileError(f"{label} is not JSON ({err}). {REPAIR_HINT}") from None
    if not isinstance(manifest, dict):
        raise InvalidFileError(f"{label} is not a JSON object. {REPAIR_HINT}")
    if manifest.get("format") != FORMAT:
        raise InvalidFileError(f"{label}: field 'format' is {manifest.get('format')!r}, expected {FORMAT!r}: "
                               "this is not an EmoSplat avatar.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidFileError(f"{label}: field 'format_version' is missing or not an integer. {REPAIR_HINT}")
    if version > FORMAT_VERSION:
        raise InvalidFileError(f"{label}: format_version {version} is newer than this EmoSplat reads "
                               f"({FORMAT_VERSION}): update EmoSplat.")
    if version < 1:
        raise InvalidFileError(f"{label}: field 'format_version' must be >= 1, got {version}. {REPAIR_HINT}")
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        raise InvalidFileError(f"{label}: field 'counts' is missing or not an object. {REPAIR_HINT}")
    for key in ("gaussians", "expressions", "vertices", "faces", "joints", "landmarks", "identity", "delta_rows"):
        value = counts.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidFileError(f"{label}: field 'counts.{key}' is missing or not a non-negative integer. "
                                   f"{REPAIR_HINT}")
    if counts["joints"] != len(JOINT_NAMES):
        raise InvalidFileError(f"{label}: field 'counts.joints' is {counts['joints']}, expected {len(JOINT_NAMES)}.")
    for key, expected in (("expr_names", counts["expressions"]), ("regions", None)):
        names = manifest.get(key)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or (
            expected is not None and len(names) != expected
        ):
            need = f"a list of {expected} strings" if expected is not None else "a list of strings"
            raise InvalidFileError(f"{label}: field '{key}' must be {need}. {REPAIR_HINT}")
    if not isinstance(manifest.get("head_model_id"), str):
        raise InvalidFileError(f"{label}: field 'head_model_id' is missing or not a string. {REPAIR_HINT}")
    return manifest


def _read_tensors(bundle: _Bundle, name: str) -> dict[str, Tensor]:
    label = bundle.label(name)
    data = bundle.read(name)
    header_len = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else -1
    if not 0 <= header_len <= len(data) - 8 or data[8:9] != b"{":
        # Not safetensors. Say so plainly when it is a pickle (protocol 2+) or a torch.save zip.
        if (data[:1] == b"\x80" and data[1:2] in b"\x02\x03\x04\x05") or data[:4] == b"PK\x03\x04":
            raise InvalidFileError(f"{label} is a pickle / torch.save file, not safetensors. EmoSplat never loads "
                                   "pickles (they can run code): do not use this file.")
        if len(data) < 8 or header_len > len(data) - 8:
            raise InvalidFileError(f"{label} is truncated ({len(data)} bytes) or not a safetensors file. "
                                   f"{REPAIR_HINT}")
        raise InvalidFileError(f"{label} is not a valid safetensors file. {REPAIR_HINT}")
    try:
        return load_safetensors_bytes(data)
    except Exception as err:  # safetensors raises its own error types for every malformed buffer
        raise InvalidFileError(f"{label} is not a valid safetensors file ({err}). {REPAIR_HINT}") from None


def _check(tensors: dict[str, Tensor], spec: dict, sizes: dict[str, int], label: str, required: bool = True) -> None:
    for field, (kind, shape) in spec.items():
        if field not in tensors:
            if required:
                raise InvalidFileError(f"{label}: field '{field}' is missing. {REPAIR_HINT}")
            continue
        t = tensors[field]
        allowed = FLOAT_DTYPES if kind == "float" else INT_DTYPES
        if t.dtype not in allowed:
            raise InvalidFileError(f"{label}: field '{field}' has dtype {t.dtype}, expected {kind}. {REPAIR_HINT}")
        expected = tuple(sizes[s] if isinstance(s, str) else s for s in shape)
        if tuple(t.shape) != expected:
            named = "[" + ", ".join(str(s) for s in shape) + "]"
            raise InvalidFileError(f"{label}: field '{field}' has shape {list(t.shape)}, expected {list(expected)} "
                                   f"({named}). {REPAIR_HINT}")
        if kind == "float" and not torch.isfinite(t).all():
            raise InvalidFileError(f"{label}: field '{field}' contains NaN or infinite values. {REPAIR_HINT}")


def _check_range(t: Tensor, low: int, high: int, label: str, field: str) -> None:
    if t.numel() and (int(t.min()) < low or int(t.max()) >= high):
        raise InvalidFileError(f"{label}: field '{field}' has values outside [{low}, {high}). {REPAIR_HINT}")


def load_avatar(path: str | os.PathLike, device: torch.device | str = "cpu") -> GaussianAvatar:
    """Load and validate a bundle (folder or .emosplat, or a bundled avatar's name such as "default")."""
    bundle = _Bundle(resolve_avatar_path(path))
    manifest = _read_manifest(bundle)
    c = manifest["counts"]
    sizes = {"N": c["gaussians"], "E": c["expressions"], "V": c["vertices"], "F": c["faces"], "J": c["joints"],
             "L": c["landmarks"], "S": c["identity"], "R": c["delta_rows"], "E+1": c["expressions"] + 1,
             "9(J-1)": 9 * (c["joints"] - 1), "3V": 3 * c["vertices"]}
    g = _read_tensors(bundle, GAUSSIANS_FILE)
    b = _read_tensors(bundle, BLENDSHAPES_FILE)
    h = _read_tensors(bundle, HEAD_FILE)
    g_label, b_label, h_label = (bundle.label(n) for n in TENSOR_FILES)
    _check(g, GAUSSIAN_FIELDS, sizes, g_label)
    _check(b, BLENDSHAPE_FIELDS, sizes, b_label)
    _check(h, HEAD_FIELDS, sizes, h_label)
    _check(h, OPTIONAL_HEAD_FIELDS, sizes, h_label, required=False)
    regions = {}
    for name in manifest["regions"]:
        field = f"region.{name}"
        _check(h, {field: ("int", (h[field].shape[0] if field in h else 0,))}, sizes, h_label)
        regions[name] = h[field].long()
        _check_range(regions[name], 0, c["faces"], h_label, field)

    _check_range(g["face_ids"], 0, c["faces"], g_label, "face_ids")
    _check_range(g["parts"], 0, len(PART_NAMES), g_label, "parts")
    if g["bary"].numel() and (g["bary"].float().sum(-1) - 1).abs().max() > 1e-3:
        raise InvalidFileError(f"{g_label}: field 'bary' has rows that do not sum to 1. {REPAIR_HINT}")
    if g["quats"].numel() and (g["quats"].float().norm(dim=-1) < 1e-8).any():
        raise InvalidFileError(f"{g_label}: field 'quats' has zero-length quaternions. {REPAIR_HINT}")
    _check_range(h["faces"], 0, c["vertices"], h_label, "faces")
    _check_range(h["landmark_faces"], 0, c["faces"], h_label, "landmark_faces")
    parents = h["parents"].long()
    if parents.numel() and (parents[0] != -1 or any(not 0 <= int(parents[j]) < j for j in range(1, len(parents)))):
        raise InvalidFileError(f"{h_label}: field 'parents' is not a kinematic tree (parents[0] = -1, "
                               f"parents[j] < j). {REPAIR_HINT}")
    rows, offsets = b["rows"].long(), b["basis_offsets"].long()
    _check_range(rows, 0, c["gaussians"], b_label, "rows")
    if int(offsets[0]) != 0 or int(offsets[-1]) != c["delta_rows"] or (offsets[1:] < offsets[:-1]).any():
        raise InvalidFileError(f"{b_label}: field 'basis_offsets' must rise from 0 to {c['delta_rows']}. "
                               f"{REPAIR_HINT}")
    basis = torch.repeat_interleave(torch.arange(c["expressions"]), offsets[1:] - offsets[:-1])
    if rows.numel() > 1 and not ((rows[1:] > rows[:-1]) | (basis[1:] != basis[:-1])).all():
        raise InvalidFileError(f"{b_label}: field 'rows' must increase within each basis. {REPAIR_HINT}")

    head = HeadModel(
        model_id=manifest["head_model_id"],
        v_template=h["v_template"].float(),
        faces=h["faces"].long(),
        shapedirs=torch.zeros(c["vertices"], 3, 0),
        exprdirs=h["exprdirs"].float(),
        expr_names=tuple(manifest["expr_names"]),
        j_regressor=h["j_regressor"].float(),
        parents=parents,
        lbs_weights=h["lbs_weights"].float(),
        landmark_faces=h["landmark_faces"].long(),
        landmark_bary=h["landmark_bary"].float(),
        regions=regions,
        posedirs=h["posedirs"].float() if "posedirs" in h else None,
        vertex_colors=h["vertex_colors"].float() if "vertex_colors" in h else None,
    )
    n, e = c["gaussians"], c["expressions"]
    deltas = {}
    for field in DELTA_FIELDS:
        packed = b[field].float()
        dense = torch.zeros(e, n, *packed.shape[1:])
        dense[basis, rows] = packed
        deltas[field] = dense
    face_ids, bary, parts = g["face_ids"].long(), g["bary"].float(), g["parts"].long()
    training = manifest.get("training")
    avatar = GaussianAvatar(
        head=head,
        identity=g["identity"].float(),
        face_ids=face_ids,
        bary=bary,
        offsets=g["offsets"].float(),
        parts=parts,
        quats=g["quats"].float(),
        log_scales=g["log_scales"].float(),
        opacity_logits=g["opacity_logits"].float(),
        colors=g["colors"].float(),
        skin_weights=gaussian_skin_weights(head, face_ids, bary, parts),
        training=training if isinstance(training, dict) else {},
        **deltas,
    )
    return avatar.to(device)


def read_manifest(path: str | os.PathLike) -> dict:
    """avatar.json of a bundle, validated, without loading its tensors (for listings and the add-on's UI)."""
    return _read_manifest(_Bundle(resolve_avatar_path(path)))


def bundle_size_bytes(path: str | os.PathLike) -> int:
    """On-disk size of a bundle folder or .emosplat file."""
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


__all__ = ["save_avatar", "load_avatar", "resolve_avatar_path", "read_manifest", "asset_roots", "bundle_size_bytes",
           "FORMAT", "FORMAT_VERSION", "BUNDLE_SUFFIX"]

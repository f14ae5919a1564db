"""Load a user-supplied FLAME model into a `HeadModel`.

FLAME is licensed; the project never ships it. Users download it from
https://flame.is.tue.mpg.de and point us at one of:

* `generic_model.pkl` / `flame2023.pkl`: a Python-2 pickle (protocol 2) of a
  dict whose arrays are numpy arrays, chumpy `Ch` objects and a scipy sparse
  `J_regressor`;
* a `.npz` with the same keys as plain arrays (loaded with allow_pickle=False).

Pickles can run arbitrary code when loaded, so they are read with
`RestrictedUnpickler`: it admits only numpy array reconstruction, scipy sparse
matrices, chumpy arrays and the builtin set (part of chumpy's state), and
builds all of them as plain numpy / scipy data without importing chumpy or
running any class's own unpickling code. Anything else is refused before it is
called.

Keys used: v_template [V, 3], f [F, 3], shapedirs [V, 3, S+E] (identity bases
first, then expression bases), posedirs [V, 3, 36], J_regressor [5, V],
weights [V, 5], kintree_table [2, 5].

Landmarks live in a separate FLAME file (`landmark_embedding.npy`, a pickled
dict inside a .npy; or a .pkl/.npz with the same keys). Without one, the model's
landmark tensors are empty ([0] and [0, 3]) and `lbs.landmarks()` returns [B, 0, 3].
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch

from emo_backend.errors import InvalidFileError
from emo_backend.head.model import NUM_JOINTS, HeadModel

FLAME_NUM_IDENTITY = 300  # FLAME 2020/2023: shapedirs = 300 identity + 100 expression bases
NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)  # 36: (R - I) of the four non-root joints
OFFICIAL_SITE = "https://flame.is.tue.mpg.de"
_PICKLE_PROTO2_MAGIC = b"\x80\x02"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


# ------------------------------------------------------------------------------------------- unpickler


class ChumpyArray:
    """Stand-in for a pickled chumpy object (`chumpy.ch.Ch` and friends).

    chumpy pickles a Ch's attributes as its state; a plain Ch keeps its data
    under 'x'. Derived chumpy expressions have no 'x' and cannot be evaluated
    without chumpy; `value` says so.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> "ChumpyArray":  # NEWOBJ calls only __new__
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # chumpy classes may be rebuilt with arguments
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}

    @property
    def value(self) -> np.ndarray:
        x = self.state.get("x")
        if x is None:
            raise ValueError("a chumpy expression without stored data ('x'); re-export the model with numpy arrays")
        return np.asarray(x.value if isinstance(x, ChumpyArray) else x)


class SparseState:
    """Stand-in for a pickled scipy sparse matrix: captures its state; `value` rebuilds it with today's scipy."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    @property
    def value(self) -> scipy.sparse.spmatrix:
        s = self.state
        shape = s.get("_shape", s.get("shape"))
        try:
            parts = tuple(np.asarray(s[k]) for k in ("data", "indices", "indptr"))
            shape = tuple(int(n) for n in shape)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"a {self.fmt} sparse matrix without data/indices/indptr/shape") from None
        cls = scipy.sparse.csc_matrix if self.fmt == "csc" else scipy.sparse.csr_matrix
        return cls(parts, shape=shape)  # scipy validates index ranges and lengths


class _SparseCSC(SparseState):
    """What the unpickler hands out for csc_matrix: calling or NEWOBJ-ing it yields a SparseState."""

    def __new__(cls, *args: Any, **kwargs: Any) -> SparseState:
        return SparseState("csc")


class _SparseCSR(SparseState):
    def __new__(cls, *args: Any, **kwargs: Any) -> SparseState:
        return SparseState("csr")


def _numpy_attr(name: str):
    """numpy.core.multiarray.<name> on numpy 1.x, numpy._core.multiarray.<name> on numpy 2."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(module, fromlist=[name])
            return getattr(mod, name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(name)


_numpy_reconstruct = _numpy_attr("_reconstruct")
_numpy_scalar = _numpy_attr("scalar")


def _safe_reconstruct(subtype, shape, typecode):
    """numpy's array reconstructor, but only for plain ndarrays (not an arbitrary class's __new__)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("array reconstruction of a type other than numpy.ndarray")
    return _numpy_reconstruct(subtype, shape, typecode)


def _safe_frombuffer(buffer, dtype, shape, order):
    """numpy's protocol-5 array reconstructor (a copy, so the array owns its memory)."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("array from buffer with a non-numeric dtype")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """`_codecs.encode` as Python 3 writes bytes into protocol-2 pickles: only str -> latin-1 bytes."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode other than str -> latin1")
    return text.encode("latin1", errors="strict")


_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _safe_reconstruct
    _ALLOWED[(_mod, "scalar")] = _numpy_scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _safe_frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype
_ALLOWED[("_codecs", "encode")] = _latin1_encode
# chumpy's state holds sets (_dirty_vars); Python 2 pickles name the module __builtin__.
for _mod in ("builtins", "__builtin__"):
    _ALLOWED[(_mod, "set")] = set
    _ALLOWED[(_mod, "frozenset")] = frozenset
for _fmt, _cls in (("csc", _SparseCSC), ("csr", _SparseCSR)):
    for _mod in (f"scipy.sparse.{_fmt}", f"scipy.sparse._{_fmt}", "scipy.sparse"):
        _ALLOWED[(_mod, f"{_fmt}_matrix")] = _cls
        _ALLOWED[(_mod, f"{_fmt}_array")] = _cls


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles FLAME's files and nothing else: see the module docstring.

    `source` names the file in error messages.
    """

    def __init__(self, file, source: str | os.PathLike) -> None:
        super().__init__(file, encoding="latin1")
        self.source = str(source)

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyArray  # any chumpy class: kept as data, chumpy itself is never imported
        raise InvalidFileError(
            f"{self.source}: refused to load: the file asks to run {module}.{name}, which a FLAME model never "
            f"contains. Only FLAME model files downloaded from the official site ({OFFICIAL_SITE}) are accepted; "
            "do not load pickles from other sources."
        )


def restricted_load(data: bytes, source: str | os.PathLike) -> Any:
    """Unpickle `data` with `RestrictedUnpickler`; any failure -> InvalidFileError naming `source`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except InvalidFileError:
        raise
    except Exception as err:  # truncated or corrupt: EOFError, UnpicklingError, ValueError, ...
        raise InvalidFileError(
            f"{source}: not a readable FLAME pickle ({type(err).__name__}: {err}); the file may be truncated or "
            f"corrupt: download it again from {OFFICIAL_SITE}"
        ) from None


# ------------------------------------------------------------------------------------------- reading


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: no such {what} file; download it from {OFFICIAL_SITE}") from None
    except IsADirectoryError:
        raise InvalidFileError(f"{path}: is a folder; give the path of the {what} file itself") from None
    except OSError as err:
        raise InvalidFileError(f"{path}: cannot read the {what} file ({err})") from None


def _load_npz(data: bytes, path: Path) -> dict[str, Any]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as err:
        raise InvalidFileError(f"{path}: an .npz entry holds Python objects, which are not accepted ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise InvalidFileError(f"{path}: not a readable .npz file ({err}); it may be truncated") from None


def _load_npy_object(data: bytes, path: Path) -> Any:
    """A .npy holding one pickled Python object (how np.save writes a dict), unpickled restrictedly."""
    from numpy.lib import format as npy_format

    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        # The header is parsed with ast.literal_eval: no code runs.
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(stream)
        else:
            shape, _, dtype = npy_format._read_array_header(stream, version)
    except ValueError as err:
        raise InvalidFileError(f"{path}: not a readable .npy file ({err})") from None
    if not dtype.hasobject:
        raise InvalidFileError(f"{path}: holds a plain {dtype} array {shape}, expected a landmark dictionary")
    array = restricted_load(stream.read(), path)
    obj = array.item() if isinstance(array, np.ndarray) and array.size == 1 else array
    return obj


def _load_mapping(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A FLAME-style file (pickle, .npz, or .npy-wrapped pickle) -> dict of raw values."""
    path = Path(path)
    data = _read_bytes(path, what)
    if data.startswith(_ZIP_MAGIC):
        content = _load_npz(data, path)
    elif data.startswith(_NPY_MAGIC):
        content = _load_npy_object(data, path)
    elif data[:1] == b"\x80":
        content = restricted_load(data, path)
    else:
        raise InvalidFileError(
            f"{path}: not a FLAME {what} file (expected a pickle, .npz or .npy; it starts with {data[:8]!r})"
        )
    if not isinstance(content, dict):
        raise InvalidFileError(f"{path}: expected a dictionary of arrays, found {type(content).__name__}")
    return content


def _array(raw: dict[str, Any], key: str, path: Path, ndim: int | None, dtype=np.float32) -> np.ndarray:
    """raw[key] as a finite numpy array (of `ndim` dims unless None); chumpy and sparse values are converted."""
    if key not in raw:
        raise InvalidFileError(f"{path}: missing field {key!r}; is this a FLAME model file from {OFFICIAL_SITE}?")
    value = raw[key]
    try:
        if isinstance(value, (ChumpyArray, SparseState)):
            value = value.value
        if scipy.sparse.issparse(value):
            value = value.toarray()
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError("holds Python objects, not numbers")
        array = array.astype(dtype)
    except (ValueError, TypeError) as err:
        raise InvalidFileError(f"{path}: field {key!r} is not a numeric array ({err})") from None
    if ndim is not None and array.ndim != ndim:
        raise InvalidFileError(f"{path}: field {key!r} must have {ndim} dimensions, has shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidFileError(f"{path}: field {key!r} contains NaN or infinite values")
    return array


def _expect_shape(array: np.ndarray, shape: tuple, key: str, path: Path) -> None:
    if any(want is not None and have != want for have, want in zip(array.shape, shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise InvalidFileError(f"{path}: field {key!r} has shape {list(array.shape)}, expected {want}")


def _parents_from_kintree(kintree: np.ndarray, path: Path) -> np.ndarray:
    """kintree_table [2, J] (row 0 parents, row 1 joint ids; root's parent is -1 or 2**32-1) -> parents [J]."""
    _expect_shape(kintree, (2, NUM_JOINTS), "kintree_table", path)
    if not np.array_equal(kintree[1], np.arange(NUM_JOINTS)):
        raise InvalidFileError(f"{path}: kintree_table row 1 must list joints 0..{NUM_JOINTS - 1}, has {kintree[1]}")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # FLAME stores the root's parent as uint32 max
    if any(not 0 <= parents[j] < j for j in range(1, NUM_JOINTS)):
        raise InvalidFileError(f"{path}: kintree_table parents {kintree[0]} must each precede their joint")
    return parents


def load_flame(
    path: str | os.PathLike,
    landmark_path: str | os.PathLike | None = None,
    num_identity: int = FLAME_NUM_IDENTITY,
    model_id: str | None = None,
) -> HeadModel:
    """A FLAME model file (+ optional landmark embedding) -> HeadModel on the CPU, float32.

    shapedirs[..., :num_identity] become the identity bases, the rest the
    expression bases ("exp000", "exp001", ...). posedirs [V, 3, 36] become
    [36, V*3] as FLAME's own lbs uses them. Without `landmark_path` the
    landmark tensors are empty ([0], [0, 3]). Bad files -> InvalidFileError.
    """
    path = Path(path)
    raw = _load_mapping(path, "model")
    v_template = _array(raw, "v_template", path, 2)
    _expect_shape(v_template, (None, 3), "v_template", path)
    num_vertices = v_template.shape[0]
    faces = _array(raw, "f", path, 2, dtype=np.int64)
    _expect_shape(faces, (None, 3), "f", path)
    if faces.size == 0 or faces.min() < 0 or faces.max() >= num_vertices:
        raise InvalidFileError(f"{path}: field 'f' must index the {num_vertices} vertices")
    shapedirs = _array(raw, "shapedirs", path, 3)
    _expect_shape(shapedirs, (num_vertices, 3, None), "shapedirs", path)
    if shapedirs.shape[2] <= num_identity:
        raise InvalidFileError(
            f"{path}: shapedirs has {shapedirs.shape[2]} bases; expected {num_identity} identity bases followed by "
            "expression bases (FLAME 2020/2023 have 300 + 100)"
        )
    posedirs = _array(raw, "posedirs", path, 3)
    _expect_shape(posedirs, (num_vertices, 3, NUM_POSE_FEATURES), "posedirs", path)
    j_regressor = _array(raw, "J_regressor", path, 2)
    _expect_shape(j_regressor, (NUM_JOINTS, num_vertices), "J_regressor", path)
    weights = _array(raw, "weights", path, 2)
    _expect_shape(weights, (num_vertices, NUM_JOINTS), "weights", path)
    if not np.allclose(weights.sum(1), 1.0, atol=1e-3):
        raise InvalidFileError(f"{path}: skinning 'weights' rows must sum to 1")
    parents = _parents_from_kintree(_array(raw, "kintree_table", path, 2, dtype=np.int64), path)

    if landmark_path is not None:
        landmark_faces, landmark_bary = load_flame_landmarks(landmark_path, num_faces=len(faces))
    else:
        landmark_faces, landmark_bary = np.zeros(0, np.int64), np.zeros((0, 3), np.float32)

    num_expr = shapedirs.shape[2] - num_identity
    if model_id is None:
        stem = path.stem.lower()
        model_id = stem if stem.startswith("flame") else f"flame-{stem}"
    return HeadModel(
        model_id=model_id,
        v_template=torch.from_numpy(v_template),
        faces=torch.from_numpy(faces),
        shapedirs=torch.from_numpy(np.ascontiguousarray(shapedirs[..., :num_identity])),
        exprdirs=torch.from_numpy(np.ascontiguousarray(shapedirs[..., num_identity:])),
        expr_names=tuple(f"exp{i:03d}" for i in range(num_expr)),
        j_regressor=torch.from_numpy(j_regressor),
        parents=torch.from_numpy(parents),
        lbs_weights=torch.from_numpy(weights),
        landmark_faces=torch.from_numpy(landmark_faces),
        landmark_bary=torch.from_numpy(landmark_bary),
        # FLAME's lbs: posedirs.reshape(-1, 36).T, so pose_feature [B, 36] @ posedirs -> [B, V*3].
        posedirs=torch.from_numpy(np.ascontiguousarray(posedirs.reshape(-1, NUM_POSE_FEATURES).T)),
    )


def load_flame_landmarks(path: str | os.PathLike, num_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A FLAME landmark embedding -> (face ids [68] int64, barycentrics [68, 3] float32) in the iBUG-68 layout.

    Accepted keys, first match wins: `full_lmk_faces_idx`/`full_lmk_bary_coords`
    (68 points); `lmk_face_idx`/`lmk_b_coords` with 68 points; or the 51 static
    points `static_lmk_faces_idx`/`static_lmk_bary_coords` (or `lmk_*` with 51)
    completed by the frontal row of the 17-point dynamic contour
    `dynamic_lmk_faces_idx`/`dynamic_lmk_bary_coords` (one row per whole degree
    of yaw: row 0 is yaw 0, rows 1..39 positive and 40..78 negative yaw, as
    FLAME's fitting code indexes them), contour first as in iBUG-68.
    """
    path = Path(path)
    raw = _load_mapping(path, "landmark")

    def pair(face_key: str, bary_key: str) -> tuple[np.ndarray, np.ndarray] | None:
        if face_key not in raw or bary_key not in raw:
            return None
        idx = _array(raw, face_key, path, None, dtype=np.int64)
        bary = _array(raw, bary_key, path, None)
        if bary.shape != (*idx.shape, 3):
            raise InvalidFileError(
                f"{path}: {bary_key!r} must have shape {[*idx.shape, 3]} to match {face_key!r}, has {list(bary.shape)}"
            )
        return idx, bary

    found = None
    full = pair("full_lmk_faces_idx", "full_lmk_bary_coords")
    if full is not None:
        found = (full[0].reshape(-1), full[1].reshape(-1, 3))
    if found is None or len(found[0]) != 68:
        static_keys = (("lmk_face_idx", "lmk_b_coords"), ("static_lmk_faces_idx", "static_lmk_bary_coords"))
        for face_key, bary_key in static_keys:
            static = pair(face_key, bary_key)
            if static is None:
                continue
            idx, bary = static[0].reshape(-1), static[1].reshape(-1, 3)
            if len(idx) == 68:
                found = (idx, bary)
                break
            dynamic = pair("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")
            if len(idx) == 51 and dynamic is not None:
                d_idx, d_bary = dynamic
                if d_idx.ndim != 2 or d_idx.shape[1] != 17:
                    raise InvalidFileError(
                        f"{path}: dynamic contour must be [yaw, 17] face ids, has {list(d_idx.shape)}"
                    )
                found = (np.concatenate([d_idx[0], idx]), np.concatenate([d_bary[0], bary]))  # row 0: yaw 0
                break
    if found is None or len(found[0]) != 68:
        raise InvalidFileError(
            f"{path}: no 68-point landmark embedding found (keys: {sorted(raw)}); use FLAME's "
            "landmark_embedding.npy, which has the 51 static points and the jaw contour"
        )
    idx, bary = found
    if len(bary) != len(idx):
        raise InvalidFileError(f"{path}: {len(idx)} landmark faces but {len(bary)} barycentric rows")
    if idx.min() < 0 or idx.max() >= num_faces:
        raise InvalidFileError(f"{path}: landmark face ids must lie in [0, {num_faces}); is it for this FLAME model?")
    if not np.allclose(bary.sum(1), 1.0, atol=1e-3):
        raise InvalidFileError(f"{path}: landmark barycentric coordinates must sum to 1 per point")
    return np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(bary, dtype=np.float32)


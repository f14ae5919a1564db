"""The FLAME loader on small synthetic files with FLAME's keys: .npz, Python-2-style pickles with chumpy and
scipy objects, landmark embeddings, and files that must be refused (code in the pickle, truncation)."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from emo_backend.errors import InvalidFileError
from emo_backend.head.flame import load_flame, load_flame_landmarks
from emo_backend.head.lbs import axis_angle_to_matrix, landmarks, lbs

NUM_ID, NUM_EXPR = 4, 3
ROWS, COLS = 5, 8  # a 5 x 8 vertex grid: 40 vertices, 56 faces


def synthetic_flame(seed: int = 0) -> dict:
    """FLAME's keys, dtypes and layouts at toy size (the real model: V = 5023, 300 + 100 bases)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:ROWS, 0:COLS]
    v = np.stack([xs.ravel() * 0.02 - 0.07, 0.05 - ys.ravel() * 0.03, rng.normal(0, 0.005, ROWS * COLS)], 1)
    faces = []
    for r in range(ROWS - 1):
        for c in range(COLS - 1):
            a, b, d, e = r * COLS + c, r * COLS + c + 1, (r + 1) * COLS + c, (r + 1) * COLS + c + 1
            faces += [[a, d, b], [b, d, e]]
    num_v = len(v)
    weights = rng.uniform(0, 1, (num_v, 5)) ** 4
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((5, num_v))
    for j in range(5):
        ids = rng.choice(num_v, 4, replace=False)
        regressor[j, ids] = 0.25
    return {
        "v_template": v,
        "f": np.array(faces, dtype=np.uint32),
        "shapedirs": rng.normal(0, 0.002, (num_v, 3, NUM_ID + NUM_EXPR)),
        "posedirs": rng.normal(0, 0.002, (num_v, 3, 36)),
        "J_regressor": regressor,
        "weights": weights,
        # Root's parent is uint32's max in FLAME's files.
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "J": regressor @ v,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A class that pickles as chumpy.ch.Ch (chumpy itself is not installed and must never be needed)."""
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()
            self._depends_on_deps = {}

    class Select:  # a derived chumpy expression: no 'x', only its operands
        def __init__(self, a, idxs):
            self.a, self.idxs = a, idxs

    Ch.__module__, Ch.__qualname__, Ch.__name__ = "chumpy.ch", "Ch", "Ch"
    Select.__module__, Select.__qualname__, Select.__name__ = "chumpy.reordering", "Select", "Select"
    module.Ch, reordering.Select = Ch, Select
    package.ch, package.reordering = module, reordering
    for name, mod in (("chumpy", package), ("chumpy.ch", module), ("chumpy.reordering", reordering)):
        monkeypatch.setitem(sys.modules, name, mod)
    return Ch, Select


class Python2StylePickler(pickle._Pickler):
    """Writes bytes and str the way Python 2 did (BINSTRING opcodes) so the latin-1 path is exercised."""

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def flame_pickle_content(raw: dict, fake_chumpy) -> dict:
    """The dict as FLAME's generic_model.pkl holds it: chumpy arrays, a sparse regressor, plain arrays."""
    Ch, Select = fake_chumpy
    content = dict(raw)
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        content[key] = Ch(raw[key])
    content["J_regressor"] = scipy.sparse.csc_matrix(raw["J_regressor"])
    content["J"] = Select(Ch(raw["J"]), np.arange(5))  # unused by the loader, must not break it
    return content


def write_pickle(path, content, py2_style: bool) -> None:
    buf = io.BytesIO()
    if py2_style:
        Python2StylePickler(buf, protocol=2).dump(content)
    else:
        pickle.dump(content, buf, protocol=2)
    path.write_bytes(buf.getvalue())


def check_model_matches(model, raw: dict) -> None:
    num_v = len(raw["v_template"])
    assert model.num_vertices == num_v and model.num_identities == NUM_ID and model.num_expressions == NUM_EXPR
    assert model.expr_names == ("exp000", "exp001", "exp002")
    assert model.v_template.dtype == torch.float32 and model.faces.dtype == torch.int64
    np.testing.assert_allclose(model.v_template.numpy(), raw["v_template"], rtol=1e-6)
    np.testing.assert_array_equal(model.faces.numpy(), raw["f"].astype(np.int64))
    np.testing.assert_allclose(model.shapedirs.numpy(), raw["shapedirs"][..., :NUM_ID], rtol=1e-6)
    np.testing.assert_allclose(model.exprdirs.numpy(), raw["shapedirs"][..., NUM_ID:], rtol=1e-6)
    np.testing.assert_allclose(model.j_regressor.numpy(), raw["J_regressor"], rtol=1e-6)
    np.testing.assert_allclose(model.lbs_weights.numpy(), raw["weights"], rtol=1e-6)
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]
    assert model.posedirs.shape == (36, num_v * 3)
    # posedirs[v, c, k] multiplies pose feature k at (v, c): exactly FLAME's reshape(-1, 36).T.
    feature = np.random.default_rng(1).normal(size=36)
    offsets = (torch.tensor(feature, dtype=torch.float32) @ model.posedirs).reshape(num_v, 3).numpy()
    np.testing.assert_allclose(offsets, np.einsum("vck,k->vc", raw["posedirs"], feature), rtol=1e-4, atol=1e-7)
    assert model.landmark_faces.shape == (0,) and model.landmark_bary.shape == (0, 3)


def test_npz_variant_loads(tmp_path):
    raw = synthetic_flame()
    path = tmp_path / "flame2023.npz"
    np.savez(path, **{k: v for k, v in raw.items() if isinstance(v, np.ndarray)})
    model = load_flame(path, num_identity=NUM_ID)
    check_model_matches(model, raw)
    assert model.model_id == "flame2023"


@pytest.mark.parametrize("py2_style", [True, False], ids=["python2-strings", "python3-protocol2"])
def test_pickle_with_chumpy_and_sparse_loads_without_chumpy(tmp_path, fake_chumpy, monkeypatch, py2_style):
    raw = synthetic_flame()
    path = tmp_path / "generic_model.pkl"
    write_pickle(path, flame_pickle_content(raw, fake_chumpy), py2_style)
    data = path.read_bytes()
    assert data[:2] == b"\x80\x02"
    assert b"cchumpy.ch\nCh\n" in data and b"scipy.sparse" in data and b"c__builtin__\nset\n" in data
    for name in ("chumpy", "chumpy.ch", "chumpy.reordering"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of chumpy now fails
    model = load_flame(path, num_identity=NUM_ID)
    check_model_matches(model, raw)
    assert model.model_id == "flame-generic_model"


def test_lbs_runs_on_the_loaded_model(tmp_path, fake_chumpy):
    raw = synthetic_flame()
    path = tmp_path / "generic_model.pkl"
    write_pickle(path, flame_pickle_content(raw, fake_chumpy), py2_style=True)
    model = load_flame(path, num_identity=NUM_ID)
    rest = lbs(model, torch.zeros(1, NUM_EXPR), torch.zeros(1, 5, 3))
    torch.testing.assert_close(rest.vertices[0], model.v_template)  # zero pose and expression: the template
    expr = torch.tensor([[0.5, -1.0, 2.0]])
    smiling = lbs(model, expr, torch.zeros(1, 5, 3))
    expected = raw["v_template"] + raw["shapedirs"][..., NUM_ID:] @ expr[0].numpy()
    np.testing.assert_allclose(smiling.vertices[0].numpy(), expected, rtol=1e-5, atol=1e-7)
    pose = torch.zeros(2, 5, 3)
    pose[1, 2] = torch.tensor([0.3, 0.0, 0.0])  # open the jaw
    posed = lbs(model, torch.zeros(2, NUM_EXPR), pose)
    assert torch.isfinite(posed.vertices).all()
    # With only the jaw rotated, the pose correctives are posedirs' jaw block times (R - I).
    feature = (axis_angle_to_matrix(pose[1, 1:]) - torch.eye(3)).reshape(-1)
    corrective = np.einsum("vck,k->vc", raw["posedirs"], feature.numpy())
    weights_no_jaw = raw["weights"][:, 2] < 1e-6
    if weights_no_jaw.any():  # vertices the jaw does not skin move by the corrective alone
        np.testing.assert_allclose(
            posed.vertices[1].numpy()[weights_no_jaw], (raw["v_template"] + corrective)[weights_no_jaw], atol=1e-6
        )
    assert (posed.vertices[1] - posed.vertices[0]).abs().max() > 1e-3


def landmark_embedding(num_faces: int, seed: int = 2) -> dict:
    """FLAME's landmark_embedding.npy layout: 51 static points, a 79-row yaw-dependent contour, the full 68."""
    rng = np.random.default_rng(seed)

    def bary(*shape):
        b = rng.uniform(0.1, 1, (*shape, 3))
        return b / b.sum(-1, keepdims=True)

    return {
        "static_lmk_faces_idx": rng.integers(0, num_faces, 51),
        "static_lmk_bary_coords": bary(51),
        "dynamic_lmk_faces_idx": rng.integers(0, num_faces, (79, 17)),
        "dynamic_lmk_bary_coords": bary(79, 17),
        "full_lmk_faces_idx": rng.integers(0, num_faces, (1, 68)),
        "full_lmk_bary_coords": bary(1, 68),
    }


def test_landmark_embedding_npy_and_static_plus_contour(tmp_path):
    raw = synthetic_flame()
    model_path = tmp_path / "flame2023.npz"
    np.savez(model_path, **{k: v for k, v in raw.items() if isinstance(v, np.ndarray)})
    emb = landmark_embedding(len(raw["f"]))
    npy = tmp_path / "landmark_embedding.npy"
    np.save(npy, emb, allow_pickle=True)  # how FLAME ships it: a pickled dict inside a .npy
    model = load_flame(model_path, landmark_path=npy, num_identity=NUM_ID)
    np.testing.assert_array_equal(model.landmark_faces.numpy(), emb["full_lmk_faces_idx"][0])
    np.testing.assert_allclose(model.landmark_bary.numpy(), emb["full_lmk_bary_coords"][0], rtol=1e-6)
    points = landmarks(model, model.v_template[None])
    assert points.shape == (1, 68, 3)

    del emb["full_lmk_faces_idx"], emb["full_lmk_bary_coords"]
    np.save(npy, emb, allow_pickle=True)
    faces, bary = load_flame_landmarks(npy, num_faces=len(raw["f"]))
    np.testing.assert_array_equal(faces[:17], emb["dynamic_lmk_faces_idx"][0])  # yaw-0 contour = iBUG 0..16
    np.testing.assert_array_equal(faces[17:], emb["static_lmk_faces_idx"])      # iBUG 17..67
    np.testing.assert_allclose(bary[17:], emb["static_lmk_bary_coords"], rtol=1e-6)


def test_landmark_pickle_with_lmk_keys_and_bad_landmarks(tmp_path):
    rng = np.random.default_rng(3)
    b = rng.uniform(0.1, 1, (68, 3))
    pkl = tmp_path / "lmk.pkl"
    write_pickle(pkl, {"lmk_face_idx": rng.integers(0, 56, 68), "lmk_b_coords": b / b.sum(1, keepdims=True)}, True)
    faces, bary = load_flame_landmarks(pkl, num_faces=56)
    assert faces.shape == (68,) and bary.shape == (68, 3)
    with pytest.raises(InvalidFileError, match="landmark face ids"):
        load_flame_landmarks(pkl, num_faces=10)
    static_only = tmp_path / "flame_static_embedding.pkl"
    write_pickle(static_only, {"lmk_face_idx": np.zeros(51, np.int64), "lmk_b_coords": np.full((51, 3), 1 / 3)}, True)
    with pytest.raises(InvalidFileError, match="68-point"):
        load_flame_landmarks(static_only, num_faces=56)


class Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class EvalEvil:
    def __init__(self, expr):
        self.expr = expr

    def __reduce__(self):
        return (eval, (self.expr,))


@pytest.mark.parametrize("wrap_in_npy", [False, True])
def test_pickle_that_runs_code_is_refused_before_running(tmp_path, wrap_in_npy):
    marker = tmp_path / "pwned"
    payload = {"v_template": np.zeros((3, 3)), "f": Evil(f"touch {marker}")}
    path = tmp_path / ("landmark_embedding.npy" if wrap_in_npy else "generic_model.pkl")
    if wrap_in_npy:
        np.save(path, payload, allow_pickle=True)
    else:
        write_pickle(path, payload, py2_style=False)
    with pytest.raises(InvalidFileError) as err:
        if wrap_in_npy:
            load_flame_landmarks(path, num_faces=10)
        else:
            load_flame(path)
    message = str(err.value)
    assert str(path) in message and "system" in message and "official site" in message
    assert not marker.exists()


def test_eval_and_subprocess_globals_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    write_pickle(path, {"v_template": EvalEvil(f"open({str(marker)!r}, 'w')")}, py2_style=True)
    with pytest.raises(InvalidFileError, match=r"(__builtin__|builtins)\.eval"):
        load_flame(path)
    # A hand-written protocol-2 pickle calling subprocess.Popen, in Python 2's module naming.
    target = str(marker).encode()
    popen = b"\x80\x02csubprocess\nPopen\nq\x00]q\x01(U\x05touchq\x02U" + bytes([len(target)]) + target
    path.write_bytes(popen + b"q\x03e\x85q\x04Rq\x05.")
    with pytest.raises(InvalidFileError, match=r"subprocess\.Popen"):
        load_flame(path)
    assert not marker.exists()


def test_array_reconstruction_of_other_types_is_refused(tmp_path, fake_chumpy):
    # numpy's _reconstruct is allowed, but only for ndarray: not as a way to call another class's __new__.
    Ch, _ = fake_chumpy
    path = tmp_path / "generic_model.pkl"
    bad = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00"  # _reconstruct(chumpy.ch.Ch, (0,), b"b")
        b"cchumpy.ch\nCh\nq\x01K\x00\x85q\x02U\x01bq\x03\x87q\x04Rq\x05."
    )
    path.write_bytes(bad)
    with pytest.raises(InvalidFileError, match="not a readable FLAME pickle.*other than numpy.ndarray"):
        load_flame(path)


def test_truncated_and_wrong_files_are_clear_errors(tmp_path, fake_chumpy):
    raw = synthetic_flame()
    path = tmp_path / "generic_model.pkl"
    write_pickle(path, flame_pickle_content(raw, fake_chumpy), py2_style=True)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(InvalidFileError, match="truncated"):
        load_flame(path, num_identity=NUM_ID)

    npz = tmp_path / "flame2023.npz"
    np.savez(npz, **{k: v for k, v in raw.items() if isinstance(v, np.ndarray)})
    npz.write_bytes(npz.read_bytes()[:-100])
    with pytest.raises(InvalidFileError, match="flame2023.npz"):
        load_flame(npz, num_identity=NUM_ID)

    with pytest.raises(InvalidFileError, match="no such model file"):
        load_flame(tmp_path / "missing.pkl")
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    with pytest.raises(InvalidFileError, match="not a FLAME model file"):
        load_flame(text)


def test_missing_or_misshapen_fields_are_named(tmp_path):
    raw = {k: v for k, v in synthetic_flame().items() if isinstance(v, np.ndarray)}
    path = tmp_path / "flame.npz"
    np.savez(path, **{k: v for k, v in raw.items() if k != "posedirs"})
    with pytest.raises(InvalidFileError, match="missing field 'posedirs'"):
        load_flame(path, num_identity=NUM_ID)
    np.savez(path, **{**raw, "weights": raw["weights"][:, :4]})
    with pytest.raises(InvalidFileError, match="'weights' has shape"):
        load_flame(path, num_identity=NUM_ID)
    np.savez(path, **raw)
    with pytest.raises(InvalidFileError, match="expression bases"):
        load_flame(path)  # default 300 identity bases: this toy file has only 7
    nan = raw["v_template"].copy()
    nan[0, 0] = np.nan
    np.savez(path, **{**raw, "v_template": nan})
    with pytest.raises(InvalidFileError, match="NaN"):
        load_flame(path, num_identity=NUM_ID)

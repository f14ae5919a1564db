import json
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from emo_backend.avatar.blendshapes import evaluate
from emo_backend.avatar.bundle import load_avatar, read_manifest, resolve_avatar_path, save_avatar
from emo_backend.errors import EmoSplatError, InvalidFileError

TENSORS = ("face_ids", "bary", "offsets", "parts", "quats", "log_scales", "opacity_logits", "colors", "identity",
           "delta_means", "delta_rotations", "delta_log_scales", "delta_colors", "delta_opacity_logits", "skin_weights")


@pytest.fixture(scope="module")
def trained(avatar):
    """The avatar with non-zero colour/opacity deltas and offsets, as after training."""
    gen = torch.Generator().manual_seed(0)
    e, n = avatar.num_expressions, avatar.num_gaussians
    return avatar.with_tensors(
        offsets=torch.randn(n, 3, generator=gen) * 1e-3,
        delta_colors=torch.randn(e, n, 3, generator=gen) * 0.05,
        delta_opacity_logits=torch.randn(e, n, generator=gen) * 0.1,
    )


def _frames(avatar):
    gen = torch.Generator().manual_seed(1)
    expression = torch.randn(2, avatar.num_expressions, generator=gen)
    pose = torch.randn(2, 5, 3, generator=gen) * 0.2
    return evaluate(avatar, expression, pose)


def test_float32_round_trip_is_exact(trained, tmp_path):
    path = save_avatar(trained, tmp_path / "av", half=False)
    loaded = load_avatar(path)
    for name in TENSORS:
        assert torch.equal(getattr(loaded, name), getattr(trained, name)), name
    for name in ("v_template", "faces", "exprdirs", "j_regressor", "parents", "lbs_weights", "landmark_faces",
                 "landmark_bary", "vertex_colors"):
        assert torch.equal(getattr(loaded.head, name), getattr(trained.head, name)), name
    assert loaded.head.regions.keys() == trained.head.regions.keys()
    assert all(torch.equal(loaded.head.regions[k], trained.head.regions[k]) for k in trained.head.regions)
    assert loaded.head.expr_names == trained.head.expr_names and loaded.head.model_id == trained.head.model_id
    assert loaded.training == trained.training
    (g1, m1), (g2, m2) = _frames(trained), _frames(loaded)
    assert torch.equal(g1.means, g2.means) and torch.equal(m1.vertices, m2.vertices)


def test_float16_round_trip_within_tolerance(trained, tmp_path):
    full = save_avatar(trained, tmp_path / "full", half=False)
    half = save_avatar(trained, tmp_path / "half", half=True)
    manifest = read_manifest(half)
    assert manifest["dtypes"]["blendshapes.safetensors"]["delta_means"] == "float16"
    assert manifest["dtypes"]["head.safetensors"]["exprdirs"] == "float16"
    assert manifest["dtypes"]["gaussians.safetensors"]["quats"] == "float32"
    size = lambda p: (p / "blendshapes.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.6 * size(full)
    loaded = load_avatar(half)
    assert loaded.delta_means.dtype == torch.float32
    for name in ("delta_means", "delta_rotations", "delta_log_scales", "delta_colors", "delta_opacity_logits"):
        a, b = getattr(loaded, name), getattr(trained, name)
        assert ((a - b).abs() <= 1e-3 * b.abs() + 1e-4).all(), name
    (g1, m1), (g2, m2) = _frames(trained), _frames(loaded)
    assert (g1.means - g2.means).abs().max() < 2e-5  # metres: far below a pixel
    assert (m1.vertices - m2.vertices).abs().max() < 2e-5


def test_zipped_bundle_round_trip(trained, tmp_path):
    path = save_avatar(trained, tmp_path / "av.emosplat", half=False)
    assert path.is_file() and zipfile.is_zipfile(path)
    loaded = load_avatar(path)
    assert torch.equal(loaded.delta_colors, trained.delta_colors)
    # The same folder zipped under one top-level folder loads too.
    folder = save_avatar(trained, tmp_path / "folder", half=False)
    nested = tmp_path / "nested.emosplat"
    with zipfile.ZipFile(nested, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"folder/{f.name}")
    assert torch.equal(load_avatar(nested).quats, trained.quats)


def test_manifest_describes_the_bundle(trained, tmp_path):
    manifest = read_manifest(save_avatar(trained, tmp_path / "av"))
    assert manifest["format"] == "emosplat-avatar" and manifest["format_version"] == 1
    assert manifest["head_model_id"] == trained.head.model_id
    assert manifest["counts"]["gaussians"] == trained.num_gaussians
    assert manifest["counts"]["expressions"] == trained.num_expressions
    assert manifest["counts"]["vertices"] == trained.head.num_vertices
    assert manifest["expr_names"] == list(trained.head.expr_names)
    assert "license" in manifest and "training" in manifest


def test_no_overwrite_without_permission(trained, avatar, tmp_path):
    path = save_avatar(trained, tmp_path / "av")
    with pytest.raises(EmoSplatError, match="already exists"):
        save_avatar(avatar, path)
    with pytest.raises(EmoSplatError, match="already exists"):
        save_avatar(avatar, save_avatar(avatar, tmp_path / "z.emosplat"))
    save_avatar(avatar, path, overwrite=True)
    assert torch.equal(load_avatar(path).offsets, avatar.offsets)
    # Never replaces something that is not a bundle, and leaves no temporary files behind.
    other = tmp_path / "photos"
    other.mkdir()
    (other / "me.jpg").write_bytes(b"x")
    with pytest.raises(EmoSplatError, match="not an avatar bundle"):
        save_avatar(avatar, other, overwrite=True)
    assert (other / "me.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["av", "photos", "z.emosplat"]


# ---------------------------------------------------------------------------------------- corruption


@pytest.fixture
def bundle(avatar, tmp_path):
    return save_avatar(avatar, tmp_path / "av")


def _edit(path, transform):
    tensors = load_file(str(path))
    transform(tensors)
    save_file(tensors, str(path))


def _fails(path, *words):
    with pytest.raises(InvalidFileError) as info:
        load_avatar(path)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    return str(info.value)


def test_wrong_shape_names_file_and_field(bundle):
    _edit(bundle / "gaussians.safetensors", lambda t: t.update(bary=t["bary"][:, :2].contiguous()))
    _fails(bundle, "gaussians.safetensors", "'bary'", "shape")


def test_nan_names_file_and_field(bundle):
    def poison(t):
        t["delta_means"][3, 1] = float("nan")

    _edit(bundle / "blendshapes.safetensors", poison)
    _fails(bundle, "blendshapes.safetensors", "'delta_means'", "NaN")


def test_missing_field_names_file_and_field(bundle):
    _edit(bundle / "head.safetensors", lambda t: t.pop("lbs_weights"))
    _fails(bundle, "head.safetensors", "'lbs_weights'", "missing")


def test_missing_file(bundle):
    (bundle / "head.safetensors").unlink()
    _fails(bundle, "head.safetensors", "missing")


def test_truncated_safetensors(bundle):
    data = (bundle / "head.safetensors").read_bytes()
    (bundle / "head.safetensors").write_bytes(data[: len(data) // 2])
    _fails(bundle, "head.safetensors", "safetensors")
    (bundle / "head.safetensors").write_bytes(data[:5])
    _fails(bundle, "head.safetensors", "truncated")


def test_pickles_disguised_as_safetensors_are_refused(bundle, tmp_path):
    target = bundle / "gaussians.safetensors"
    target.write_bytes(pickle.dumps({"bary": [1, 2, 3]}))
    _fails(bundle, "gaussians.safetensors", "pickle")
    torch.save({"bary": torch.zeros(3)}, target)
    _fails(bundle, "gaussians.safetensors", "pickle")


def test_avatar_json_that_is_not_json(bundle):
    (bundle / "avatar.json").write_bytes(b"\x80\x04\x95 not json")
    _fails(bundle, "avatar.json", "not JSON")
    (bundle / "avatar.json").write_text("[1, 2]")
    _fails(bundle, "avatar.json", "object")


def test_manifest_fields_are_checked(bundle):
    manifest = json.loads((bundle / "avatar.json").read_text())

    def write(**changes):
        (bundle / "avatar.json").write_text(json.dumps({**manifest, **changes}))

    write(format="something-else")
    _fails(bundle, "avatar.json", "'format'")
    write(format_version=99)
    _fails(bundle, "avatar.json", "update EmoSplat")
    write(counts={**manifest["counts"], "gaussians": "many"})
    _fails(bundle, "avatar.json", "counts.gaussians")
    write(counts={**manifest["counts"], "gaussians": manifest["counts"]["gaussians"] + 1})
    _fails(bundle, "gaussians.safetensors", "shape")
    write(expr_names=manifest["expr_names"][:-1])
    _fails(bundle, "avatar.json", "'expr_names'")


def test_out_of_range_indices(bundle):
    _edit(bundle / "gaussians.safetensors", lambda t: t["face_ids"].__setitem__(0, 10**6))
    _fails(bundle, "gaussians.safetensors", "'face_ids'", "outside")


def test_zipped_bundle_corruption_names_archive_member_and_field(bundle, tmp_path):
    def poison(t):
        t["colors"][0, 0] = float("inf")

    _edit(bundle / "gaussians.safetensors", poison)
    archive = tmp_path / "bad.emosplat"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in bundle.iterdir():
            zf.write(f, f.name)
    _fails(archive, "bad.emosplat:gaussians.safetensors", "'colors'")
    not_zip = tmp_path / "fake.emosplat"
    not_zip.write_bytes(pickle.dumps("hello"))
    _fails(not_zip, "fake.emosplat", "not an avatar bundle")
    empty = tmp_path / "empty.emosplat"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hi")
    _fails(empty, "avatar.json")


# ---------------------------------------------------------------------------------------- paths


def test_resolve_named_and_path(avatar, tmp_path, monkeypatch):
    root = tmp_path / "assets"
    save_avatar(avatar, root / "avatars" / "default")
    save_avatar(avatar, root / "avatars" / "zipped.emosplat")
    monkeypatch.setenv("EMOSPLAT_ASSETS", str(root))
    assert resolve_avatar_path("default") == (root / "avatars" / "default").resolve()
    assert resolve_avatar_path("zipped") == (root / "avatars" / "zipped.emosplat").resolve()
    assert resolve_avatar_path(root / "avatars" / "default") == (root / "avatars" / "default").resolve()
    assert load_avatar("default").num_gaussians == avatar.num_gaussians
    with pytest.raises(InvalidFileError, match="does not exist"):
        resolve_avatar_path(tmp_path / "nowhere")
    with pytest.raises(InvalidFileError, match="does not exist"):
        resolve_avatar_path("no-such-avatar")


def test_zero_quaternion_is_refused(bundle):
    _edit(bundle / "gaussians.safetensors", lambda t: t["quats"][5].zero_())
    _fails(bundle, "gaussians.safetensors", "'quats'")

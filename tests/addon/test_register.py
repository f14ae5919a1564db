"""The extension: manifest validation, build, install from the zip, register and unregister cleanly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from addon_env import ADDON_MODULE, REPO

pytestmark = pytest.mark.blender


def _bl_ext_cli() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None:
        pytest.skip("bpy is not installed")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    assert found, "Blender's extension CLI (bl_pkg/cli/blender_ext.py) is missing from the bpy wheel"
    return found[-1]


def test_manifest_validates_and_builds_without_tests_or_venv(tmp_path):
    cli = _bl_ext_cli()
    valid = subprocess.run([sys.executable, str(cli), "validate", str(REPO)], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    built = subprocess.run([sys.executable, str(cli), "build", "--source-dir", str(REPO), "--output-dir",
                            str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    (zip_path,) = tmp_path.glob("emosplat-*.zip")
    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "addon/ipc.py" in names
    assert "emo_backend/protocol.py" in names and "emo_backend/server.py" in names
    assert not [n for n in names if n.startswith((".venv/", "tests/", "out/", ".git/")) or "__pycache__" in n]


def test_zip_installs_and_enables_in_a_fresh_blender(tmp_path):
    """`extension build`, then Blender's own installer (package_install_files) and enabling, in a clean process."""
    cli = _bl_ext_cli()
    subprocess.run([sys.executable, str(cli), "build", "--source-dir", str(REPO), "--output-dir", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    (zip_path,) = tmp_path.glob("emosplat-*.zip")
    script = textwrap.dedent(f"""
        import bpy, addon_utils, sys
        bpy.ops.extensions.package_install_files(filepath={str(zip_path)!r}, repo="user_default", enable_on_install=True)
        name = "bl_ext.user_default.emosplat"
        assert name in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
        assert hasattr(bpy.types.Object, "emosplat") and hasattr(bpy.ops.emosplat, "bake")
        assert "torch" not in sys.modules and "emo_backend" not in sys.modules
        addon_utils.disable(name, default_set=True)
        assert not hasattr(bpy.types.Object, "emosplat")
        print("INSTALLED-OK")
    """)
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert "INSTALLED-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_unregister_and_register_again(blender, clean_scene):
    import addon_utils

    bpy = blender
    addon_utils.disable(ADDON_MODULE, default_set=True)
    assert not hasattr(bpy.types.Object, "emosplat") and not hasattr(bpy.types, "EMOSPLAT_PT_main")
    addon_utils.enable(ADDON_MODULE, default_set=True)
    assert hasattr(bpy.types.Object, "emosplat") and hasattr(bpy.types, "EMOSPLAT_PT_main")
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_python = sys.executable  # default_set re-created the preferences
    assert "torch" not in {m.split(".")[0] for m in sys.modules if m.startswith(ADDON_MODULE)}


def test_addon_imports_no_backend_code():
    """The Blender half never imports torch or emo_backend (checked statically in every addon module)."""
    import ast

    for path in (REPO / "addon").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] not in {"torch", "emo_backend", "gsplat"}, f"{path.name} imports {name}"


def test_add_avatar_adds_a_head_sized_empty(blender, clean_scene, addon):
    bpy = blender
    assert bpy.ops.emosplat.add_avatar() == {"FINISHED"}
    ob = bpy.context.object
    assert ob.type == "EMPTY" and ob.empty_display_type == "SPHERE" and ob.emosplat.is_avatar
    assert ob.emosplat.avatar_path == "default"
    assert addon.properties.active_avatar(bpy.context) == ob


class _Recorder:
    """Stands in for UILayout: records what the panel draws, returns itself for nested layouts."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.log.append((name, args, kwargs))
            return _Recorder(self.log)

        return call

    def __setattr__(self, name, value):
        if name == "log":
            object.__setattr__(self, name, value)
        else:
            self.log.append(("set", name, value))


def test_panel_draws_with_and_without_an_avatar(blender, clean_scene, addon):
    bpy = blender
    panel_cls = addon.panel.EMOSPLAT_PT_main
    for with_avatar in (False, True):
        if with_avatar:
            bpy.ops.emosplat.add_avatar()
            clean_scene.emosplat.capabilities = '{"valence_arousal": true, "text_prompts": true}'
        log = []
        panel_cls.draw(type("P", (), {"layout": _Recorder(log)})(), bpy.context)
        operators = {args[0] for name, args, _ in log if name == "operator"}
        assert {"emosplat.add_avatar", "emosplat.load_audio", "emosplat.backend", "emosplat.bake",
                "emosplat.export_video"} <= operators
        if with_avatar:
            assert {"emosplat.key_emotion", "emosplat.emotion_from"} <= operators
            props = {args[1] for name, args, _ in log if name == "prop"}
            assert {"weight_happy", "intensity", "emotion", "key_intensity", "valence", "prompt"} <= props


def test_panel_warns_when_the_view_transform_would_tone_map_the_avatar(blender, clean_scene, addon):
    bpy = blender
    panel_cls = addon.panel.EMOSPLAT_PT_main

    def labels() -> list[str]:
        log = []
        panel_cls.draw(type("P", (), {"layout": _Recorder(log)})(), bpy.context)
        return [kwargs.get("text", "") for name, _, kwargs in log if name == "label"]

    clean_scene.view_settings.view_transform = "AgX"
    assert any("View Transform" in text for text in labels())
    clean_scene.view_settings.view_transform = "Standard"
    assert not any("View Transform" in text for text in labels())


def test_preferences_default_to_the_checkout_venv_and_the_extension_user_folder(blender, addon):
    bpy = blender
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    assert addon.ipc.repo_python() == str(REPO / ".venv" / "bin" / "python")
    assert prefs.bl_rna.properties["backend_python"].default == addon.ipc.repo_python()
    saved = prefs.cache_folder
    prefs.cache_folder = ""
    try:
        folder = addon.preferences.cache_folder(bpy.context)
        assert folder == bpy.utils.extension_path_user(ADDON_MODULE, path="", create=False)
    finally:
        prefs.cache_folder = saved


def test_check_backend_python(blender, addon, tmp_path):
    report = addon.ipc.check_python(sys.executable)
    assert report.startswith("emo_backend ") and "torch" in report
    with pytest.raises(addon.ipc.BackendError, match="does not exist"):
        addon.ipc.check_python(str(tmp_path / "nope" / "python"))
    with pytest.raises(addon.ipc.BackendError, match="Backend Python"):
        addon.ipc.check_python("")

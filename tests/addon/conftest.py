"""Blender tests: one bpy session per pytest run, the add-on enabled as an extension from this checkout.

bpy is imported lazily inside the `blender` fixture with HOME and the XDG
folders pointed at a temporary directory, so tests never read or write the
user's Blender settings. The checkout is linked into a temporary extension
repository and enabled through addon_utils, the way Blender loads it for real.
Each test starts from an empty factory scene (`clean_scene`).
"""

from __future__ import annotations

import os
import sys
import pytest

from addon_env import ADDON_MODULE, REPO, REPO_MODULE


@pytest.fixture(scope="session")
def blender(tmp_path_factory):
    bpy = pytest.importorskip("bpy")
    home = tmp_path_factory.mktemp("blender_home")
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")}
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
                      XDG_DATA_HOME=str(home / "data"))
    import addon_utils

    ext_dir = home / "extensions"
    ext_dir.mkdir()
    (ext_dir / "emosplat").symlink_to(REPO, target_is_directory=True)
    repo = bpy.context.preferences.extensions.repos.new(name="EmoSplat tests", module=REPO_MODULE,
                                                        custom_directory=str(ext_dir), source="USER")
    mod = addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=_raise)
    assert mod is not None, "the extension did not enable"
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_python = sys.executable
    prefs.cache_folder = str(home / "cache" / "emosplat")
    yield bpy
    addon_utils.disable(ADDON_MODULE, default_set=True, handle_error=_raise)
    bpy.context.preferences.extensions.repos.remove(repo)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _raise(err):
    raise err


@pytest.fixture
def addon(blender):
    """The enabled add-on's `addon` package (module objects, for calling helpers directly)."""
    return sys.modules[f"{ADDON_MODULE}.addon"]


@pytest.fixture
def clean_scene(blender):
    blender.ops.wm.read_homefile(use_factory_startup=True, use_empty=True)
    scene = blender.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    return scene

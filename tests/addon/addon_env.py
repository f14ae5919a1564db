"""Paths and names shared by the Blender tests (imported by conftest.py and the test modules)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPO_MODULE = "emosplat_tests"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.emosplat"


def build_test_avatar(folder: Path) -> str:
    """The bundled default avatar when it is installed, else a real avatar initialised on the avatar tests'
    small synthetic head (with the FACS expression bases the emotion recipe drives)."""
    import importlib.util

    from emo_backend.errors import EmoSplatError

    try:
        from emo_backend.avatar.bundle import resolve_avatar_path

        return str(resolve_avatar_path("default"))
    except EmoSplatError:
        pass
    spec = importlib.util.spec_from_file_location("avatar_test_head", REPO / "tests" / "avatar" / "avatar_test_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from emo_backend.avatar.bundle import save_avatar
    from emo_backend.avatar.init import init_avatar_from_head
    from emo_backend.head.expressions import ACTION_UNITS

    head = module.synthetic_head(num_expressions=len(ACTION_UNITS), seed=0, subdivisions=2)
    return str(save_avatar(init_avatar_from_head(head, 1500, seed=0), folder / "synthetic", overwrite=True))

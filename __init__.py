"""EmoSplat Blender extension entry point: forwards to the Blender half in `addon/` (backend code is never imported)."""

from . import addon


def register() -> None:
    addon.register()


def unregister() -> None:
    addon.unregister()

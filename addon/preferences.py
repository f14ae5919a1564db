"""Add-on preferences: which Python runs the backend, on which device, and where frames are cached."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import compat, ipc

ADDON_ID = __package__.rpartition(".")[0] or __package__  # the extension's module name (root __init__.py)

DEVICES = [("auto", "Auto", "CUDA when torch sees a GPU, else CPU"), ("cpu", "CPU", "Render on the CPU"),
           ("cuda", "CUDA", "Render on the NVIDIA GPU (gsplat)")]


class EmoSplatPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default=ipc.repo_python(),
        description="Python interpreter with torch and the EmoSplat backend installed")
    device: EnumProperty(name="Device", items=DEVICES, default="auto")
    cache_folder: StringProperty(
        name="Cache folder", subtype="DIR_PATH", default="",
        description="Where baked frames go (empty: the extension's user folder)")
    check_report: StringProperty(default="")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_python")
        if not self.backend_python:
            box = layout.box()
            for line in _wrap(ipc.python_default_message(), 90):
                box.label(text=line)
        row = layout.row()
        row.operator("emosplat.check_backend", icon="CHECKMARK")
        if self.check_report:
            row.label(text=self.check_report)
        layout.prop(self, "device")
        layout.prop(self, "cache_folder")
        layout.label(text=f"Cache: {cache_folder(context)}")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


class _Defaults:
    """Preferences when the add-on is registered without being enabled as an add-on (scripts, tests)."""

    backend_python = ipc.repo_python()
    device = "auto"
    cache_folder = ""
    check_report = ""


def get(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else _Defaults


def cache_folder(context=None) -> str:
    prefs = get(context)
    if prefs.cache_folder:
        return bpy.path.abspath(prefs.cache_folder)
    return compat.user_folder(ADDON_ID)


CLASSES = (EmoSplatPreferences,)

"""The Blender half of EmoSplat. Imports only bpy, the standard library and numpy; never torch or emo_backend.

Modules: properties (data in the .blend), animation (emotion keys), camera
(Blender -> OpenCV), shot_spec (scene -> shot spec), ipc (the backend process
and wire), bake (a bake in flight), compositor (merge + camera preview),
sound (the speech strip), operators, panel, preferences, compat (4.2 vs 5.0).
"""

from __future__ import annotations

import bpy

from . import bake, ipc, operators, panel, preferences, properties

_CLASSES = (*preferences.CLASSES, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    job = bake.active_job()
    if job is not None and not job.finished:
        job.cancel()
    bake.set_active(None)
    ipc.set_current(None)  # stops the backend: none outlives the add-on
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()

"""The "EmoSplat" tab in the 3D View sidebar."""

from __future__ import annotations

import bpy

from . import bake, ipc, operators, preferences
from .properties import EMOTIONS, active_avatar


class EMOSPLAT_PT_main(bpy.types.Panel):
    bl_label = "EmoSplat"
    bl_idname = "EMOSPLAT_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "EmoSplat"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        avatar = active_avatar(context)

        col = layout.column(align=True)
        col.operator("emosplat.add_avatar", icon="USER")
        col.operator("emosplat.load_audio", icon="SOUND")
        if avatar is None:
            layout.label(text="Add an avatar to key emotions", icon="INFO")
        else:
            s = avatar.emosplat
            box = layout.box()
            box.label(text=avatar.name, icon="EMPTY_DATA")
            box.prop(s, "avatar_path")
            box.prop(s, "emotion")
            box.prop(s, "key_intensity")
            box.operator("emosplat.key_emotion", icon="KEY_HLT")
            sub = box.column(align=True)
            for name in EMOTIONS:
                sub.prop(s, f"weight_{name}", slider=True)
            sub.prop(s, "intensity", slider=True)
            row = box.row(align=True)
            row.prop(s, "auto_blink")
            if not s.auto_blink:
                row.prop(s, "blink", slider=True)
                row.operator("emosplat.key_blink", text="", icon="KEY_HLT")
            caps = operators.capabilities(scene)
            if caps.get("valence_arousal"):
                row = box.row(align=True)
                row.prop(s, "valence")
                row.prop(s, "arousal")
                box.operator("emosplat.emotion_from", text="Key Valence/Arousal").source = "VA"
            if caps.get("text_prompts"):
                box.prop(s, "prompt")
                box.operator("emosplat.emotion_from", text="Key Prompt").source = "TEXT"

        box = layout.box()
        backend = ipc.current()
        running = backend is not None and backend.alive
        box.label(text="Backend: running" if running else "Backend: stopped",
                  icon="CHECKMARK" if running else "CANCEL")
        if not preferences.get(context).backend_python:
            box.label(text="Set the backend Python in the preferences", icon="ERROR")
        row = box.row(align=True)
        row.operator("emosplat.backend", text="Start").action = "START"
        row.operator("emosplat.backend", text="Stop").action = "STOP"
        row.operator("emosplat.backend", text="Restart").action = "RESTART"
        row.operator("emosplat.backend", text="", icon="INFO").action = "STATUS"

        box = layout.box()
        job = bake.active_job()
        state = scene.emosplat
        if job is not None and not job.finished:
            if hasattr(box, "progress"):
                box.progress(factor=state.progress, type="BAR", text=state.status)
            else:  # pragma: no cover - Blender < 4.0 has no progress widget
                box.prop(state, "progress", text=state.status, slider=True)
            box.operator("emosplat.cancel_bake", icon="CANCEL")
        else:
            row = box.row(align=True)
            row.operator("emosplat.bake", text="Bake Shot", icon="RENDER_ANIMATION").what = "SHOT"
            row.operator("emosplat.bake", text="Bake Frame", icon="RENDER_STILL").what = "FRAME"
            if state.status:
                box.label(text=state.status, icon="ERROR" if state.status.startswith("error") else "INFO")
        if scene.view_settings.view_transform != "Standard":
            # The avatar's frames are display colours; AgX/Filmic would tone-map them a second time.
            box.label(text="Set View Transform to Standard for true avatar colours", icon="ERROR")
        layout.operator("emosplat.export_video", icon="FILE_MOVIE")


CLASSES = (EMOSPLAT_PT_main,)

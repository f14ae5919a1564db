"""Operators: add the avatar, load audio, key emotions, run the backend, bake, export."""

from __future__ import annotations

import json
import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import animation, bake, ipc, preferences, shot_spec, sound
from .properties import EMOTIONS, HEAD_RADIUS_M, active_avatar

BACKGROUND_BAKE_TIMEOUT_S = 3600.0


def ensure_backend(context) -> ipc.Backend:
    """The running backend, started (with the preferences' Python) when there is none."""
    backend = ipc.current()
    if backend is not None and backend.alive:
        return backend
    prefs = preferences.get(context)
    log = os.path.join(preferences.cache_folder(context), "backend.log")
    backend = ipc.Backend(bpy.path.abspath(prefs.backend_python), log_path=log)
    backend.start()
    ipc.set_current(backend)
    try:
        caps = backend.request({"type": "capabilities"})
        context.scene.emosplat.capabilities = json.dumps({k: v for k, v in caps.items() if k not in ("type", "id")})
    except ipc.BackendError:
        pass
    return backend


def capabilities(scene) -> dict:
    try:
        return json.loads(scene.emosplat.capabilities or "{}")
    except ValueError:
        return {}


class EMOSPLAT_OT_add_avatar(bpy.types.Operator):
    """Add an EmoSplat avatar: an empty sized like a head that places the Gaussian head in the scene"""

    bl_idname = "emosplat.add_avatar"
    bl_label = "Add Avatar"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        ob = bpy.data.objects.new("EmoSplat Avatar", None)
        ob.empty_display_type = "SPHERE"
        ob.empty_display_size = HEAD_RADIUS_M
        ob.location = context.scene.cursor.location
        ob.emosplat.is_avatar = True
        ob.emosplat.avatar_path = "default"
        context.collection.objects.link(ob)
        for other in context.view_layer.objects:
            other.select_set(False)
        ob.select_set(True)
        context.view_layer.objects.active = ob
        return {"FINISHED"}


class EMOSPLAT_OT_load_audio(bpy.types.Operator, ImportHelper):
    """Load a speech clip as a sound strip at the scene start and fit the frame range to it"""

    bl_idname = "emosplat.load_audio"
    bl_label = "Load Audio"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: StringProperty(default="*.wav;*.flac;*.mp3;*.ogg;*.m4a;*.aac", options={"HIDDEN"})

    def execute(self, context):
        try:
            strip = sound.load_audio(context.scene, self.filepath)
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{os.path.basename(self.filepath)}: frames {context.scene.frame_start}-"
                              f"{context.scene.frame_end} ({strip.frame_final_duration} frames)")
        return {"FINISHED"}


class EMOSPLAT_OT_key_emotion(bpy.types.Operator):
    """Key the chosen emotion and intensity on the avatar at the current frame (all nine channels)"""

    bl_idname = "emosplat.key_emotion"
    bl_label = "Key Emotion"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return active_avatar(context) is not None

    def execute(self, context):
        avatar = active_avatar(context)
        s = avatar.emosplat
        animation.key_emotion(avatar, context.scene.frame_current, s.emotion, s.key_intensity)
        return {"FINISHED"}


class EMOSPLAT_OT_key_blink(bpy.types.Operator):
    """Key the Blink channel at the current frame"""

    bl_idname = "emosplat.key_blink"
    bl_label = "Key Blink"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return active_avatar(context) is not None

    def execute(self, context):
        avatar = active_avatar(context)
        animation.key_blink(avatar, context.scene.frame_current, avatar.emosplat.blink)
        return {"FINISHED"}


class EMOSPLAT_OT_emotion_from(bpy.types.Operator):
    """Ask the backend to turn the text prompt or valence/arousal into emotion weights, and key them"""

    bl_idname = "emosplat.emotion_from"
    bl_label = "Key From"
    bl_options = {"REGISTER", "UNDO"}
    source: EnumProperty(items=[("TEXT", "Text", ""), ("VA", "Valence/Arousal", "")])

    @classmethod
    def poll(cls, context):
        return active_avatar(context) is not None

    def execute(self, context):
        avatar = active_avatar(context)
        s = avatar.emosplat
        try:
            backend = ensure_backend(context)
            if self.source == "TEXT":
                reply = backend.request({"type": "text_to_emotion", "text": s.prompt}, timeout=120)
            else:
                reply = backend.request({"type": "va_to_emotion", "valence": s.valence, "arousal": s.arousal})
        except ipc.BackendError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        weights = reply["weights"]
        for prop, w in zip((f"weight_{e}" for e in EMOTIONS), weights):
            setattr(s, prop, w)
        s.intensity = reply["intensity"]
        frame = context.scene.frame_current
        for prop in (*(f"weight_{e}" for e in EMOTIONS), "intensity"):
            avatar.keyframe_insert(data_path=f"emosplat.{prop}", frame=frame, group="EmoSplat emotion")
        return {"FINISHED"}


class EMOSPLAT_OT_backend(bpy.types.Operator):
    """Start, stop or restart the EmoSplat backend, or show its status"""

    bl_idname = "emosplat.backend"
    bl_label = "Backend"
    action: EnumProperty(items=[("START", "Start", ""), ("STOP", "Stop", ""), ("RESTART", "Restart", ""),
                                ("STATUS", "Status", "")])

    def execute(self, context):
        state = context.scene.emosplat
        try:
            if self.action in {"STOP", "RESTART"}:
                job = bake.active_job()
                if job is not None and not job.finished:
                    job.cancel()
                ipc.set_current(None)
                state.status = "backend stopped"
            if self.action in {"START", "RESTART", "STATUS"}:
                backend = ensure_backend(context)
                info = backend.request({"type": "status"})
                state.status = (f"backend {info.get('backend_version')} on {info.get('device')} "
                                f"(torch {info.get('torch')}, CUDA {'yes' if info.get('torch_cuda_available') else 'no'})")
        except ipc.BackendError as err:
            state.status = f"error: {str(err).splitlines()[0]}"
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, state.status)
        return {"FINISHED"}


class EMOSPLAT_OT_check_backend(bpy.types.Operator):
    """Check that the backend Python can import torch and the EmoSplat backend"""

    bl_idname = "emosplat.check_backend"
    bl_label = "Check Backend Python"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            report = ipc.check_python(bpy.path.abspath(prefs.backend_python))
        except ipc.BackendError as err:
            report = f"error: {err}"
            self.report({"ERROR"}, str(err))
        if prefs is not preferences._Defaults:
            prefs.check_report = report.splitlines()[0][:200]
        self.report({"INFO"}, report)
        return {"FINISHED"}


class EMOSPLAT_OT_bake(bpy.types.Operator):
    """Render the avatar for the scene's frame range (or the current frame) and merge it into the compositor"""

    bl_idname = "emosplat.bake"
    bl_label = "Bake Avatar"
    what: EnumProperty(items=[("SHOT", "Shot", "The whole frame range"), ("FRAME", "Frame", "The current frame")])
    timeout: IntProperty(default=int(BACKGROUND_BAKE_TIMEOUT_S), options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        job = bake.active_job()
        return active_avatar(context) is not None and (job is None or job.finished)

    def execute(self, context):
        scene = context.scene
        avatar = active_avatar(context)
        prefs = preferences.get(context)
        folder = shot_spec.output_folder(preferences.cache_folder(context), scene, avatar)
        frames = (scene.frame_current, scene.frame_current) if self.what == "FRAME" else None
        try:
            spec = shot_spec.build_shot_spec(scene, avatar, folder, device=prefs.device, frames=frames)
            backend = ensure_backend(context)
        except (shot_spec.ShotError, ipc.BackendError) as err:
            scene.emosplat.status = f"error: {str(err).splitlines()[0]}"
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        kind = "render_frame" if self.what == "FRAME" else "render_shot"
        job = bake.BakeJob(backend, scene.name, scene.camera.name, spec, kind=kind,
                           frame=scene.frame_current if self.what == "FRAME" else None)
        try:
            if bpy.app.background:  # no timers without a UI: follow the bake here
                bake.set_active(job)
                job.start()
                job.wait(self.timeout)
            else:
                bake.run_in_background(job)
        except ipc.BackendError as err:
            job._fail(str(err))
        if job.error:
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        return {"FINISHED"}


class EMOSPLAT_OT_cancel_bake(bpy.types.Operator):
    """Stop the running bake; frames already rendered stay and are reused by the next bake"""

    bl_idname = "emosplat.cancel_bake"
    bl_label = "Cancel Bake"

    def execute(self, context):
        job = bake.active_job()
        if job is not None and not job.finished:
            job.cancel()
        return {"FINISHED"}


def configure_video_output(scene, filepath: str) -> None:
    """Blender's own movie output: MP4, H.264, AAC audio from the sequencer's sound strips."""
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # 5.0 splits image/video output
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    ff = scene.render.ffmpeg
    ff.format = "MPEG4"
    ff.codec = "H264"
    ff.constant_rate_factor = "HIGH"
    ff.audio_codec = "AAC"
    ff.audio_channels = "MONO"
    ff.audio_mixrate = 48000
    scene.render.filepath = filepath
    scene.render.use_file_extension = False


class EMOSPLAT_OT_export_video(bpy.types.Operator):
    """Render the animation with the avatar composited and the speech clip to an MP4 (H.264 + AAC)"""

    bl_idname = "emosplat.export_video"
    bl_label = "Export Video"
    filepath: StringProperty(subtype="FILE_PATH", default="//emosplat.mp4")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        if not path.lower().endswith(".mp4"):
            path += ".mp4"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        configure_video_output(context.scene, path)
        if bpy.app.background:
            bpy.ops.render.render(animation=True)
        else:
            bpy.ops.render.render("INVOKE_DEFAULT", animation=True)
        return {"FINISHED"}


CLASSES = (EMOSPLAT_OT_add_avatar, EMOSPLAT_OT_load_audio, EMOSPLAT_OT_key_emotion, EMOSPLAT_OT_key_blink,
           EMOSPLAT_OT_emotion_from, EMOSPLAT_OT_backend, EMOSPLAT_OT_check_backend, EMOSPLAT_OT_bake,
           EMOSPLAT_OT_cancel_bake, EMOSPLAT_OT_export_video)

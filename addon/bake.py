"""A bake in flight: send the shot, follow its progress from a timer, finish by wiring the compositor.

Blender's UI never waits on the backend: `BakeJob.poll()` reads whatever
messages have arrived and returns at once. It runs from `bpy.app.timers`
(interactive sessions) and is called directly in background mode and tests,
where timers do not fire.
"""

from __future__ import annotations

import json
import os

import bpy

from . import compositor, ipc

POLL_INTERVAL_S = 0.2
CANCEL_GRACE_S = 15.0  # a backend that does not stop within this after Cancel is given up on


class BakeJob:
    def __init__(self, backend: ipc.Backend, scene_name: str, camera_name: str, spec: dict, kind: str = "render_shot",
                 frame: int | None = None):
        self.backend = backend
        self.scene_name = scene_name
        self.camera_name = camera_name
        self.spec = spec
        self.kind = kind
        self.frame = frame
        self.request_id: int | None = None
        self.finished = False
        self.error: str | None = None
        self.result: dict | None = None
        self.cancel_sent_at: float | None = None

    @property
    def scene(self):
        return bpy.data.scenes.get(self.scene_name)

    def start(self) -> None:
        folder = self.spec["output"]["folder"]
        os.makedirs(folder, exist_ok=True)
        # The spec beside the frames: `emosplat render --shot <folder>/shot.json` redoes this bake without Blender.
        with open(os.path.join(folder, "shot.json.tmp"), "w", encoding="utf-8") as fh:
            json.dump(self.spec, fh)
        os.replace(os.path.join(folder, "shot.json.tmp"), os.path.join(folder, "shot.json"))
        message = {"type": self.kind, "spec": self.spec}
        if self.frame is not None:
            message["frame"] = self.frame
        self.request_id = self.backend.send(message)
        self._status(0.0, "baking: starting", baking=True)

    def cancel(self) -> None:
        """Ask the backend to stop after its current frame (never waits for it)."""
        import time

        if self.finished:
            return
        self.cancel_sent_at = time.monotonic()
        try:
            self.backend.send({"type": "cancel"})
            self._status(self._progress(), "cancelling after the current frame")
        except ipc.BackendError as err:
            self._fail(str(err))

    def _progress(self) -> float:
        scene = self.scene
        return scene.emosplat.progress if scene is not None else 0.0

    def poll(self) -> float | None:
        """Handle what arrived; returns the next poll interval, or None once the job has ended."""
        import time

        if self.finished:
            return None
        if self.cancel_sent_at is not None and time.monotonic() - self.cancel_sent_at > CANCEL_GRACE_S:
            self._fail("the backend did not stop after Cancel; restart it from the EmoSplat panel")
            return None
        try:
            messages = self.backend.poll(self.request_id)
            if not messages and not self.backend.alive:
                raise ipc.BackendError(self.backend.death_message())
        except ipc.BackendError as err:
            self._fail(str(err))
            return None
        for message in messages:
            kind = message["type"]
            if kind == "progress":
                total = max(1, int(message.get("total", 1)))
                done = int(message.get("done", 0))
                self._status(done / total, f"baking: frame {message.get('frame')} ({done}/{total})")
            elif kind == "done":
                self._finish(message)
                return None
            elif kind == "cancelled":
                self.finished = True
                self.result = message
                self._status(0.0, f"cancelled: {len(message.get('frames', []))} frames kept on disk", baking=False)
                return None
            elif kind == "error":
                self._fail(message.get("message", "the backend reported an error"))
                return None
        return POLL_INTERVAL_S

    def wait(self, timeout: float) -> None:
        """Poll until the job ends (background mode and tests only: it blocks)."""
        import time

        deadline = time.monotonic() + timeout
        while self.poll() is not None:
            if time.monotonic() > deadline:
                self.cancel()
                self._fail(f"the bake did not finish within {timeout:.0f} s")
                return
            time.sleep(0.05)

    # -- endings --------------------------------------------------------------------------------------------

    def _finish(self, message: dict) -> None:
        self.finished = True
        self.result = message
        scene = self.scene
        if scene is None:
            return
        folder, stem = self.spec["output"]["folder"], self.spec["output"]["stem"]
        start, end = self.spec["frame_range"]
        state = scene.emosplat
        try:
            if self.kind == "render_frame" and state.last_folder == folder and state.last_end >= state.last_start:
                # The shot is wired already and this frame landed among its files: just show the new pixels.
                compositor.reload_images(folder, stem)
            else:
                state.last_folder, state.last_stem, state.last_start, state.last_end = folder, stem, start, end
                compositor.wire_compositor(scene, folder, stem, start, end)
                camera = bpy.data.objects.get(self.camera_name)
                if camera is not None:
                    compositor.show_in_camera(camera, folder, stem, start, end)
        except (OSError, RuntimeError, ValueError) as err:
            self._fail(f"frames are baked but the compositor could not be set up: {err}")
            return
        self._status(1.0, f"baked {len(message.get('frames', []))} frames ({message.get('rendered', 0)} new) with "
                          f"the {message.get('backend', '?')} renderer", baking=False)

    def _fail(self, text: str) -> None:
        self.finished = True
        self.error = text
        self._status(0.0, f"error: {text.splitlines()[0]}", baking=False)

    def _status(self, progress: float, text: str, baking: bool | None = None) -> None:
        scene = self.scene
        if scene is None:
            return
        scene.emosplat.progress = progress
        scene.emosplat.status = text
        if baking is not None:
            scene.emosplat.baking = baking
        for window in getattr(bpy.context.window_manager, "windows", []):
            for area in window.screen.areas:
                if area.type in {"VIEW_3D", "PROPERTIES"}:
                    area.tag_redraw()


_active: BakeJob | None = None


def active_job() -> BakeJob | None:
    return _active


def run_in_background(job: BakeJob) -> None:
    """Start `job` and follow it from a timer (interactive Blender)."""
    global _active
    _active = job
    job.start()

    def tick():
        interval = job.poll()
        if interval is None:
            if job.error:
                print(f"EmoSplat bake failed: {job.error}")
        return interval

    bpy.app.timers.register(tick, first_interval=POLL_INTERVAL_S)


def set_active(job: BakeJob | None) -> None:
    global _active
    _active = job

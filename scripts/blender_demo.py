"""EmoSplat's main demo, through Blender: a scene built from scratch, baked and composited by the add-on, to an MP4.

Run with the bpy module of the project's environment:

    .venv/bin/python scripts/blender_demo.py --out out/blender_demo.mp4 [--frames N] [--size WxH] [--engine E]

or inside a Blender binary (4.2+), with the backend in the project's environment:

    blender -b --python-exit-code 1 -P scripts/blender_demo.py -- --out out/blender_demo.mp4

Every step is the add-on's own operator, as an artist would press it in the EmoSplat panel: Add Avatar, Load
Audio, Key Emotion (neutral -> happy -> surprised -> sad), Backend Start, the bake followed by calling its timer
callback (`BakeJob.poll`, what `bpy.app.timers` runs in the UI; timers do not fire in background mode), and
Export Video (Blender's own FFMPEG output, through the compositor's Z Combine). The set: a backdrop, a table and
a mug in front of the jaw, a camera framing the head and a key light. Exits non-zero with a message on failure.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_AUDIO = REPO / "assets" / "audio" / "arctic_a0007.wav"
ENGINES = {"WORKBENCH": "BLENDER_WORKBENCH", "EEVEE": "BLENDER_EEVEE", "CYCLES": "CYCLES"}
FPS = 25

# The set, in Blender world space (metres, +Z up). The avatar sits at the origin, face toward -Y.
CAMERA_LOCATION = (0.0, -0.72, -0.015)
CAMERA_LENS_MM = 60.0  # on the default 36 mm sensor: the head fills most of a square frame
SENSOR_MM = 36.0
MUG_RADIUS, MUG_HEIGHT = 0.036, 0.14
TABLE_Z = -0.2
MUG_CENTER = (0.04, -0.27, TABLE_Z + MUG_HEIGHT / 2)
BACKDROP_Y = 0.45
LIGHT_WATTS = 12.0  # an area light about 1.2 m from the head: exposed for the Standard view transform
MUG_COLOR = (0.05, 0.25, 0.75, 1.0)  # blue: far from skin, table and backdrop colours
TABLE_COLOR = (0.35, 0.2, 0.1, 1.0)
BACKDROP_COLOR = (0.45, 0.5, 0.55, 1.0)
# (fraction of the clip, emotion, intensity): MEAD levels 1/2/3 are intensities 1/3, 2/3, 1.
EMOTION_KEYS = ((0.0, "NEUTRAL", 0.0), (0.22, "HAPPY", 2 / 3), (0.5, "SURPRISED", 1.0), (0.8, "SAD", 1.0))


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and what to do."""


def project_to_pixel(point, width: int, height: int) -> tuple[float, float]:
    """Pixel (x right, y down) of a world point in the demo camera (level, looking down +Y; square sensor fit)."""
    f = CAMERA_LENS_MM / SENSOR_MM * max(width, height)
    depth = point[1] - CAMERA_LOCATION[1]
    return (width / 2 + f * (point[0] - CAMERA_LOCATION[0]) / depth,
            height / 2 - f * (point[2] - CAMERA_LOCATION[2]) / depth)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blender_demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "out" / "blender_demo.mp4"), help="output MP4 (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=0, help="render only the first N frames (default: the whole clip)")
    parser.add_argument("--size", default="384x384", help="resolution WxH (default: %(default)s)")
    parser.add_argument("--engine", default="WORKBENCH", choices=sorted(ENGINES), help="render engine (default: %(default)s)")
    parser.add_argument("--cache", default="", help="baked-frame cache folder (default: <out>_cache beside the MP4; "
                                                    "a rerun reuses frames whose inputs are unchanged)")
    parser.add_argument("--backend-python", default="", help="Python with torch and emo_backend "
                                                             "(default: the add-on's, <repo>/.venv/bin/python)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        assert w >= 16 and h >= 16
    except (ValueError, AssertionError):
        parser.error(f"--size {args.size!r}: expected WxH, e.g. 384x384 (at least 16x16)")
    args.width, args.height = w, h
    if args.frames < 0:
        parser.error("--frames must be >= 1 (or 0 for the whole clip)")
    args.out = os.path.abspath(args.out)
    if not args.out.lower().endswith(".mp4"):
        parser.error(f"--out {args.out}: must end in .mp4")
    args.cache = os.path.abspath(args.cache or os.path.splitext(args.out)[0] + "_cache")
    return args


def say(text: str) -> None:
    print(f"[blender-demo] {text}", flush=True)


# -- the add-on ---------------------------------------------------------------------------------------------------

def enable_addon(bpy, scratch: Path) -> tuple[str, object]:
    """The enabled extension's module name and a cleanup callable.

    An EmoSplat extension already installed and enabled (Get Extensions > Install from Disk) is used as is.
    Otherwise this checkout is linked into a temporary extension repository and enabled through addon_utils:
    how Blender loads an installed extension, without touching the user's repositories for good.
    """
    import addon_utils

    enabled = [name for name in bpy.context.preferences.addons.keys() if name.endswith(".emosplat")]
    if enabled:
        return enabled[0], lambda: None
    ext_dir = scratch / "extensions"
    ext_dir.mkdir(parents=True, exist_ok=True)
    link = ext_dir / "emosplat"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    repo = bpy.context.preferences.extensions.repos.new(name="EmoSplat demo", module="emosplat_demo",
                                                        custom_directory=str(ext_dir), source="USER")
    name = "bl_ext.emosplat_demo.emosplat"
    errors = []
    mod = addon_utils.enable(name, default_set=True, handle_error=errors.append)
    if mod is None or errors:
        bpy.context.preferences.extensions.repos.remove(repo)
        raise DemoError(f"the EmoSplat extension in {REPO} did not enable: {errors[0] if errors else 'unknown error'}")

    def cleanup():
        bpy.context.preferences.extensions.repos.remove(repo)  # Blender disables the repository's add-ons with it
        link.unlink()  # the link first: nothing below may ever reach into the checkout

    return name, cleanup


def run_op(op, **kwargs) -> None:
    """Call an add-on operator; an error it reports (RuntimeError from bpy) or a CANCELLED result stops the demo."""
    import bpy

    try:
        result = op(**kwargs)
    except RuntimeError as err:
        raise DemoError(f"{op.idname_py()}: {str(err).strip()}") from None
    if "FINISHED" not in result:
        status = bpy.context.scene.emosplat.status if hasattr(bpy.context.scene, "emosplat") else ""
        raise DemoError(f"{op.idname_py()} returned {sorted(result)} {status}".strip())


# -- the scene ----------------------------------------------------------------------------------------------------

def material(bpy, name: str, color) -> object:
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = color  # Workbench (Material colour) and the viewport
    tree = getattr(mat, "node_tree", None)
    if tree is None and hasattr(mat, "use_nodes"):
        mat.use_nodes = True
        tree = mat.node_tree
    bsdf = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None) if tree else None
    if bsdf is not None:  # EEVEE, Cycles
        bsdf.inputs["Base Color"].default_value = color
        bsdf.inputs["Roughness"].default_value = 0.5
    return mat


def build_set(bpy, scene) -> None:
    """Camera framing the head, a backdrop, a table with a mug in front of the jaw, a key light."""
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = CAMERA_LOCATION, (math.pi / 2, 0.0, 0.0)
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_fit = CAMERA_LENS_MM, SENSOR_MM, "AUTO"
    cam.data.clip_start = 0.05
    scene.camera = cam

    bpy.ops.mesh.primitive_plane_add(size=3.0, location=(0.0, BACKDROP_Y, 0.3), rotation=(math.pi / 2, 0.0, 0.0))
    bpy.context.object.name = "Backdrop"
    bpy.context.object.data.materials.append(material(bpy, "Backdrop", BACKDROP_COLOR))
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, 0.0, TABLE_Z))
    bpy.context.object.name = "Table"
    bpy.context.object.data.materials.append(material(bpy, "Table", TABLE_COLOR))
    bpy.ops.mesh.primitive_cylinder_add(vertices=48, radius=MUG_RADIUS, depth=MUG_HEIGHT, location=MUG_CENTER)
    mug = bpy.context.object
    mug.name = "Mug"
    mug.data.materials.append(material(bpy, "Mug", MUG_COLOR))
    bpy.ops.object.shade_smooth()

    light = bpy.data.objects.new("Key Light", bpy.data.lights.new("Key Light", "AREA"))
    light.data.energy, light.data.size = LIGHT_WATTS, 0.6
    scene.collection.objects.link(light)
    light.location = (-0.6, -0.9, 0.6)
    direction = -light.location.normalized()
    light.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()

    shading = scene.display.shading  # Workbench: the materials' colours, studio lighting
    shading.light, shading.color_type = "STUDIO", "MATERIAL"
    if hasattr(scene, "world") and scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.05, 0.05, 0.05)


def set_engine(scene, engine: str) -> None:
    try:
        scene.render.engine = ENGINES[engine]
    except TypeError:  # Blender 4.2-4.4 call EEVEE "BLENDER_EEVEE_NEXT"
        scene.render.engine = ENGINES[engine] + "_NEXT"


def key_emotions(bpy, scene, avatar) -> None:
    """Key Emotion operator at fractions of the clip: neutral -> happy -> surprised -> sad."""
    length = scene.frame_end - scene.frame_start
    for fraction, emotion, intensity in EMOTION_KEYS:
        scene.frame_set(scene.frame_start + round(fraction * length))
        avatar.emosplat.emotion, avatar.emosplat.key_intensity = emotion, intensity
        run_op(bpy.ops.emosplat.key_emotion)
        say(f"keyed {emotion.lower()} at intensity {intensity:.2f} on frame {scene.frame_current}")
    scene.frame_set(scene.frame_start)


# -- bake and export ----------------------------------------------------------------------------------------------

def bake(bpy, addon, scene, avatar, timeout_s: float = 3600.0) -> None:
    """What Bake Shot does, followed the way the UI's timer follows it: call `BakeJob.poll` until it ends."""
    context = bpy.context
    prefs = addon.preferences.get(context)
    folder = addon.shot_spec.output_folder(addon.preferences.cache_folder(context), scene, avatar)
    spec = addon.shot_spec.build_shot_spec(scene, avatar, folder, device=prefs.device)
    job = addon.bake.BakeJob(addon.ipc.current(), scene.name, scene.camera.name, spec)
    addon.bake.set_active(job)
    job.start()
    started, shown_percent = time.monotonic(), -10
    while True:
        interval = job.poll()  # the timer callback's body: handle what arrived, never block
        percent = int(scene.emosplat.progress * 100)
        if interval is None or (percent // 10 != shown_percent // 10 and percent > shown_percent):
            shown_percent = percent
            say(f"{time.monotonic() - started:6.1f} s  {percent:3d}%  {scene.emosplat.status}")
        if interval is None:
            break
        if time.monotonic() - started > timeout_s:
            job.cancel()
            raise DemoError(f"the bake did not finish within {timeout_s:.0f} s")
        time.sleep(min(interval, 0.1))
    if job.error:
        raise DemoError(f"bake failed: {job.error}")
    if job.result is None or job.result.get("type") != "done":
        raise DemoError(f"bake ended without finishing: {scene.emosplat.status}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    inside_blender = "bpy" in sys.modules
    scratch = Path(tempfile.mkdtemp(prefix="emosplat_demo_"))
    if not inside_blender:
        # The bpy module reads and may write the user's Blender settings: give it a private home instead.
        home = scratch / "home"
        os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
                          XDG_DATA_HOME=str(home / "data"))
    try:
        import bpy
    except ImportError:
        raise DemoError("bpy is not importable: run with the project's .venv/bin/python (./run setup installs the "
                        "bpy module) or inside Blender: blender -b -P scripts/blender_demo.py -- --out ...") from None
    if not DEMO_AUDIO.is_file():
        raise DemoError(f"{DEMO_AUDIO} is missing; restore assets/ from the repository")

    t0 = time.monotonic()
    bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=True)
    module_name, cleanup = enable_addon(bpy, scratch)
    addon = sys.modules[f"{module_name}.addon"]
    try:
        prefs = addon.preferences.get(bpy.context)
        if args.backend_python:
            prefs.backend_python = args.backend_python
        elif not prefs.backend_python and (REPO / ".venv" / "bin" / "python").is_file():
            prefs.backend_python = str(REPO / ".venv" / "bin" / "python")  # installed from a zip: the checkout's
        prefs.device = args.device
        prefs.cache_folder = args.cache
        say(f"add-on {module_name} enabled; backend Python {prefs.backend_python or '(unset)'}")

        scene = bpy.context.scene
        set_engine(scene, args.engine)
        if args.engine == "CYCLES":
            scene.cycles.samples, scene.cycles.use_denoising = 16, False
        scene.render.resolution_x, scene.render.resolution_y = args.width, args.height
        scene.render.resolution_percentage = 100
        scene.render.fps, scene.render.fps_base = FPS, 1.0
        scene.frame_start = 1
        scene.view_settings.view_transform = "Standard"  # the avatar's baked colours pass through unchanged

        run_op(bpy.ops.emosplat.add_avatar)
        avatar = bpy.context.object
        run_op(bpy.ops.emosplat.load_audio, filepath=str(DEMO_AUDIO))
        clip_end = scene.frame_end
        if args.frames:
            scene.frame_end = min(clip_end, scene.frame_start + args.frames - 1)
        say(f"audio {DEMO_AUDIO.name}: clip frames 1-{clip_end}, rendering {scene.frame_start}-{scene.frame_end} "
            f"at {args.width}x{args.height}, {FPS} fps, {args.engine}")
        build_set(bpy, scene)
        bpy.context.view_layer.objects.active = avatar
        key_emotions(bpy, scene, avatar)
        t_scene = time.monotonic()

        run_op(bpy.ops.emosplat.backend, action="START")
        say(scene.emosplat.status)
        t_backend = time.monotonic()
        bake(bpy, addon, scene, avatar)
        t_bake = time.monotonic()

        render_started = [time.monotonic()]

        def on_frame(scene_, *_):
            done = scene_.frame_current - scene_.frame_start + 1
            if done == 1 or done % 10 == 0 or scene_.frame_current == scene_.frame_end:
                say(f"{time.monotonic() - render_started[0]:6.1f} s  rendered frame {scene_.frame_current} "
                    f"({done}/{scene_.frame_end - scene_.frame_start + 1})")

        bpy.app.handlers.render_post.append(on_frame)
        try:
            run_op(bpy.ops.emosplat.export_video, filepath=args.out)
        finally:
            bpy.app.handlers.render_post.remove(on_frame)
        t_export = time.monotonic()
        if not os.path.isfile(args.out) or os.path.getsize(args.out) == 0:
            raise DemoError(f"Blender finished the render but {args.out} was not written")
        frames = scene.frame_end - scene.frame_start + 1
        say(f"timing: scene {t_scene - t0:.1f} s, backend start {t_backend - t_scene:.1f} s, bake {t_bake - t_backend:.1f} s "
            f"({(t_bake - t_backend) / frames:.2f} s/frame), Blender render + encode {t_export - t_bake:.1f} s "
            f"({(t_export - t_bake) / frames:.2f} s/frame), total {t_export - t0:.1f} s for {frames} frames")
        say(f"video: {args.out}")
        return 0
    finally:
        if addon.ipc.current() is not None:
            bpy.ops.emosplat.backend(action="STOP")
        cleanup()
        shutil.rmtree(scratch, ignore_errors=True)


def _argv() -> list[str]:
    # Inside Blender the script's own arguments follow "--"; with the bpy module they are the usual ones.
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    return [] if "bpy" in sys.modules else sys.argv[1:]


if __name__ == "__main__":
    try:
        code = main(_argv())
    except DemoError as err:
        print(f"blender-demo: error: {err}", file=sys.stderr, flush=True)
        code = 1
    except Exception as err:  # a Blender or add-on failure: the traceback helps, the last line says what failed
        import traceback

        traceback.print_exc()
        print(f"blender-demo: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)

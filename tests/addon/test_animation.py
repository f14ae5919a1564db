"""Emotion keys -> F-curves -> per-frame values in the shot spec; the sound strip."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.blender


def _avatar_and_camera(bpy, scene):
    bpy.ops.emosplat.add_avatar()
    avatar = bpy.context.object
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location = (0.0, -0.6, 0.0)
    cam.rotation_euler = (np.pi / 2, 0.0, 0.0)  # looking down +Y at the avatar's face
    scene.camera = cam
    return avatar, cam


def test_keys_blend_between_emotions_and_land_in_the_spec(blender, clean_scene, addon, tmp_path):
    bpy = blender
    scene = clean_scene
    scene.frame_start, scene.frame_end = 1, 21
    scene.render.resolution_x = scene.render.resolution_y = 64
    avatar, _ = _avatar_and_camera(bpy, scene)
    s = avatar.emosplat
    s.emotion, s.key_intensity = "HAPPY", 1.0
    scene.frame_set(1)
    assert bpy.ops.emosplat.key_emotion() == {"FINISHED"}
    s.emotion, s.key_intensity = "SAD", 0.5
    scene.frame_set(21)
    bpy.ops.emosplat.key_emotion()

    curves = addon.animation.emotion_fcurves(avatar)
    assert set(curves) == {*addon.properties.CHANNEL_PROPS}  # 8 weights + intensity, visible in the Graph Editor
    assert all(len(fc.keyframe_points) == 2 for fc in curves.values())
    # Through the compat helper: the same F-curves whatever the action layout (5.0 channelbags, 4.x action.fcurves).
    assert len(addon.compat.fcurves(avatar)) == 9

    s.auto_blink = False
    spec = addon.shot_spec.build_shot_spec(scene, avatar, str(tmp_path))
    w = np.array(spec["emotion"]["weights"])
    i = np.array(spec["emotion"]["intensity"])
    happy, sad = addon.properties.EMOTIONS.index("happy"), addon.properties.EMOTIONS.index("sad")
    assert w.shape == (21, 8) and w[0, happy] == 1 and w[0, sad] == 0 and w[-1, sad] == 1 and i[0] == 1 and i[-1] == 0.5
    mid = w[10]
    assert 0.3 < mid[happy] < 0.7 and 0.3 < mid[sad] < 0.7  # a smooth transition, not a cut
    assert np.all(np.diff(w[:, sad]) >= -1e-6)  # Bezier ease: monotone between two keys
    assert spec["blink"] == [0.0] * 21 and spec["frame_range"] == [1, 21] and spec["resolution"] == [64, 64]
    assert scene.frame_current == 21  # sampling restores the current frame

    # The avatar matrix carries the one axis change: avatar +Z (out of the face) -> Blender -Y (toward the camera).
    m = np.array(spec["avatar_matrix"][0])
    np.testing.assert_allclose(m[:3, :3] @ [0, 0, 1], [0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(m[:3, :3] @ [0, 1, 0], [0, 0, 1], atol=1e-6)
    # And the backend projects the avatar's origin to the image centre through the converted camera.
    K, view = np.array(spec["camera"]["K"][0]), np.array(spec["camera"]["viewmat"][0])
    uv, z = addon.camera.project(m[:3, 3][None], K, view)
    np.testing.assert_allclose(uv[0], [32, 32], atol=1e-6)
    assert z[0] == pytest.approx(0.6)


def test_spec_written_by_the_addon_is_valid_for_the_backend(blender, clean_scene, addon, tmp_path):
    """The two halves agree on the spec: the add-on's output passes the backend's validation."""
    from emo_backend.shot import parse_shot_spec

    bpy = blender
    scene = clean_scene
    scene.frame_start, scene.frame_end = 3, 5
    avatar, _ = _avatar_and_camera(bpy, scene)
    spec = parse_shot_spec(addon.shot_spec.build_shot_spec(scene, avatar, str(tmp_path), device="cpu"))
    assert spec.frames == range(3, 6) and spec.blink is None and spec.device == "cpu"
    assert spec.weights[:, 0].tolist() == [1.0, 1.0, 1.0]  # nothing keyed: neutral


def test_load_audio_adds_a_strip_and_fits_the_frame_range(blender, clean_scene, addon, tmp_path):
    import wave

    bpy = blender
    scene = clean_scene
    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.frame_start = 10
    path = tmp_path / "speech.wav"
    rate, seconds = 16000, 1.3
    t = np.arange(int(rate * seconds)) / rate
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes())
    assert bpy.ops.emosplat.load_audio(filepath=str(path)) == {"FINISHED"}
    strip = addon.sound.find_audio_strip(scene)
    assert strip is not None and strip.frame_start == 10 and strip.sound.filepath == str(path)
    assert (scene.frame_start, scene.frame_end) == (10, 10 + 33 - 1)  # 1.3 s at 25 fps = 32.5 -> 33 frames
    # Loading again replaces the strip rather than stacking a second one.
    bpy.ops.emosplat.load_audio(filepath=str(path))
    assert len([s for s in addon.compat.strips(scene) if s.get(addon.sound.OWNER_KEY)]) == 1
    with pytest.raises(RuntimeError, match="nope.wav does not exist"):
        bpy.ops.emosplat.load_audio(filepath=str(tmp_path / "nope.wav"))


def _write_wav(path, seconds: float, rate: int = 16000) -> None:
    import wave

    t = np.arange(int(rate * seconds)) / rate
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes())


def test_export_video_writes_h264_with_aac_audio(blender, clean_scene, addon, tmp_path):
    av = pytest.importorskip("av")
    bpy = blender
    scene = clean_scene
    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.render.resolution_x = scene.render.resolution_y = 64
    _write_wav(tmp_path / "speech.wav", 0.2)
    bpy.ops.emosplat.load_audio(filepath=str(tmp_path / "speech.wav"))
    assert (scene.frame_start, scene.frame_end) == (1, 5)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    out = tmp_path / "shot.mp4"
    assert bpy.ops.emosplat.export_video(filepath=str(out)) == {"FINISHED"}
    with av.open(str(out)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        frames = sum(1 for _ in container.decode(video=0))
    assert kinds == {"video": "h264", "audio": "aac"} and frames == 5

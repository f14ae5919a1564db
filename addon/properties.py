"""Data the add-on stores in the .blend: the avatar object's `emosplat` group and the bake status.

The nine emotion channels (eight weights + intensity) and blink are plain
animatable floats on the avatar object's group, so keys become F-curves the
artist sees and edits in the Dope Sheet and Graph Editor, and Blender's own
interpolation blends between emotions.
"""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

# DESIGN.md's order; index i of a weights vector is EMOTIONS[i].
EMOTIONS: tuple[str, ...] = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
WEIGHT_PROPS: tuple[str, ...] = tuple(f"weight_{name}" for name in EMOTIONS)
CHANNEL_PROPS: tuple[str, ...] = (*WEIGHT_PROPS, "intensity")  # what "Key emotion" keys
DATA_PATH_PREFIX = "emosplat."

# Avatar space (+Y up, +Z out of the face, +X the subject's left) -> the avatar object's local space in Blender
# (+Z up, the face looking down -Y toward a front-view camera, the subject's left at +X): +90 degrees about X.
# The one fixed axis change between the two worlds; the shot's avatar matrix is matrix_world @ this.
AVATAR_TO_BLENDER = (
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, -1.0, 0.0),
    (0.0, 1.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
)

HEAD_RADIUS_M = 0.11  # the proxy sphere's size: an adult head


def _weight(name: str, default: float) -> FloatProperty:
    return FloatProperty(name=name.capitalize(), description=f"How much of '{name}' this frame's emotion holds",
                         default=default, min=0.0, max=1.0, options={"ANIMATABLE"})


class EmoSplatAvatarSettings(bpy.types.PropertyGroup):
    is_avatar: BoolProperty(name="EmoSplat avatar", default=False)
    avatar_path: StringProperty(
        name="Avatar", default="default", subtype="FILE_PATH",
        description="'default' for the bundled avatar, or an avatar bundle folder / .emosplat file")
    # Inputs for "Key emotion" (not animated themselves).
    emotion: EnumProperty(
        name="Emotion", description="Emotion to key at the current frame",
        items=[(name.upper(), name.capitalize(), f"Key {name}") for name in EMOTIONS], default="NEUTRAL")
    key_intensity: FloatProperty(name="Intensity", description="Intensity to key (MEAD levels 1/2/3 = 1/3, 2/3, 1)",
                                 default=2.0 / 3.0, min=0.0, max=1.0, subtype="FACTOR")
    # Animated channels, sampled per frame for the shot.
    weight_neutral: _weight("neutral", 1.0)
    weight_angry: _weight("angry", 0.0)
    weight_contempt: _weight("contempt", 0.0)
    weight_disgusted: _weight("disgusted", 0.0)
    weight_fear: _weight("fear", 0.0)
    weight_happy: _weight("happy", 0.0)
    weight_sad: _weight("sad", 0.0)
    weight_surprised: _weight("surprised", 0.0)
    intensity: FloatProperty(name="Intensity", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                             options={"ANIMATABLE"}, description="Emotion intensity at this frame (0 = neutral face)")
    blink: FloatProperty(name="Blink", default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"ANIMATABLE"},
                         description="Eyelids: 0 open, 1 closed (used when Auto blink is off)")
    auto_blink: BoolProperty(name="Auto blink", default=True,
                             description="Let the backend add natural blinks instead of the keyed Blink channel")
    # Valence/arousal and text prompt (shown when the backend offers them).
    valence: FloatProperty(name="Valence", default=0.0, min=-1.0, max=1.0)
    arousal: FloatProperty(name="Arousal", default=0.0, min=-1.0, max=1.0)
    prompt: StringProperty(name="Prompt", default="", description="Describe the emotion, e.g. 'quietly furious'")


class EmoSplatSceneState(bpy.types.PropertyGroup):
    """Bake status shown in the panel (per scene; not animated)."""

    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(name="Status", default="")
    baking: BoolProperty(default=False)
    last_folder: StringProperty(default="", subtype="DIR_PATH")
    last_stem: StringProperty(default="avatar")
    last_start: IntProperty(default=1)
    last_end: IntProperty(default=1)
    capabilities: StringProperty(default="{}", description="Backend capabilities (JSON)")


CLASSES = (EmoSplatAvatarSettings, EmoSplatSceneState)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.emosplat = PointerProperty(type=EmoSplatAvatarSettings)
    bpy.types.Scene.emosplat = PointerProperty(type=EmoSplatSceneState)


def unregister() -> None:
    del bpy.types.Scene.emosplat
    del bpy.types.Object.emosplat
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)


def avatars(scene) -> list:
    return [ob for ob in scene.objects if ob.type == "EMPTY" and ob.emosplat.is_avatar]


def active_avatar(context):
    ob = context.object
    if ob is not None and ob.type == "EMPTY" and ob.emosplat.is_avatar:
        return ob
    found = avatars(context.scene)
    return found[0] if found else None

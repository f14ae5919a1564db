"""Merge the baked avatar into the scene's render: compositor nodes, and the camera background preview.

The add-on owns only nodes it made (name prefix "EmoSplat", custom property
`emosplat` holding the node's role). Wiring again after another bake updates
those nodes in place; the artist's own nodes are never removed. The avatar
goes in front of or behind scene geometry by depth (Z Combine against the
Render Layers' Depth pass), with its straight alpha honoured (soft edges are
an exact alpha-over), so F12 and animation renders include it with Cycles,
EEVEE and Workbench alike.
"""

from __future__ import annotations

import os

import bpy

from . import compat

PREFIX = "EmoSplat"
OWNER_KEY = "emosplat"
ROLE_AVATAR, ROLE_DEPTH, ROLE_ZCOMBINE, ROLE_LAYERS = "avatar", "depth", "zcombine", "render_layers"


def _owned(tree, role: str):
    return next((n for n in tree.nodes if n.get(OWNER_KEY) == role), None)


def _node(tree, role: str, bl_idname: str, label: str, location: tuple[float, float]):
    node = _owned(tree, role)
    if node is None:
        node = tree.nodes.new(bl_idname)
        node[OWNER_KEY] = role
        node.location = location
    node.name = node.label = f"{PREFIX} {label}"
    return node


# Z Combine's "Use Alpha" mixes its inputs as B * alpha + A * (1 - alpha): B must arrive un-premultiplied. The
# frames are straight-alpha PNGs; "CHANNEL_PACKED" keeps their colour and alpha apart (no premultiplication on
# load), so soft edges come out as a true alpha-over. ("STRAIGHT" would be premultiplied on load and multiplied
# again by Z Combine: edge pixels darkened toward the background.)
AVATAR_ALPHA_MODE = "CHANNEL_PACKED"


def sequence_image(filepath: str, colorspace: str, alpha_mode: str = AVATAR_ALPHA_MODE):
    """An image datablock for a numbered sequence (reused and reloaded after a rebake)."""
    name = f"{PREFIX} {os.path.basename(filepath)}"
    image = bpy.data.images.get(name)
    if image is None or bpy.path.abspath(image.filepath) != filepath:
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.load(filepath, check_existing=False)
        image.name = name
    image.source = "SEQUENCE"
    image.colorspace_settings.name = colorspace
    image.alpha_mode = alpha_mode
    image.reload()
    return image


def reload_images(folder: str, stem: str) -> None:
    """Re-read the add-on's images of this bake (after frames were re-rendered on disk)."""
    for path in (os.path.join(folder, f"{stem}_"), os.path.join(folder, f"{stem}_depth_")):
        for image in bpy.data.images:
            if image.name.startswith(PREFIX) and bpy.path.abspath(image.filepath).startswith(path):
                image.reload()


def _set_sequence(user_or_node, start: int, end: int) -> None:
    # Files are numbered by scene frame: scene frame f shows file f.
    user_or_node.frame_start = start
    user_or_node.frame_duration = end - start + 1
    user_or_node.frame_offset = start - 1
    user_or_node.use_auto_refresh = True


def wire_compositor(scene, folder: str, stem: str, start: int, end: int) -> dict:
    """Build or update the avatar merge; returns the owned nodes by role."""
    avatar_file = os.path.join(folder, f"{stem}_{start:04d}.png")
    depth_file = os.path.join(folder, f"{stem}_depth_{start:04d}.exr")
    for path in (avatar_file, depth_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing; bake the avatar first")
    for layer in scene.view_layers:
        layer.use_pass_z = True  # Render Layers' Depth output
    tree = compat.compositor_tree(scene)
    output_node, output_socket = compat.compositor_output(tree)

    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers" and n.get(OWNER_KEY) is None), None)
    if layers is None:
        layers = _node(tree, ROLE_LAYERS, "CompositorNodeRLayers", "Render Layers", (-500, 300))
        layers.scene = scene
    avatar = _node(tree, ROLE_AVATAR, "CompositorNodeImage", "Avatar", (-500, -100))
    depth = _node(tree, ROLE_DEPTH, "CompositorNodeImage", "Avatar Depth", (-500, -400))
    zc = _node(tree, ROLE_ZCOMBINE, "CompositorNodeZcombine", "Z Combine", (-100, 100))
    avatar.image = sequence_image(avatar_file, "sRGB", AVATAR_ALPHA_MODE)
    depth.image = sequence_image(depth_file, "Non-Color", "NONE")
    for node in (avatar, depth):
        _set_sequence(node, start, end)
    # No Anti-Alias: it blends the colour of fully transparent avatar pixels (black) into a ring around the head;
    # the avatar's own alpha already anti-aliases its outline.
    compat.zcombine_set_options(zc, use_alpha=True, anti_alias=False)

    (a_img, a_depth, b_img, b_depth), (out_img, _) = compat.zcombine_sockets(zc)
    # The scene side: whatever the artist sent to the output (a grade, a glare...) or the Render Layers image.
    scene_source = None
    for link in list(output_socket.links):
        if link.from_node != zc:
            scene_source = link.from_socket
    if scene_source is None and not a_img.is_linked:
        scene_source = layers.outputs["Image"]
    links = tree.links
    if scene_source is not None:
        links.new(scene_source, a_img)
    links.new(layers.outputs["Depth"], a_depth)
    links.new(avatar.outputs["Image"], b_img)
    links.new(depth.outputs["Image"], b_depth)
    links.new(out_img, output_socket)
    output_node.location = (200, 100)
    return {ROLE_LAYERS: layers, ROLE_AVATAR: avatar, ROLE_DEPTH: depth, ROLE_ZCOMBINE: zc}


def show_in_camera(camera_object, folder: str, stem: str, start: int, end: int):
    """The baked frames as the camera's background image sequence (an instant preview in camera view)."""
    data = camera_object.data
    image = sequence_image(os.path.join(folder, f"{stem}_{start:04d}.png"), "sRGB", AVATAR_ALPHA_MODE)  # shared
    bg = next((b for b in data.background_images if b.image is not None and b.image.name.startswith(PREFIX)), None)
    if bg is None:
        bg = data.background_images.new()
    bg.source = "IMAGE"
    bg.image = image
    _set_sequence(bg.image_user, start, end)
    bg.display_depth = "FRONT"
    bg.alpha = 1.0
    bg.frame_method = "FIT"
    data.show_background_images = True
    return bg

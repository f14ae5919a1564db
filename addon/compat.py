"""Every Blender 4.2-vs-5.0 API difference the add-on meets, in one place.

* compositor tree: 5.0 `scene.compositing_node_group` (a node group ending in a
  Group Output) vs 4.x `scene.node_tree` + `scene.use_nodes` (ending in a
  Composite node);
* sequencer strips: 5.0 `sequence_editor.strips` vs 4.x `.sequences`;
* F-curves: 5.0 layered actions keep them in a channelbag per slot vs 4.x
  `action.fcurves`;
* Z Combine: 5.0 "Use Alpha"/"Anti-Alias" are input sockets vs 4.x properties
  `use_alpha`/`use_antialias_z`; its sockets are named A/Depth A/B/Depth B in
  5.0 and Image/Z/Image/Z in 4.x (indices 0-3 in both);
* the extension's user folder: `bpy.utils.extension_path_user` (4.2+) with a
  fallback for add-ons loaded the legacy way (tests, symlinked checkouts).
"""

from __future__ import annotations

import os
import tempfile

import bpy

IS_5 = bpy.app.version >= (5, 0, 0)

COMPOSITOR_OUTPUT_SOCKET = "Image"


# -- user folder ------------------------------------------------------------------------------------------------

def user_folder(package: str) -> str:
    """A writable per-user folder for the extension (the default cache)."""
    try:
        return bpy.utils.extension_path_user(package, path="", create=True)
    except (ValueError, AttributeError, RuntimeError):
        # Not loaded as an extension (a legacy add-on path or a test): use Blender's user config area.
        base = bpy.utils.user_resource("CONFIG", path="emosplat", create=True) or os.path.join(
            tempfile.gettempdir(), "emosplat")
        os.makedirs(base, exist_ok=True)
        return base


# -- compositor -------------------------------------------------------------------------------------------------

def compositor_tree(scene: bpy.types.Scene, create: bool = True):
    """The scene's compositing node tree (created when missing and `create`), or None."""
    if IS_5:
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    if create and not scene.use_nodes:
        scene.use_nodes = True
    return scene.node_tree


def compositor_output(tree, create: bool = True):
    """(output node, its image input socket): Group Output in 5.0, Composite in 4.x."""
    if IS_5:
        if not any(item.item_type == "SOCKET" and item.in_out == "OUTPUT" and item.name == COMPOSITOR_OUTPUT_SOCKET
                   for item in tree.interface.items_tree):
            if not create:
                return None, None
            tree.interface.new_socket(COMPOSITOR_OUTPUT_SOCKET, in_out="OUTPUT", socket_type="NodeSocketColor")
        node = next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput" and n.is_active_output), None)
        node = node or next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"), None)
        if node is None:
            if not create:
                return None, None
            node = tree.nodes.new("NodeGroupOutput")
        return node, node.inputs[COMPOSITOR_OUTPUT_SOCKET]
    node = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    if node is None:
        if not create:
            return None, None
        node = tree.nodes.new("CompositorNodeComposite")
    return node, node.inputs[0]


def zcombine_set_options(node, use_alpha: bool, anti_alias: bool) -> None:
    if "Use Alpha" in node.inputs:
        node.inputs["Use Alpha"].default_value = use_alpha
        node.inputs["Anti-Alias"].default_value = anti_alias
    else:
        node.use_alpha = use_alpha
        node.use_antialias_z = anti_alias


def zcombine_sockets(node):
    """(image A, depth A, image B, depth B) inputs and (image, depth) outputs, by position in both APIs."""
    return tuple(node.inputs[i] for i in range(4)), (node.outputs[0], node.outputs[1])


# -- sequencer --------------------------------------------------------------------------------------------------

def strips(scene: bpy.types.Scene):
    """The top-level strips collection of the scene's sequence editor (created when missing)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences


# -- animation --------------------------------------------------------------------------------------------------

def fcurves(id_data) -> list:
    """All F-curves animating `id_data` (an Object, ...), whatever the action layout."""
    anim = getattr(id_data, "animation_data", None)
    action = anim.action if anim else None
    if action is None:
        return []
    if hasattr(action, "layers") and getattr(anim, "action_slot", None) is not None:
        from bpy_extras import anim_utils

        channelbag = anim_utils.action_get_channelbag_for_slot(action, anim.action_slot)
        return list(channelbag.fcurves) if channelbag is not None else []
    return list(getattr(action, "fcurves", []))


def find_fcurve(id_data, data_path: str, index: int = 0):
    return next((fc for fc in fcurves(id_data) if fc.data_path == data_path and fc.array_index == index), None)

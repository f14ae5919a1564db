"""Put the skin and its features together into one mesh, remembering which vertices are which."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emo_backend.head.open_head import features as ft
from emo_backend.head.open_head.geometry import Skin, build_skin
from emo_backend.head.open_head.meshparts import MeshParts


@dataclass
class Assembly:
    vertices: np.ndarray            # [V, 3] float64
    faces: np.ndarray               # [F, 3] int64
    vertex_part: np.ndarray         # [V] index into part_names
    face_part: np.ndarray           # [F]
    part_names: list[str]
    skin: Skin                      # skin ids are global (the skin comes first)
    mouth_loop: np.ndarray          # [n] ids around the mouth slit
    mouth_loop_side: np.ndarray     # [n] +1 upper lip, -1 lower lip, 0 corners
    mouth_rings: list[np.ndarray]   # ids of each cavity ring, same order as the loop, then the tip
    eye_loops: dict[str, np.ndarray] = field(default_factory=dict)
    eye_loop_side: dict[str, np.ndarray] = field(default_factory=dict)
    eye_rings: dict[str, list[np.ndarray]] = field(default_factory=dict)
    teeth_boxes: dict[str, np.ndarray] = field(default_factory=dict)  # "upper"/"lower" -> [14, 8] ids

    def part_vertices(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.vertex_part == self.part_names.index(name))

    def part_faces(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.face_part == self.part_names.index(name))


def _orient_like_neighbour(bag_faces: np.ndarray, skin_faces: np.ndarray, a: int, b: int) -> np.ndarray:
    """Flip a bag's faces if it traverses the shared slit edge (a, b) the same way as the skin does."""

    def direction(faces: np.ndarray) -> int:
        for f in faces:
            for k in range(3):
                u, v = f[k], f[(k + 1) % 3]
                if (u, v) == (a, b):
                    return 1
                if (u, v) == (b, a):
                    return -1
        raise ValueError("slit edge not found")

    return bag_faces if direction(bag_faces) != direction(skin_faces) else bag_faces[:, ::-1]


def assemble() -> Assembly:
    skin = build_skin()
    parts = MeshParts()
    parts.add("skin", skin.vertices, skin.faces)

    # Mouth cavity hanging from the lip slit.
    row, (c_r, c_l) = skin.mouth_row, skin.mouth_cols
    upper = skin.grid[row, c_r + 1 : c_l]
    loop = np.concatenate([[skin.grid[row, c_r]], upper, [skin.grid[row, c_l]], skin.mouth_lower[::-1]])
    loop_side = np.concatenate([[0], np.ones(len(upper), int), [0], -np.ones(len(upper), int)])
    rings, tip = ft.mouth_rings(skin.vertices[loop], loop_side)
    verts, faces = ft.bag(skin.vertices[loop], rings, tip, loop, parts.count)
    faces = _orient_like_neighbour(faces, skin.faces, int(loop[0]), int(loop[1]))
    ids = parts.add("mouth_cavity", verts, np.zeros((0, 3)))
    parts.add_faces("mouth_cavity", faces)
    n = len(loop)
    mouth_rings = [ids[k * n : (k + 1) * n] for k in range(len(rings))] + [ids[-1:]]

    # Eye-socket linings hanging from the lid slits.
    eye_loops, eye_sides, eye_rings = {}, {}, {}
    for side in ("left", "right"):
        inner, outer = skin.eye_cols[side]
        step = 1 if outer > inner else -1
        up = skin.grid[skin.eye_row, inner + step : outer : step]
        lo = skin.eye_lower[side]
        e_loop = np.concatenate([[skin.grid[skin.eye_row, inner]], up, [skin.grid[skin.eye_row, outer]], lo[::-1]])
        e_side = np.concatenate([[0], np.ones(len(up), int), [0], -np.ones(len(lo), int)])
        rings_e, tip_e = ft.eye_socket_rings(skin.vertices[e_loop], side)
        verts, faces = ft.bag(skin.vertices[e_loop], rings_e, tip_e, e_loop, parts.count)
        faces = _orient_like_neighbour(faces, skin.faces, int(e_loop[0]), int(e_loop[1]))
        ids = parts.add(f"{side}_eye_socket", verts, np.zeros((0, 3)))
        parts.add_faces(f"{side}_eye_socket", faces)
        n = len(e_loop)
        eye_loops[side], eye_sides[side] = e_loop, e_side
        eye_rings[side] = [ids[k * n : (k + 1) * n] for k in range(len(rings_e))] + [ids[-1:]]

    for side in ("left", "right"):
        parts.add(f"{side}_eyeball", *ft.eyeball(side))
    teeth_boxes = {}
    for name, is_upper in (("upper", True), ("lower", False)):
        ids = parts.add(f"{name}_teeth", *ft.teeth_row(is_upper))
        teeth_boxes[name] = ids.reshape(-1, ft.TOOTH_VERTS)
    parts.add("tongue", *ft.tongue())
    for side in ("left", "right"):
        parts.add(f"{side}_ear", *ft.ear(side))

    v, f, vp, fp = parts.arrays()
    return Assembly(
        vertices=v, faces=f, vertex_part=vp, face_part=fp, part_names=list(parts.part_names), skin=skin,
        mouth_loop=loop, mouth_loop_side=loop_side, mouth_rings=mouth_rings,
        eye_loops=eye_loops, eye_loop_side=eye_sides, eye_rings=eye_rings, teeth_boxes=teeth_boxes,
    )

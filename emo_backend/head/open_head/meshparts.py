"""A mesh under construction: parts appended one by one, each remembered by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MeshParts:
    vertices: list[np.ndarray] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)
    vertex_part: list[np.ndarray] = field(default_factory=list)
    face_part: list[np.ndarray] = field(default_factory=list)
    part_names: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, name: str, verts: np.ndarray, faces: np.ndarray, local_faces: bool = True) -> np.ndarray:
        """Append vertices [n, 3] and faces [f, 3] (indices local to `verts` unless local_faces=False).

        Returns the global ids of the new vertices.
        """
        if name not in self.part_names:
            self.part_names.append(name)
        pid = self.part_names.index(name)
        base = self.count
        ids = np.arange(base, base + len(verts))
        self.vertices.append(np.asarray(verts, dtype=np.float64).reshape(-1, 3))
        f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        self.faces.append(f + base if local_faces else f)
        self.vertex_part.append(np.full(len(verts), pid))
        self.face_part.append(np.full(len(f), pid))
        self.count += len(verts)
        return ids

    def add_faces(self, name: str, faces: np.ndarray) -> None:
        """Faces over existing (global) vertex ids, e.g. a bag stitched to a slit."""
        if name not in self.part_names:
            self.part_names.append(name)
        pid = self.part_names.index(name)
        f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        self.faces.append(f)
        self.face_part.append(np.full(len(f), pid))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.concatenate(self.vertices),
            np.concatenate(self.faces),
            np.concatenate(self.vertex_part),
            np.concatenate(self.face_part),
        )


def grid_faces(rows: np.ndarray, periodic: bool) -> np.ndarray:
    """Triangles of a vertex-id grid [R, C] (row-major, rows going down, columns going +X)."""
    r, c = rows.shape
    cols = c if periodic else c - 1
    tris = []
    for i in range(r - 1):
        for j in range(cols):
            a, b = rows[i, j], rows[i, (j + 1) % c]
            d, e = rows[i + 1, j], rows[i + 1, (j + 1) % c]
            tris.append((a, d, b))
            tris.append((b, d, e))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def uv_sphere(
    polar: np.ndarray,     # [K] ring angles from the +axis pole, exclusive of both poles
    segments: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere around +Z with rings at `polar` angles -> (verts [2 + K*S, 3], faces). Vertex 0 is the +Z pole."""
    az = 2 * np.pi * np.arange(segments) / segments
    sp, cp = np.sin(polar)[:, None], np.cos(polar)[:, None]
    ring = np.stack([sp * np.cos(az)[None], sp * np.sin(az)[None], np.broadcast_to(cp, (len(polar), segments))], -1)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring.reshape(-1, 3), [[0.0, 0.0, -1.0]]])
    ids = 1 + np.arange(len(polar) * segments).reshape(len(polar), segments)
    faces = [grid_faces(ids, periodic=True)]
    top = [(0, ids[0, j], ids[0, (j + 1) % segments]) for j in range(segments)]
    last = len(verts) - 1
    bottom = [(last, ids[-1, (j + 1) % segments], ids[-1, j]) for j in range(segments)]
    faces = np.concatenate([np.asarray(top), faces[0], np.asarray(bottom)])
    return verts, faces

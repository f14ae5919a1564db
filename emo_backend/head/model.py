"""The head model interface: FLAME's structure, whatever the source.

Both the FLAME loader and the open head model produce a `HeadModel`. Everything
downstream (LBS, avatar binding, landmarks, the synthetic actor) depends only
on this dataclass. Units are metres; avatar space is +Y up, +Z out of the face,
+X to the subject's left.

Pose is per joint, axis-angle, in the order of `JOINT_NAMES`: `pose[..., J, 3]`
with J = 5. Joint 0 is the root (global rotation of the head), FLAME's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

JOINT_NAMES: tuple[str, ...] = ("root", "neck", "jaw", "left_eye", "right_eye")
NUM_JOINTS = len(JOINT_NAMES)

# 68-point iBUG layout: jaw line 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
LANDMARK_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose": range(27, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "mouth": range(48, 68),
}


@dataclass(frozen=True)
class HeadModel:
    """A FLAME-structured head model. All tensors float32 on one device unless noted.

    Shapes: V vertices, F faces, S identity bases, E expression bases, J = 5
    joints, L landmarks.
    """

    model_id: str                      # e.g. "open-head-v1" or "flame2023"
    v_template: Tensor                 # [V, 3] neutral mean head
    faces: Tensor                      # [F, 3] int64, counter-clockwise seen from outside
    shapedirs: Tensor                  # [V, 3, S] identity bases
    exprdirs: Tensor                   # [V, 3, E] expression bases
    expr_names: tuple[str, ...]        # E names (FACS AUs for the open head, "exp000".. for FLAME)
    j_regressor: Tensor                # [J, V] joints from the shaped mesh
    parents: Tensor                    # [J] int64, parents[0] == -1
    lbs_weights: Tensor                # [V, J] rows sum to 1
    landmark_faces: Tensor             # [L] int64 face ids (68-point layout)
    landmark_bary: Tensor              # [L, 3] barycentric coordinates in those faces
    regions: dict[str, Tensor] = field(default_factory=dict)  # name -> [Fr] int64 face ids
    posedirs: Tensor | None = None     # [9 * (J - 1), V * 3] pose correctives, or None
    vertex_colors: Tensor | None = None  # [V, 3] procedural albedo in [0, 1], or None

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.exprdirs.shape[-1])

    @property
    def num_identities(self) -> int:
        return int(self.shapedirs.shape[-1])

    def to(self, device: torch.device | str) -> "HeadModel":
        def move(x):
            return x.to(device) if isinstance(x, Tensor) else x

        return HeadModel(
            model_id=self.model_id,
            v_template=move(self.v_template),
            faces=move(self.faces),
            shapedirs=move(self.shapedirs),
            exprdirs=move(self.exprdirs),
            expr_names=self.expr_names,
            j_regressor=move(self.j_regressor),
            parents=move(self.parents),
            lbs_weights=move(self.lbs_weights),
            landmark_faces=move(self.landmark_faces),
            landmark_bary=move(self.landmark_bary),
            regions={k: move(v) for k, v in self.regions.items()},
            posedirs=move(self.posedirs),
            vertex_colors=move(self.vertex_colors),
        )

    def region_faces(self, name: str) -> Tensor:
        """Face ids of a named region ("lips", "mouth_interior", "left_eyeball", ...)."""
        try:
            return self.regions[name]
        except KeyError:
            raise KeyError(f"head model {self.model_id!r} has no region {name!r}; has {sorted(self.regions)}") from None

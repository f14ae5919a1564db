"""EGD: the emotional Gaussian deformation of stage 2.

Each Gaussian asks a question (its query) of the frame's context and gets back
a residual for its rotation, scale, colour and opacity:

    query  = MLP[ f(ΔM at its triangle) ‖ PE(canonical position) ‖ PE(blink) ‖ camera code ]
    tokens = [ audio window (T tokens) ‖ emotion ‖ intensity ‖ null ]
    layers of  q += CrossAttn(q, tokens);  q += FFN(q)
    heads  -> Δrotation (quaternion, applied in the Gaussian's local frame), Δlog-scale, Δcolour, Δopacity-logit

ΔM = M_emo − M_neu is what the keyed emotion changes in the mesh; the audio and
emotion tokens let the network add what a linear blendshape cannot (wrinkles,
shading, lip and teeth appearance). The learned null token lets a Gaussian
attend to nothing, so Gaussians the emotion does not touch stay put. The heads
start at zero: an untrained EGD leaves stage 1's output unchanged.

Δposition is our addition to the paper's four heads: the emotional geometry a
linear blendshape cannot express (a cheek bulging under a strong smile, lips
rolling in) needs the means to move, not only to turn and fade. It is
predicted in avatar space (millimetres) and turned with the head by the
caller (`emo_backend.motion.pipeline`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emo_backend.avatar.gaussians import Gaussians
from emo_backend.avatar.rotations import quat_multiply as quaternion_multiply  # noqa: F401  (re-exported)
from emo_backend.motion.encodings import EmotionEncoder, sinusoidal


@dataclass(frozen=True)
class EGDConfig:
    audio_dim: int
    dim: int = 16
    num_layers: int = 2
    num_heads: int = 2
    position_freqs: int = 4
    blink_freqs: int = 3
    num_cameras: int = 1
    head_scale: float = 10.0  # canonical positions are metres; ×10 puts a head in about [-1.5, 1.5]

    def to_dict(self) -> dict:
        return asdict(self)


class Residual(NamedTuple):
    rotation: Tensor   # [B, N, 4] quaternion delta (wxyz, added to identity)
    log_scale: Tensor  # [B, N, 3]
    color: Tensor      # [B, N, 3]
    opacity: Tensor    # [B, N] logit delta
    position: Tensor   # [B, N, 3] metres, avatar space (before posing)


def delta_mesh_features(
    delta_vertices: Tensor,  # [B, V, 3] M_emo - M_neu
    faces: Tensor,           # [F, 3]
    face_ids: Tensor,        # [N] the triangle each Gaussian is bound to
    bary: Tensor,            # [N, 3]
) -> Tensor:
    """ΔM at each Gaussian's triangle: its three corners and the barycentric point. -> [B, N, 12]"""
    corners = delta_vertices[:, faces[face_ids]]  # [B, N, 3, 3]
    at_point = (corners * bary[None, :, :, None]).sum(-2)
    return torch.cat([corners.flatten(-2), at_point], -1)


class _CrossBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, query: Tensor, tokens: Tensor) -> Tensor:
        """query [B, N, d], tokens [B, T, d] -> [B, N, d]"""
        b, n, d = query.shape
        t = tokens.shape[1]
        h = self.heads
        q = self.q(self.norm_q(query)).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(self.norm_kv(tokens)).view(b, t, 2, h, d // h).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        query = query + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return query + self.ff(self.norm_ff(query))


class EGD(nn.Module):
    def __init__(self, cfg: EGDConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        query_in = 12 + 3 * 2 * cfg.position_freqs + 1 + 2 * cfg.blink_freqs + d
        self.camera = nn.Embedding(cfg.num_cameras, d)
        self.query = nn.Sequential(nn.Linear(query_in, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.audio = nn.Linear(cfg.audio_dim, d)
        self.audio_time = nn.Parameter(torch.zeros(64, d))  # learned offset per audio-window slot
        self.emotion = EmotionEncoder(d)
        self.null = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(_CrossBlock(d, cfg.num_heads) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 4 + 3 + 3 + 1 + 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        delta_features: Tensor,      # [B, N, 12] from delta_mesh_features
        canonical_means: Tensor,     # [N, 3] neutral Gaussian positions (avatar space, metres)
        blink: Tensor,               # [B] AU45 in [0, 1]
        audio_window: Tensor,        # [B, T, Da] audio features around the frame (T <= 64)
        weights: Tensor,             # [B, 8]
        intensity: Tensor,           # [B]
        camera: Tensor | None = None,  # [B] int camera index (0 when rendering new views)
    ) -> Residual:
        b, n = delta_features.shape[:2]
        cfg = self.cfg
        if camera is None:
            camera = torch.zeros(b, dtype=torch.long, device=delta_features.device)
        position = sinusoidal(canonical_means * cfg.head_scale, cfg.position_freqs)  # [N, 6L]
        blink_code = torch.cat([blink[:, None], sinusoidal(blink[:, None], cfg.blink_freqs)], -1)  # [B, 1 + 2L]
        query = torch.cat(
            [
                delta_features * cfg.head_scale * 10,  # millimetre-scale offsets into O(1)
                position[None].expand(b, -1, -1),
                blink_code[:, None].expand(-1, n, -1),
                self.camera(camera)[:, None].expand(-1, n, -1),
            ],
            -1,
        )
        q = self.query(query)
        t = audio_window.shape[1]
        audio_tokens = self.audio(audio_window) + self.audio_time[:t]
        emotion_token, intensity_token = self.emotion(weights, intensity)
        tokens = torch.cat(
            [audio_tokens, emotion_token[:, None], intensity_token[:, None], self.null.expand(b, -1, -1)], 1
        )
        for block in self.blocks:
            q = block(q, tokens)
        out = self.head(self.norm(q))
        return Residual(out[..., :4], out[..., 4:7], out[..., 7:10], out[..., 10], out[..., 11:14] * 1e-3)


def apply_residual(gaussians: Gaussians, residual: Residual, position_rotation: Tensor | None = None) -> Gaussians:
    """Add EGD's residual to (posed) Gaussians [B, N]. The rotation acts in each Gaussian's own frame, so it
    does not depend on the head pose; the position delta is turned by `position_rotation` [B, N, 3, 3] (each
    Gaussian's skinning rotation) when given."""
    offset = residual.position
    if position_rotation is not None:
        # R @ v as fused multiply-adds: batched 3x3 matmuls are slow on the CPU
        r, v = position_rotation, offset
        offset = torch.addcmul(torch.addcmul(r[..., 0] * v[..., 0:1], r[..., 1], v[..., 1:2]), r[..., 2], v[..., 2:3])
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=residual.rotation.dtype, device=residual.rotation.device)
    delta = residual.rotation + identity
    unit = F.normalize(gaussians.quats, dim=-1)
    return Gaussians(
        means=gaussians.means + offset,
        quats=quaternion_multiply(unit, delta),
        log_scales=gaussians.log_scales + residual.log_scale,
        opacity_logits=gaussians.opacity_logits + residual.opacity,
        colors=gaussians.colors + residual.color,
    )

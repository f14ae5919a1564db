"""LPIPS (Zhang et al. 2018, VGG variant) from weights on a local path; nothing is downloaded.

LPIPS needs two sets of trained weights, neither of which this project ships:

* the VGG-16 backbone: a torchvision-layout state dict (`features.0.weight` ...),
  as `.safetensors` or a torch `.pth` (read with `weights_only=True`);
* the LPIPS linear heads (`lin0.model.1.weight` ... `lin4.model.1.weight`,
  shapes [1, C, 1, 1]) from the `lpips` package's `weights/v0.1/vgg.pth`.

Without them the perceptual term is simply not used (training) and reported as
skipped (evaluation). The network is plain torch, so no torchvision is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from emo_backend.errors import InvalidFileError

# torchvision's vgg16 "D" configuration: conv widths, "M" = 2×2 max pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Indices in `features` after which LPIPS taps activations: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_TAPS = (3, 8, 15, 22, 29)
_TAP_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's input scaling layer (inputs in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = item
    return nn.Sequential(*layers)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise InvalidFileError(f"LPIPS weights {path} not found; give the path of an existing weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or foreign file: say which
        raise InvalidFileError(f"cannot read LPIPS weights {path}: {err}") from None
    if not isinstance(state, dict):
        raise InvalidFileError(f"LPIPS weights {path} are not a state dict of tensors")
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


class LPIPS(nn.Module):
    """d(x, y) = Σ_l mean_hw(w_l · (x̂_l − ŷ_l)²), x̂_l the channel-normalised VGG activations at tap l."""

    def __init__(self, backbone: dict[str, Tensor], heads: dict[str, Tensor], source: str = "LPIPS weights"):
        super().__init__()
        self.features = _vgg16_features()
        own = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        missing = [k for k in own if k not in backbone]
        if missing:
            raise InvalidFileError(f"{source}: VGG-16 backbone lacks {missing[:3]}...; expected torchvision's vgg16 keys")
        for key, ref in own.items():
            if backbone[key].shape != ref.shape:
                raise InvalidFileError(f"{source}: {key} has shape {tuple(backbone[key].shape)}, expected {tuple(ref.shape)}")
        self.features.load_state_dict({k[len("features."):]: backbone[k].float() for k in own})
        lins = []
        for i, ch in enumerate(_TAP_CHANNELS):
            key = f"lin{i}.model.1.weight"
            w = heads.get(key)
            if w is None or tuple(w.shape) != (1, ch, 1, 1):
                raise InvalidFileError(f"{source}: LPIPS head {key} missing or not of shape (1, {ch}, 1, 1)")
            lins.append(w.float().reshape(ch))
        self.register_buffer("lin_weights", torch.cat(lins))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, pred: Tensor, gt: Tensor) -> Tensor:
        """pred, gt [..., H, W, 3] in [0, 1] -> distance per image [...]."""
        lead = pred.shape[:-3]
        x = pred.reshape(-1, *pred.shape[-3:]).permute(0, 3, 1, 2) * 2 - 1
        y = gt.reshape(-1, *gt.shape[-3:]).permute(0, 3, 1, 2) * 2 - 1
        h = torch.cat([x, y]).to(self.shift)
        h = (h - self.shift) / self.scale
        total = torch.zeros(x.shape[0], device=h.device, dtype=h.dtype)
        start = 0
        tap_iter = iter(zip(_TAPS, _TAP_CHANNELS))
        tap, ch = next(tap_iter)
        for idx, layer in enumerate(self.features):
            h = layer(h)
            if idx == tap:
                f = h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                fx, fy = f[: x.shape[0]], f[x.shape[0]:]
                w = self.lin_weights[start : start + ch].view(1, ch, 1, 1)
                total = total + ((fx - fy) ** 2 * w).sum(1).mean((1, 2))
                start += ch
                nxt = next(tap_iter, None)
                if nxt is None:
                    break
                tap, ch = nxt
        return total.reshape(lead)


def load_lpips(backbone_path: str | os.PathLike, heads_path: str | os.PathLike) -> LPIPS:
    """LPIPS from a VGG-16 backbone file and the LPIPS linear heads file (both local)."""
    backbone_path, heads_path = Path(backbone_path), Path(heads_path)
    return LPIPS(_read_state_dict(backbone_path), _read_state_dict(heads_path), source=f"{backbone_path} / {heads_path}")

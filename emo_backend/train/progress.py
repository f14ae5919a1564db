"""A tqdm progress bar for training loops: step count, smoothed loss and PSNR, Gaussian count."""

from __future__ import annotations

import math


class TrainingProgress:
    """`update(step, loss, psnr=None, gaussians=None)` once per iteration; `close()` at the end.

    The loss shown is an exponential moving average (weight 0.4 on the newest
    value, as 3DGS's bar) so the number is readable while single frames jump.
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "train", disable: bool | None = None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True, disable=disable)
        self.ema_loss: float | None = None
        self.ema_psnr: float | None = None

    @staticmethod
    def _ema(old: float | None, new: float) -> float:
        return new if old is None or not math.isfinite(old) else 0.4 * new + 0.6 * old

    def update(self, step: int, loss: float, psnr: float | None = None, gaussians: int | None = None) -> None:
        self.ema_loss = self._ema(self.ema_loss, float(loss))
        postfix = {"loss": f"{self.ema_loss:.4f}"}
        if psnr is not None:
            self.ema_psnr = self._ema(self.ema_psnr, float(psnr))
            postfix["psnr"] = f"{self.ema_psnr:.2f}"
        if gaussians is not None:
            postfix["N"] = str(gaussians)
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(max(0, step - self.bar.n))

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

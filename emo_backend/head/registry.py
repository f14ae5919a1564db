"""Head models by id: which head a dataset, avatar or A2ET was made for, and building it when EmoSplat can."""

from __future__ import annotations

from emo_backend.errors import EmoSplatError
from emo_backend.head.model import HeadModel


def can_build(model_id: str) -> bool:
    from emo_backend.head.open_head.build import MODEL_ID

    return model_id == MODEL_ID or model_id.startswith(MODEL_ID + "+s")


def build_head(model_id: str, what: str = "this data") -> HeadModel:
    """The head model of `model_id` when EmoSplat can build it by itself (the open head and its seeds).

    FLAME-based ids cannot be built (FLAME is not shipped): the error says to
    bring an avatar bundle, which carries its head.
    """
    from emo_backend.head.open_head.build import build_open_head

    if can_build(model_id):
        seed = int(model_id.split("+s", 1)[1]) if "+s" in model_id else 0
        return build_open_head(seed=seed)
    raise EmoSplatError(
        f"{what} uses head model {model_id!r}, which EmoSplat cannot build by itself; "
        "give an avatar bundle built on that head (it carries the head model)"
    )

"""Names of the open head model's expression bases (FACS action units).

One basis per action unit; units that one side of the face can make alone
(contempt's unilateral AU12 and AU14, a wink's AU45) come as L/R pairs, where
L is the subject's left (+X in avatar space). AU26/27 (jaw drop, mouth stretch)
are not bases: they are the jaw joint's rotation. AU43 (eyes closed) shares
AU45's shape; a held blink is just AU45 held at 1.

A2ET, the synthetic actor and the emotion recipes all index expression
coefficients through this tuple, so its order is part of the avatar format.
"""

from __future__ import annotations

ACTION_UNITS: tuple[str, ...] = (
    "AU1L", "AU1R",    # inner brow raiser
    "AU2L", "AU2R",    # outer brow raiser
    "AU4",             # brow lowerer
    "AU5L", "AU5R",    # upper lid raiser
    "AU6L", "AU6R",    # cheek raiser
    "AU7L", "AU7R",    # lid tightener
    "AU9",             # nose wrinkler
    "AU10",            # upper lip raiser
    "AU12L", "AU12R",  # lip corner puller
    "AU14L", "AU14R",  # dimpler
    "AU15L", "AU15R",  # lip corner depressor
    "AU16",            # lower lip depressor
    "AU17",            # chin raiser
    "AU18",            # lip pucker
    "AU20L", "AU20R",  # lip stretcher
    "AU22",            # lip funneler
    "AU23",            # lip tightener
    "AU24",            # lip pressor
    "AU25",            # lips part
    "AU45L", "AU45R",  # blink / eyes closed (AU43)
)

AU_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTION_UNITS)}


def au_indices(name: str) -> list[int]:
    """Indices of an action unit by its FACS number ("AU12" -> both sides, "AU12L" -> left only)."""
    if name in AU_INDEX:
        return [AU_INDEX[name]]
    sides = [AU_INDEX[n] for n in (name + "L", name + "R") if n in AU_INDEX]
    if not sides:
        raise KeyError(f"unknown action unit {name!r}; known: {', '.join(ACTION_UNITS)}")
    return sides

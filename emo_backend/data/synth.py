"""The synthetic actor's corpus plan: which clips to render (rendering itself lives elsewhere).

`plan_corpus` is pure: the same arguments always give the same list of
`ClipSpec`s. The design follows MEAD: seven emotions at three intensities plus
neutral (neutral has no intensity scale, so it is planned once, at intensity
0), several sentences per condition, and sentences balanced across conditions
so that emotion cannot be told from what is said. Held-out sentences go only
to the test split; a second identity (another head shape and voice) appears in
both splits with fewer training clips, to test generalisation across identity.

espeak-ng has no emotional prosody, so emotion and intensity nudge the speech
rate and pitch the way acted emotion tends to (anger and fear faster and
higher, sadness slower and lower); the face carries the emotion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emo_backend.data.schema import EMOTIONS

# Written for this project: varied content, phonetically diverse (bilabials, rounded and open vowels,
# fricatives, affricates, clusters), 5 to 14 words each.
SENTENCES: tuple[str, ...] = (
    "Bring the blue map back before the meeting begins.",
    "My brother bakes warm bread every Monday morning.",
    "The puppy pushed a paper boat across the puddle.",
    "Who knew the moon would look so huge tonight?",
    "Please put the purple books on the bottom shelf.",
    "We walked along the wet beach until it was dark.",
    "Oh no, the cocoa spilled all over the new sofa.",
    "She chose a cheap watch with a shiny chain.",
    "Judge the juice by its colour, not by its jar.",
    "Five violins were playing softly in the valley.",
    "Thank them for the thick wool scarf they gave us.",
    "This is the other path that leads to the river.",
    "A quiet fox sat under the old oak tree.",
    "Could you open the window a little wider, please?",
    "The garden gate creaked when the wind picked up.",
    "Our hour of rest came far too late.",
    "Few people knew how the tune was written.",
    "The lazy cat yawned and stretched in the sun.",
    "Measure the beige fabric twice before you cut it.",
    "Vivid yellow flowers grew beside the stone wall.",
    "I thought the train would leave at half past eight.",
    "Bob bought a bag of apples and a box of plums.",
    "Every autumn the leaves turn orange and red.",
    "The judge ordered the jury to ignore that remark.",
    "Run to the shop and buy some milk and honey.",
    "Why would anyone hide a key under a mat?",
    "Smooth pebbles rolled down to the edge of the pool.",
    "Twelve ships sailed north through the frozen strait.",
    "He whispered the answer so nobody else could hear.",
    "Mix the flour, the sugar and the butter in a bowl.",
    "The clock on the tower struck nine times.",
    "Ask the pilot whether the flight will be delayed.",
    "A big brown bear wandered out of the woods.",
    "Keep your voice down, the baby is sleeping.",
    "Thirty thousand fans cheered as the team came out.",
    "Our neighbour grows tomatoes and beans on the roof.",
    "Move the blue chair closer to the fire.",
    "The map shows a path over the mountain pass.",
    "Good food and good friends make a fine evening.",
    "The water was cool, clear and perfectly calm.",
    "Pack the camera, the tripod and two spare batteries.",
    "She owes me a few pounds from last week.",
    "Fresh fish is sold at the harbour every dawn.",
    "The road was blocked by a fallen pine tree.",
    "Would you rather walk or wait for the bus?",
    "An ambulance rushed past with its siren wailing.",
    "Those boots are far too big for my feet.",
    "Paint the fence white before the summer ends.",
    "I can hardly believe how much the town has changed.",
    "Maybe the postman left the parcel next door.",
    # held out (test split only) from here
    "Bubbles floated up from the bottom of the bath.",
    "The choir sang a joyful song at the wedding.",
    "Move the boxes by the window over to the wall.",
    "We should have booked the tickets much earlier.",
    "A thin layer of frost covered the windscreen.",
    "Mum found her purse under the pile of papers.",
    "Which way is the museum from the bridge?",
    "The old violin sounded better than the new one.",
    "Lemon tea with honey soothes a sore throat.",
    "Nobody expected the storm to pass so quickly.",
)
NUM_HELDOUT = 10
TRAIN_SENTENCES = SENTENCES[:-NUM_HELDOUT]
HELDOUT_SENTENCES = SENTENCES[-NUM_HELDOUT:]

INTENSITIES: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)

# Per emotion at full intensity: (rate multiplier, pitch offset on espeak's 0-100 scale).
PROSODY: dict[str, tuple[float, int]] = {
    "neutral": (1.00, 0), "angry": (1.12, 8), "contempt": (0.94, -4), "disgusted": (0.90, -6),
    "fear": (1.15, 12), "happy": (1.08, 10), "sad": (0.82, -10), "surprised": (1.05, 16),
}


@dataclass(frozen=True)
class Identity:
    name: str
    seed: int            # drives the head shape / appearance of the synthetic actor
    voice: str           # espeak-ng voice
    rate_wpm: int        # base speaking rate
    pitch: int           # base pitch, 0-100


DEFAULT_IDENTITIES: tuple[Identity, ...] = (
    Identity("synth_a", seed=1, voice="en-us", rate_wpm=165, pitch=45),
    Identity("synth_b", seed=2, voice="en-us+f3", rate_wpm=155, pitch=55),
)


@dataclass(frozen=True)
class ClipSpec:
    clip_id: str
    sentence: str
    sentence_index: int  # index into SENTENCES
    voice: str
    rate_wpm: int
    pitch: int
    emotion: str
    intensity: float
    identity: str
    identity_seed: int
    split: str           # "train" or "test"


def conditions() -> list[tuple[str, float]]:
    """Neutral once plus every other emotion at the three intensities: 22 conditions."""
    return [("neutral", 0.0)] + [(e, i) for e in EMOTIONS if e != "neutral" for i in INTENSITIES]


def prosody(identity: Identity, emotion: str, intensity: float, jitter: float = 0.0) -> tuple[int, int]:
    """(rate wpm, pitch) for an identity speaking with an emotion; `jitter` in [-1, 1] varies takes."""
    rate_mul, pitch_offset = PROSODY[emotion]
    rate = identity.rate_wpm * (1.0 + (rate_mul - 1.0) * intensity) * (1.0 + 0.04 * jitter)
    pitch = identity.pitch + pitch_offset * intensity + 3.0 * jitter
    return int(round(np.clip(rate, 80, 450))), int(round(np.clip(pitch, 0, 100)))


def plan_corpus(
    *,
    identities: tuple[Identity, ...] = DEFAULT_IDENTITIES,
    train_clips_per_condition: tuple[int, ...] = (4, 1),
    test_clips_per_condition: int = 1,
    train_sentences: tuple[str, ...] = TRAIN_SENTENCES,
    heldout_sentences: tuple[str, ...] = HELDOUT_SENTENCES,
    seed: int = 0,
) -> list[ClipSpec]:
    """Every clip of the synthetic corpus.

    `train_clips_per_condition[k]` training clips per condition for identity k
    (the main identity gets most); every identity gets `test_clips_per_condition`
    held-out-sentence clips per condition. Sentences are dealt round-robin from a
    seeded shuffle, so each sentence is spoken under many different conditions.
    """
    if len(train_clips_per_condition) != len(identities):
        raise ValueError("give one train_clips_per_condition entry per identity")
    if set(train_sentences) & set(heldout_sentences):
        raise ValueError("held-out sentences must not appear among the training sentences")
    if not train_sentences or not heldout_sentences:
        raise ValueError("need training and held-out sentences")
    index_of = {s: i for i, s in enumerate(SENTENCES)}
    rng = np.random.default_rng(seed)
    specs: list[ClipSpec] = []
    for identity, n_train in zip(identities, train_clips_per_condition):
        decks = {"train": list(rng.permutation(len(train_sentences))),
                 "test": list(rng.permutation(len(heldout_sentences)))}
        pools = {"train": train_sentences, "test": heldout_sentences}
        dealt = {"train": 0, "test": 0}
        for emotion, intensity in conditions():
            for split, count in (("train", n_train), ("test", test_clips_per_condition)):
                for take in range(count):
                    deck = decks[split]
                    sentence = pools[split][deck[dealt[split] % len(deck)]]
                    dealt[split] += 1
                    rate, pitch = prosody(identity, emotion, intensity, jitter=float(rng.uniform(-1, 1)))
                    level = "l0" if emotion == "neutral" else f"l{round(intensity * 3)}"
                    specs.append(ClipSpec(
                        clip_id=f"{identity.name}_{emotion}_{level}_{split}{take:02d}",
                        sentence=sentence, sentence_index=index_of.get(sentence, -1),
                        voice=identity.voice, rate_wpm=rate, pitch=pitch, emotion=emotion,
                        intensity=float(intensity), identity=identity.name, identity_seed=identity.seed,
                        split=split,
                    ))
    return specs


@dataclass(frozen=True)
class SpeechTrack:
    """One clip's speech and the mouth motion that goes with it."""

    samples: np.ndarray      # [N] int16 mono
    sample_rate: int
    phonemes: list           # [Phoneme] espeak mnemonics with start/end seconds
    expression: np.ndarray   # [F, len(ACTION_UNITS)] mouth AUs (other AUs 0: emotion is added on top)
    jaw: np.ndarray          # [F] jaw opening, radians
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.jaw.shape[0])


def speech_track(spec: ClipSpec, fps: float, tail_s: float = 0.2) -> SpeechTrack:
    """Synthesize a planned clip with espeak-ng and derive its per-frame mouth curves.

    The clip lasts the audio plus `tail_s` of silence (padded into the audio too),
    so the mouth can settle before the last frame.
    """
    from emo_backend.data.speech.espeak import synthesize
    from emo_backend.data.speech.visemes import viseme_curves

    samples, rate, phonemes = synthesize(spec.sentence, voice=spec.voice, rate_wpm=spec.rate_wpm, pitch=spec.pitch)
    num_frames = int(np.ceil((len(samples) / rate + tail_s) * fps))
    samples = np.concatenate([samples, np.zeros(int(np.ceil(num_frames / fps * rate)) - len(samples), np.int16)])
    expression, jaw = viseme_curves(phonemes, fps, num_frames)
    return SpeechTrack(samples, rate, phonemes, expression, jaw, fps)

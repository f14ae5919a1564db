"""The synthetic actor's performance of one clip: speech + emotion + blinks + head and eye motion -> tracking.

Everything here is the *linear* ground truth that goes into the clip's
tracking file (expression coefficients over ACTION_UNITS, joint poses,
translation). What a linear blendshape cannot express (wrinkles, flush,
corrective shapes) is added only when rendering (actor_effects.py) and is
never recorded.

Combination rule, per frame (documented in docs/synthetic-actor.md):

* speech mouth AUs are scaled by the emotion's articulation (sad speakers
  hypo-articulate, angry ones over-articulate) and ADDED to the emotion's
  EMFACS recipe, then clamped to [0, 1];
* the emotion's lip-parting (AU25) and jaw drop are gated by the bilabial
  closure weight, so /p b m/ seal the lips even in a surprised face;
* lip rounding in speech (AU18, AU22) damps the emotion's antagonist lip
  spreading (AU12, AU20) by up to half;
* jaw = soft union of the speech and emotion jaw openings,
  J * (1 - (1 - a/J)(1 - b/J)) with J = JAW_LIMIT_RAD: either alone passes
  through, together they saturate below J instead of summing;
* blinks (blink_curve) go to AU45L/R with the same value on both eyes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from emo_backend.data.synth import ClipSpec, SpeechTrack
from emo_backend.emotion.blink import blink_curve
from emo_backend.emotion.facs import emotion_to_expression
from emo_backend.emotion.space import EMOTIONS
from emo_backend.head.expressions import ACTION_UNITS, au_indices

JAW_LIMIT_RAD = 0.40

# Articulation (scale of the speech mouth motion) per emotion at intensity 1.
ARTICULATION: dict[str, float] = {
    "neutral": 1.0, "angry": 1.2, "contempt": 0.9, "disgusted": 0.9,
    "fear": 1.05, "happy": 1.1, "sad": 0.75, "surprised": 1.1,
}
# Head posture offset per emotion at intensity 1: neck (pitch, yaw, roll) radians; +pitch = chin down.
POSTURE: dict[str, tuple[float, float, float]] = {
    "neutral": (0.0, 0.0, 0.0), "angry": (0.05, 0.0, 0.0), "contempt": (-0.04, 0.03, 0.06),
    "disgusted": (0.02, -0.06, -0.03), "fear": (-0.03, 0.0, 0.0), "happy": (-0.03, 0.0, 0.03),
    "sad": (0.10, 0.0, 0.02), "surprised": (-0.06, 0.0, 0.0),
}
# Amount of idle head motion per emotion at intensity 1 (aroused emotions move more).
MOTION_ENERGY: dict[str, float] = {
    "neutral": 1.0, "angry": 1.4, "contempt": 0.9, "disgusted": 1.1,
    "fear": 1.3, "happy": 1.3, "sad": 0.6, "surprised": 1.3,
}


@dataclass(frozen=True)
class ActorMotion:
    """Amplitudes of the actor's natural motion (standard deviations unless said otherwise)."""

    neck_deg: tuple[float, float, float] = (2.0, 2.5, 1.2)   # pitch, yaw, roll
    root_deg: tuple[float, float, float] = (0.6, 0.8, 0.4)
    sway_m: float = 0.0015                                   # translation
    nod_rad: float = 0.03                                    # chin-down nod at full speech loudness
    gaze_deg: tuple[float, float] = (1.5, 2.5)               # pitch, yaw of the fixation targets
    drift_deg: float = 0.25                                  # fixational drift
    fixation_s: float = 0.9                                  # mean time between saccades
    saccade_s: float = 0.045
    expression_wobble: float = 0.06                          # slow relative fluctuation of the emotion amount


@dataclass
class ClipPerformance:
    """One clip's ground truth (float32): exactly what the tracking file holds, plus curves for tests."""

    expression: np.ndarray    # [F, E] linear coefficients over ACTION_UNITS
    pose: np.ndarray          # [F, 5, 3] axis-angle: root, neck, jaw, left_eye, right_eye
    translation: np.ndarray   # [F, 3] metres
    blink: np.ndarray         # [F, 2] AU45 left, right
    closure: np.ndarray       # [F] bilabial closure weight of the speech (not saved)
    emotion_amount: np.ndarray  # [F] the emotion's amount per frame (intensity x wobble; not saved)

    @property
    def num_frames(self) -> int:
        return int(self.expression.shape[0])

    @property
    def jaw(self) -> np.ndarray:  # [F] radians, opening
        return self.pose[:, 2, 0]


def clip_seed(seed: int, clip_id: str) -> int:
    """A per-clip random seed that depends only on the corpus seed and the clip id."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(clip_id.encode("utf-8"))]).generate_state(1)[0])


def smooth_noise(num_frames: int, fps: float, rng: np.random.Generator, dims: int, cutoff_hz: float) -> np.ndarray:
    """[F, dims] band-limited noise with unit standard deviation (Gaussian-filtered white noise)."""
    sigma = fps / (2.0 * np.pi * cutoff_hz)  # frames
    pad = int(4 * sigma) + 1
    white = rng.standard_normal((num_frames + 2 * pad, dims))
    out = gaussian_filter1d(white, sigma, axis=0, mode="wrap")[pad:pad + num_frames]
    # Std of filtered unit white noise: 1 / sqrt(2 sqrt(pi) sigma); normalise by theory, not by the sample.
    return out * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def loudness_envelope(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """[F] speech loudness in [0, 1] per video frame (RMS over the frame, smoothed, peak-normalised)."""
    x = samples.astype(np.float64) / 32768.0
    hop = sample_rate / fps
    rms = np.zeros(num_frames)
    for i in range(num_frames):
        seg = x[int(i * hop):int((i + 1) * hop)]
        rms[i] = np.sqrt(np.mean(seg * seg)) if seg.size else 0.0
    rms = gaussian_filter1d(rms, 2.0)
    peak = rms.max()
    return rms / peak if peak > 0 else rms


def combine_speech_and_emotion(
    speech_expression: np.ndarray,   # [F, E] mouth AUs from viseme_curves
    speech_jaw: np.ndarray,          # [F] radians
    emotion_expression: np.ndarray,  # [F, E] EMFACS recipe (emotion_to_expression)
    emotion_jaw: np.ndarray,         # [F] radians
    closure: np.ndarray,             # [F] bilabial closure weight in [0, 1]
    articulation: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:  # expression [F, E] in [0, 1], jaw [F] radians
    """The module docstring's combination rule."""
    speech = speech_expression.astype(np.float64) * articulation
    emo = emotion_expression.astype(np.float64).copy()
    open_gate = 1.0 - np.clip(closure, 0.0, 1.0)
    emo[:, au_indices("AU25")] *= open_gate[:, None]
    rounding = np.max(speech[:, au_indices("AU18") + au_indices("AU22")], axis=1)
    spread = au_indices("AU12") + au_indices("AU20")
    emo[:, spread] *= (1.0 - 0.5 * np.clip(rounding, 0.0, 1.0))[:, None]
    expression = np.clip(emo + speech, 0.0, 1.0)
    a = np.clip(speech_jaw.astype(np.float64) * articulation / JAW_LIMIT_RAD, 0.0, 1.0)
    b = np.clip(emotion_jaw.astype(np.float64) * open_gate / JAW_LIMIT_RAD, 0.0, 1.0)
    jaw = JAW_LIMIT_RAD * (1.0 - (1.0 - a) * (1.0 - b))
    return expression, jaw


def gaze_track(num_frames: int, fps: float, rng: np.random.Generator, motion: ActorMotion) -> np.ndarray:
    """[F, 2] eye (pitch, yaw) radians: fixations joined by quick saccades, plus fixational drift."""
    times = np.arange(num_frames) / fps
    duration = num_frames / fps
    targets, starts = [np.zeros(2)], [-1.0]
    t = rng.uniform(0.2, 1.0) * motion.fixation_s
    while t < duration:
        targets.append(rng.standard_normal(2) * np.radians(motion.gaze_deg))
        starts.append(t)
        t += max(0.25, rng.gamma(3.0, motion.fixation_s / 3.0))
    gaze = np.zeros((num_frames, 2))
    gaze[:] = targets[0]
    for k in range(1, len(targets)):
        u = np.clip((times - starts[k]) / motion.saccade_s, 0.0, 1.0)
        u = u * u * (3 - 2 * u)
        gaze += u[:, None] * (targets[k] - targets[k - 1])
    gaze += smooth_noise(num_frames, fps, rng, 2, 1.5) * np.radians(motion.drift_deg)
    return gaze


def head_motion(
    num_frames: int, fps: float, rng: np.random.Generator, emotion: str, intensity: float,
    loudness: np.ndarray, motion: ActorMotion,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # root [F, 3], neck [F, 3], translation [F, 3]
    """Idle head motion (smooth noise), speech nods and the emotion's posture."""
    energy = 1.0 + (MOTION_ENERGY[emotion] - 1.0) * intensity
    neck = smooth_noise(num_frames, fps, rng, 3, 0.6) * np.radians(motion.neck_deg) * energy
    root = smooth_noise(num_frames, fps, rng, 3, 0.3) * np.radians(motion.root_deg) * energy
    translation = smooth_noise(num_frames, fps, rng, 3, 0.4) * motion.sway_m * energy
    neck[:, 0] += motion.nod_rad * energy * (loudness - loudness.mean())
    neck += np.asarray(POSTURE[emotion]) * intensity
    # (pitch, yaw, roll) -> axis-angle about (X, Y, Z): small angles, so components add.
    return root, neck, translation


def perform_clip(
    spec: ClipSpec, track: SpeechTrack, seed: int = 0, motion: ActorMotion = ActorMotion(),
) -> ClipPerformance:
    """The actor's whole performance of a planned clip whose speech is `track`."""
    from emo_backend.data.speech.visemes import closure_weights

    if spec.emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {spec.emotion!r}")
    num_frames, fps = track.num_frames, float(track.fps)
    rng = np.random.default_rng(clip_seed(seed, spec.clip_id))
    times = np.arange(num_frames) / fps

    # Emotion: the clip's category, its amount breathing slowly around the intensity.
    wobble = 1.0 + motion.expression_wobble * smooth_noise(num_frames, fps, rng, 1, 0.3)[:, 0]
    amount = np.clip(spec.intensity * wobble, 0.0, 1.0)
    weights = torch.zeros(num_frames, len(EMOTIONS))
    weights[:, EMOTIONS.index(spec.emotion)] = 1.0
    emo_expr, emo_jaw = emotion_to_expression(weights, torch.from_numpy(amount.astype(np.float32)))

    phonemes = [(p.symbol, p.start_s, p.end_s) for p in track.phonemes]
    closure = closure_weights(phonemes, times) if num_frames else np.zeros(0)
    articulation = 1.0 + (ARTICULATION[spec.emotion] - 1.0) * spec.intensity
    expression, jaw = combine_speech_and_emotion(
        track.expression, track.jaw, emo_expr.numpy(), emo_jaw.numpy(), closure, articulation)

    blink = blink_curve(num_frames, fps, seed=clip_seed(seed + 1, spec.clip_id)).numpy().astype(np.float64)
    for idx in au_indices("AU45"):
        expression[:, idx] = np.clip(np.maximum(expression[:, idx], blink), 0.0, 1.0)

    loudness = loudness_envelope(track.samples, track.sample_rate, fps, num_frames)
    root, neck, translation = head_motion(num_frames, fps, rng, spec.emotion, spec.intensity, loudness, motion)
    gaze = gaze_track(num_frames, fps, rng, motion)

    pose = np.zeros((num_frames, 5, 3))
    pose[:, 0] = root
    pose[:, 1] = neck
    pose[:, 2, 0] = jaw
    pose[:, 3, :2] = gaze  # both eyes: conjugate gaze (pitch about X, yaw about Y)
    pose[:, 4, :2] = gaze
    blink2 = expression[:, [ACTION_UNITS.index("AU45L"), ACTION_UNITS.index("AU45R")]]
    return ClipPerformance(
        expression=expression.astype(np.float32), pose=pose.astype(np.float32),
        translation=translation.astype(np.float32), blink=blink2.astype(np.float32),
        closure=closure.astype(np.float32), emotion_amount=amount.astype(np.float32),
    )

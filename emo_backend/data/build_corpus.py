"""Build the synthetic actor's whole corpus into a dataset folder: parallel, with progress, resumable.

    report = build_corpus(SynthOptions(out=Path("data/synth"), size=256))

Each planned clip (synth.plan_corpus) is spoken by espeak-ng, performed
(actor.perform_clip), rendered (actor_render.ActorRenderer) in a worker
process and written by the main process through DatasetWriter, which commits
clip by clip. Re-running on the same folder skips the clips already there
(resume); the options a folder was built with are kept in `synth.json` and a
resume with different options is refused.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emo_backend.data.actor import clip_seed, perform_clip
from emo_backend.data.actor_render import BACKGROUND, ActorRenderer, RenderSettings, clip_camera
from emo_backend.data.synth import DEFAULT_IDENTITIES, ClipSpec, Identity, SpeechTrack, plan_corpus, speech_track
from emo_backend.errors import EmoSplatError

SYNTH_JSON = "synth.json"
GENERATOR_VERSION = 1
FPS = 25.0

# Identities beyond the two of synth.DEFAULT_IDENTITIES (other shapes, voices and appearance seeds).
EXTRA_IDENTITIES: tuple[Identity, ...] = (
    Identity("synth_c", seed=3, voice="en-gb", rate_wpm=160, pitch=40),
    Identity("synth_d", seed=4, voice="en-us+f2", rate_wpm=150, pitch=60),
)
ALL_IDENTITIES = DEFAULT_IDENTITIES + EXTRA_IDENTITIES
TRAIN_CLIPS = (4, 1, 1, 1)  # training clips per condition, per identity (the first identity is the main one)


@dataclass(frozen=True)
class SynthOptions:
    out: Path
    size: int = 256
    small: bool = False           # tiny corpus for tests: 2 clips, 1 s each
    identities: int = 2
    workers: int = 2
    seed: int = 0
    supersample: int = 2
    camera_jitter_deg: float = 0.0
    max_seconds: float | None = None  # cut every clip to at most this long (small: 1 s)

    def config(self) -> dict:
        """What decides the content of the corpus (not where or how fast it is built)."""
        d = asdict(self)
        for key in ("out", "workers"):
            d.pop(key)
        d["fps"] = FPS
        d["generator_version"] = GENERATOR_VERSION
        d["open_head"] = open_head_fingerprint()
        return d

    def render_settings(self) -> RenderSettings:
        return RenderSettings(size=self.size, supersample=self.supersample, camera_jitter_deg=self.camera_jitter_deg)

    def clip_seconds(self) -> float | None:
        return 1.0 if self.small and self.max_seconds is None else self.max_seconds


def open_head_fingerprint() -> str:
    """Version (and generator code hash) of the open head the frames are rendered from: a resume with another
    head would mix two actors in one corpus."""
    from emo_backend.head.open_head import build as open_head_build

    digest = getattr(open_head_build, "source_digest", None)
    return open_head_build.OPEN_HEAD_VERSION + (f"+{digest()}" if digest is not None else "")


@dataclass
class BuildReport:
    planned: int
    built: int
    skipped: int
    frames: int
    seconds: float
    clip_ids: list[str] = field(default_factory=list)


def corpus_plan(options: SynthOptions) -> list[ClipSpec]:
    """The clips of the corpus (the small variant: one neutral and one happy-at-full-intensity clip)."""
    if not 1 <= options.identities <= len(ALL_IDENTITIES):
        raise EmoSplatError(f"--identities must be between 1 and {len(ALL_IDENTITIES)}, got {options.identities}")
    identities = ALL_IDENTITIES[: options.identities]
    if options.small:
        specs = plan_corpus(identities=identities[:1], train_clips_per_condition=(1,), seed=options.seed)
        keep = {f"{identities[0].name}_neutral_l0_train00", f"{identities[0].name}_happy_l3_test00"}
        return [s for s in specs if s.clip_id in keep]
    return plan_corpus(identities=identities, train_clips_per_condition=TRAIN_CLIPS[: len(identities)], seed=options.seed)


def truncate_track(track: SpeechTrack, seconds: float) -> SpeechTrack:
    """The first `seconds` of a speech track (frames, audio and phonemes)."""
    frames = min(track.num_frames, max(1, int(round(seconds * track.fps))))
    samples = track.samples[: int(np.ceil(frames / track.fps * track.sample_rate))]
    phonemes = [p for p in track.phonemes if p.start_s < frames / track.fps]
    return SpeechTrack(samples, track.sample_rate, phonemes, track.expression[:frames], track.jaw[:frames], track.fps)


def effect_amounts(emotion: str, intensity: float) -> tuple[float, float]:
    """(angry, fear) amounts that drive the blood-flow effects, from a clip's label."""
    return (float(intensity) if emotion == "angry" else 0.0, float(intensity) if emotion == "fear" else 0.0)


def check_espeak() -> None:
    from emo_backend.data.speech.espeak import LIBRARY_NAME, espeak_available

    if not espeak_available():
        raise EmoSplatError(
            f"the synthetic actor speaks with espeak-ng, but {LIBRARY_NAME} cannot be loaded: install it with "
            "`sudo apt-get install espeak-ng` (`./run setup` installs it when run as root)"
        )


# ------------------------------------------------------------------------------------------------ one clip


class ClipRenderer:
    """Everything one process needs to turn ClipSpecs into frames: the head and one renderer per identity."""

    def __init__(self, options: SynthOptions) -> None:
        from emo_backend.head.open_head import build_open_head

        self.options = options
        self.head = build_open_head(seed=0)
        self._renderers: dict[int, ActorRenderer] = {}

    def renderer(self, appearance_seed: int) -> ActorRenderer:
        from emo_backend.head.open_head import build_open_head

        if appearance_seed not in self._renderers:
            self._renderers[appearance_seed] = ActorRenderer(
                self.head, build_open_head(seed=appearance_seed), self.options.render_settings())
        return self._renderers[appearance_seed]

    def tracking(self, spec: ClipSpec) -> tuple[dict[str, np.ndarray], SpeechTrack]:
        """The clip's ground-truth tracking arrays (float32, as saved) and its speech."""
        from emo_backend.head.lbs import landmarks, lbs
        from emo_backend.head.open_head import random_identity
        import torch

        track = speech_track(spec, FPS)
        seconds = self.options.clip_seconds()
        if seconds is not None:
            track = truncate_track(track, seconds)
        perf = perform_clip(spec, track, seed=self.options.seed)
        rng = np.random.default_rng(clip_seed(self.options.seed + 7, spec.clip_id))
        K, viewmat = clip_camera(self.options.render_settings(), rng)
        identity = random_identity(spec.identity_seed).numpy().astype(np.float32)
        tracking = {
            "expression": perf.expression, "pose": perf.pose, "translation": perf.translation,
            "identity": identity, "K": K, "viewmat": viewmat, "blink": perf.blink,
        }
        # Landmarks of the linear (tracked) mesh, projected with the clip's camera.
        f = perf.num_frames
        posed = lbs(self.head, torch.from_numpy(perf.expression), torch.from_numpy(perf.pose),
                    torch.from_numpy(identity)[None].expand(f, -1), torch.from_numpy(perf.translation))
        points = landmarks(self.head, posed.vertices).numpy().astype(np.float64)  # [F, 68, 3]
        cam = points @ viewmat[:3, :3].T.astype(np.float64) + viewmat[:3, 3]
        pix = cam[..., :2] / cam[..., 2:3] * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
        tracking["landmarks2d"] = pix.astype(np.float32)
        return tracking, track

    def render(self, spec: ClipSpec, tracking: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """frames uint8 [F, H, W, 3], masks uint8 [F, H, W] of a clip's tracking."""
        renderer = self.renderer(spec.identity_seed)
        angry, fear = effect_amounts(spec.emotion, spec.intensity)
        num_frames = tracking["expression"].shape[0]
        size = self.options.size
        frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
        masks = np.zeros((num_frames, size, size), dtype=np.uint8)
        for i in range(num_frames):
            frames[i], masks[i] = renderer.render_tracking(tracking, i, angry, fear)
        return frames, masks

    def __call__(self, spec: ClipSpec) -> dict:
        tracking, track = self.tracking(spec)
        frames, masks = self.render(spec, tracking)
        return {"spec": spec, "tracking": tracking, "frames": frames, "masks": masks,
                "audio": (track.samples.astype(np.float32) / 32768.0, track.sample_rate)}


_worker: ClipRenderer | None = None
_worker_error: str | None = None


def _init_worker(options: SynthOptions) -> None:
    # A failing initializer would make the Pool respawn workers forever: keep the error, report it per task.
    global _worker, _worker_error
    try:
        import torch

        torch.set_num_threads(1)  # one core per worker process
        _worker = ClipRenderer(options)
    except Exception as err:  # noqa: BLE001 - re-raised in the main process by _work
        _worker_error = f"{type(err).__name__}: {err}"


def _work(spec: ClipSpec) -> dict:
    if _worker is None:
        raise EmoSplatError(f"a synth worker process could not start ({_worker_error})")
    return _worker(spec)


# ---------------------------------------------------------------------------------------------- the corpus


def _check_config(out: Path, options: SynthOptions) -> None:
    path = out / SYNTH_JSON
    if not path.exists():
        if (out / "dataset.json").exists():
            raise EmoSplatError(f"{out} holds a dataset that `emosplat synth` did not build (no {SYNTH_JSON}); "
                                "choose a new --out folder")
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EmoSplatError(f"{path}: cannot be read ({err}); delete it only if {out} is a fresh folder") from None
    if saved != options.config():
        diff = {k: (saved.get(k), v) for k, v in options.config().items() if saved.get(k) != v}
        raise EmoSplatError(
            f"{out} was built with other synth options ({', '.join(f'{k}: {a} -> {b}' for k, (a, b) in diff.items())}); "
            "resume with the same options or choose a new --out folder"
        )


def build_corpus(options: SynthOptions, progress: bool = True) -> BuildReport:
    """Build (or resume) the corpus described by `options` into options.out."""
    from emo_backend.data.dataset import DATASET_JSON, DatasetWriter
    from emo_backend.files.atomic import write_text_atomic
    from emo_backend.head.open_head import build_open_head

    if options.size < 16:
        raise EmoSplatError(f"--size must be at least 16 pixels, got {options.size}")
    if options.workers < 1:
        raise EmoSplatError(f"--workers must be at least 1, got {options.workers}")
    check_espeak()
    out = Path(options.out)
    specs = corpus_plan(options)
    start = time.perf_counter()
    head = build_open_head(seed=0)
    for seed in sorted({s.identity_seed for s in specs}):
        build_open_head(seed=seed)  # warm the cache before workers start

    resuming = (out / DATASET_JSON).exists()
    _check_config(out, options)
    if not resuming and (out / SYNTH_JSON).exists():
        (out / SYNTH_JSON).unlink()  # ours, from a run that stopped before its first clip
    writer = DatasetWriter(
        out, head_model=head.model_id, expression_names=head.expr_names, fps=FPS,
        resolution=(options.size, options.size), append=resuming,
        description=f"EmoSplat synthetic actor (emosplat synth), background RGB {BACKGROUND}",
    )
    write_text_atomic(out / SYNTH_JSON, json.dumps(options.config(), indent=1) + "\n")
    todo = [s for s in specs if s.clip_id not in writer.info.clips]
    report = BuildReport(len(specs), 0, len(specs) - len(todo), 0, 0.0)

    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="clip", desc="synth", disable=not progress)
    pool = None
    try:
        if options.workers == 1 or len(todo) <= 1:
            local = ClipRenderer(options)
            results = (local(s) for s in todo)
        else:
            pool = mp.get_context("spawn").Pool(min(options.workers, len(todo)), _init_worker, (options,))
            results = pool.imap(_work, todo, chunksize=1)
        with writer:
            for result in results:
                spec: ClipSpec = result["spec"]
                writer.add_clip(
                    spec.clip_id, identity=spec.identity, emotion=spec.emotion, intensity=spec.intensity,
                    frames=result["frames"], masks=result["masks"], audio=result["audio"],
                    tracking=result["tracking"], split=spec.split, text=spec.sentence,
                    source={"generator": "emosplat synth", "generator_version": GENERATOR_VERSION,
                            "sentence_index": spec.sentence_index, "voice": spec.voice, "rate_wpm": spec.rate_wpm,
                            "pitch": spec.pitch, "appearance_seed": spec.identity_seed, "seed": options.seed,
                            "open_head": options.config()["open_head"],
                            "background_rgb": list(BACKGROUND)},
                )
                report.built += 1
                report.frames += int(result["frames"].shape[0])
                report.clip_ids.append(spec.clip_id)
                bar.update(1)
                bar.set_postfix(frames=report.frames)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    report.seconds = time.perf_counter() - start
    return report

"""Evaluating A2ET on held-out clips: lip sync, expression error per emotion, intensity monotonicity.

* Landmark distance (LMD): the head's 68 landmarks from the predicted and the
  tracked expression + jaw (neck, eyes, root and camera as tracked: head
  sway is not in the speech), projected with the clip's camera; mean pixel
  distance of the mouth and of the whole face, plus landmark-velocity error.
  The neck's own error is reported apart, in degrees.
* Expression error: mean |ψ_pred − ψ_true| per emotion, blink (AU45) excluded:
  blinks are not in the audio.
* Intensity: for each emotion, the same held-out audio at intensities
  0, 1/6, …, 1 (between MEAD's levels included); the mean activation of the
  emotion's own FACS recipe units must not decrease as intensity grows.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from emo_backend.head.lbs import lbs
from emo_backend.head.model import JOINT_NAMES, HeadModel
from emo_backend.train.a2et import JAW, NECK, load_clip_arrays

INTENSITIES = tuple(i / 6 for i in range(7))


def _posed(head: HeadModel, expression, jaw, neck, tracked_pose, translation):
    pose = tracked_pose.clone()
    pose[:, JAW] = jaw
    pose[:, NECK] = neck
    return lbs(head, expression, pose, translation=translation).vertices


@torch.no_grad()
def evaluate_a2et(a2et, dataset, head: HeadModel, split: str = "test") -> dict:
    from emo_backend.emotion.facs import recipe_matrix
    from emo_backend.emotion.space import EMOTIONS
    from emo_backend.eval.metrics import landmark_metrics

    names = tuple(dataset.info.expression_names)
    keep = torch.tensor([not n.startswith("AU45") for n in names])
    clips = load_clip_arrays(dataset, split)
    if not clips:
        raise ValueError(f"no tracked clips with audio in split {split!r}")
    per_emotion: dict[str, list[float]] = defaultdict(list)
    lmd: dict[str, list[float]] = defaultdict(list)
    for clip in clips:
        frames = clip.features.shape[0]
        pred = a2et.predict(clip.features, clip.weights.expand(frames, -1), torch.full((frames,), clip.intensity))
        emotion = EMOTIONS[int(clip.weights.argmax())]
        per_emotion[emotion].append(float((pred.expression - clip.expression)[:, keep].abs().mean()))
        tracking = dataset.load_tracking(clip.clip_id)
        tracked_pose = torch.from_numpy(tracking.pose)
        translation = torch.from_numpy(tracking.translation)
        # Blink is not predicted from audio: evaluate both meshes with the tracked eyelids.
        expression = pred.expression.clone()
        expression[:, ~keep] = clip.expression[:, ~keep]
        pred_v = _posed(head, expression, pred.jaw, clip.neck, tracked_pose, translation)
        lmd["neck_error_deg"].append(float((pred.neck - clip.neck).norm(dim=-1).mean()) * 57.2958)
        true_v = _posed(head, clip.expression, clip.jaw, clip.neck, tracked_pose, translation)
        m = landmark_metrics(head, pred_v, true_v, torch.from_numpy(tracking.viewmat), torch.from_numpy(tracking.K))
        for k, v in m.items():
            lmd[k].append(v)
    neck_error = lmd.pop("neck_error_deg")

    from emo_backend.head.expressions import ACTION_UNITS

    monotonic: dict = {}
    probe = clips[0]
    frames = probe.features.shape[0]
    recipes, _ = recipe_matrix()
    facs = names == ACTION_UNITS  # the recipes name FACS units; other heads (FLAME) have no such meaning
    for e, emotion in enumerate(EMOTIONS):
        if not facs or emotion == "neutral" or not bool(recipes[e].any()):
            continue
        weights = torch.zeros(frames, len(EMOTIONS))
        weights[:, e] = 1
        activation = []
        for intensity in INTENSITIES:
            pred = a2et.predict(probe.features, weights, torch.full((frames,), intensity))
            activation.append(float((pred.expression * recipes[e]).sum(-1).mean() / recipes[e].sum()))
        monotonic[emotion] = {
            "activation": [round(a, 4) for a in activation],
            "monotonic": all(b >= a - 1e-3 for a, b in zip(activation, activation[1:])),
        }
    mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
    return {
        "split": split,
        "clips": len(clips),
        "resolution": list(dataset.info.resolution),
        "landmarks_px": {k: round(mean(v), 4) for k, v in lmd.items()},
        "neck_error_deg": round(mean(neck_error), 3),
        "expression_mae_per_emotion": {k: round(mean(v), 5) for k, v in sorted(per_emotion.items())},
        "intensity": monotonic if facs else "skipped: the expression bases are not the FACS action units",
        "intensity_monotonic": all(v["monotonic"] for v in monotonic.values()) if facs else None,
        "probe_clip": probe.clip_id,
    }


def evaluate_a2et_folder(a2et_dir: str | Path, dataset_dir: str | Path, split: str = "test") -> dict:
    from emo_backend.data.dataset import load_dataset
    from emo_backend.head.registry import build_head
    from emo_backend.train.a2et import load_a2et

    dataset = load_dataset(dataset_dir)
    a2et, info = load_a2et(a2et_dir)
    head = build_head(dataset.info.head_model, what=str(dataset_dir))
    report = evaluate_a2et(a2et, dataset, head, split)
    report["a2et"] = {"folder": str(a2et_dir), **{k: info.get(k) for k in ("iterations", "train_clips", "final_loss")}}
    return report

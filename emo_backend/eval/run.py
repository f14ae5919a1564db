"""`emosplat eval`: render an avatar against a dataset split and measure it.

Reconstruction (default): the avatar is driven by the dataset's own tracking,
so the images measure the Gaussian avatar alone. With `motion` (predicted
expression and pose, e.g. A2ET's output, one `<clip>.npz` per clip with arrays
`expression` [F, E], `pose` [F, 5, 3] and optionally `translation` [F, 3]) the
avatar is driven by the prediction instead and the landmark metrics compare the
predicted head meshes with the tracked ones (LMD / landmark velocity, pixels).
Frames are composited as in training: with masks, both sides over black; without,
the render over the data's background colour estimated from the frame borders.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from emo_backend.errors import EmoSplatError, InvalidFileError

SKIPPED_LPIPS = "skipped: no LPIPS weights given"
SKIPPED_LANDMARKS = "skipped: no predicted motion given (--motion); with tracked motion the meshes are identical"


def _load_motion(motion: Path, clip_id: str, num_frames: int, num_expressions: int) -> dict[str, torch.Tensor]:
    path = motion / f"{clip_id}.npz" if motion.is_dir() else motion
    if not path.is_file():
        raise InvalidFileError(f"predicted motion for clip {clip_id!r} not found at {path}; write one <clip>.npz "
                               "per evaluated clip into the --motion folder")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], np.float32) for k in z.files}
    except Exception as err:
        raise InvalidFileError(f"{path}: not a readable .npz ({err})") from None
    expected = {"expression": (num_frames, num_expressions), "pose": (num_frames, 5, 3), "translation": (num_frames, 3)}
    for name, shape in expected.items():
        if name not in arrays:
            if name == "translation":
                continue
            raise InvalidFileError(f"{path}: field {name!r} missing; predicted motion needs expression and pose")
        if arrays[name].shape != shape:
            raise InvalidFileError(f"{path}: field {name!r} has shape {arrays[name].shape}, expected {shape} "
                                   f"(clip {clip_id!r} has {num_frames} frames)")
        if not np.isfinite(arrays[name]).all():
            raise InvalidFileError(f"{path}: field {name!r} has NaN or infinite values")
    return {k: torch.from_numpy(v) for k, v in arrays.items() if k in expected}


def evaluate_avatar(
    avatar_ref: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    video: str | os.PathLike | None = None,
    split: str | None = None,
    backend: str = "auto",
    max_frames: int | None = None,   # per clip, from its start (velocity needs consecutive frames)
    motion: str | os.PathLike | None = None,
    lpips_backbone: str | os.PathLike | None = None,
    lpips_heads: str | os.PathLike | None = None,
) -> dict:
    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.bundle import load_avatar
    from emo_backend.data.dataset import load_dataset
    from emo_backend.eval.metrics import landmark_metrics, psnr, ssim_per_image
    from emo_backend.eval.report import write_report, write_side_by_side_video
    from emo_backend.render import resolve_backend
    from emo_backend.train.losses import composite_over
    from emo_backend.train.stage1 import TrainingFrames, composite_target, estimate_background, render_frame

    if (lpips_backbone is None) != (lpips_heads is None):
        raise EmoSplatError("LPIPS needs both --lpips-backbone (VGG-16 weights) and --lpips-heads (LPIPS linear heads)")
    avatar = load_avatar(avatar_ref)
    dataset = load_dataset(dataset_dir)
    if avatar.num_expressions != len(dataset.info.expression_names):
        raise EmoSplatError(f"the avatar has {avatar.num_expressions} expression bases, {dataset_dir} is tracked with "
                            f"{len(dataset.info.expression_names)}: evaluate an avatar on head {dataset.info.head_model!r}")
    if split is None:
        split = "test" if dataset.clip_ids("test") else "train"
    frames = TrainingFrames(dataset, split)
    if not len(frames):
        raise EmoSplatError(f"{dataset_dir}: split {split!r} has no frames to evaluate")
    backend = resolve_backend(backend)
    device = torch.device("cuda" if backend == "gsplat" else "cpu")
    avatar = avatar.to(device)
    lpips = None
    if lpips_backbone is not None:
        from emo_backend.train.perceptual import load_lpips

        lpips = load_lpips(lpips_backbone, lpips_heads).to(device)
    has_masks = dataset.clip(frames.refs[0].clip_id).has_masks
    background = torch.tensor((0.0, 0.0, 0.0) if has_masks else estimate_background(frames), device=device)
    motion_path = Path(motion) if motion is not None else None

    per_clip: dict[str, dict] = {}
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    start = time.perf_counter()
    by_clip: dict[str, list[int]] = {}
    for k, ref in enumerate(frames.refs):
        by_clip.setdefault(ref.clip_id, []).append(k)
    with torch.no_grad():
        for clip_id, indices in by_clip.items():
            indices = indices[:max_frames] if max_frames else indices
            tracking = frames.tracking[clip_id]
            predicted = None
            if motion_path is not None:
                predicted = _load_motion(motion_path, clip_id, tracking.num_frames, avatar.num_expressions)
            rows = {"psnr": [], "ssim": [], "l1": [], "lpips": []}
            pred_verts, gt_verts = [], []
            for k in indices:
                frame = frames.load(k, device)
                index = frames.refs[k].index
                if predicted is not None:
                    gt_posed = evaluate(avatar, frame["expression"][None], frame["pose"][None],
                                        frame["translation"][None])[1]
                    frame = {**frame, "expression": predicted["expression"][index].to(device),
                             "pose": predicted["pose"][index].to(device)}
                    if "translation" in predicted:
                        frame["translation"] = predicted["translation"][index].to(device)
                rgb, alpha, _, posed = render_frame(avatar, frame, frames.width, frames.height, backend)
                if predicted is not None:
                    pred_verts.append(posed.vertices[0])
                    gt_verts.append(gt_posed.vertices[0])
                pred = composite_over(rgb.to(device), alpha.to(device), background).clamp(0, 1)
                target = composite_target(frame, background)
                rows["psnr"].append(float(psnr(pred, target)))
                rows["ssim"].append(float(ssim_per_image(pred, target)))
                rows["l1"].append(float((pred - target).abs().mean()))
                if lpips is not None:
                    rows["lpips"].append(float(lpips(pred, target)))
                if video is not None:
                    pairs.append((target.cpu().numpy(), pred.cpu().numpy()))
            clip_report = {"frames": len(indices), **{k: float(np.mean(v)) for k, v in rows.items() if v}}
            if predicted is not None:
                viewmats = torch.from_numpy(tracking.viewmat[[frames.refs[k].index for k in indices]])
                Ks = torch.from_numpy(tracking.K[[frames.refs[k].index for k in indices]])
                clip_report.update(landmark_metrics(avatar.head, torch.stack(pred_verts).cpu(),
                                                    torch.stack(gt_verts).cpu(), viewmats, Ks))
            per_clip[clip_id] = clip_report

    def mean_over_clips(key: str) -> float | None:
        values = [(c[key], c["frames"]) for c in per_clip.values() if key in c and np.isfinite(c[key])]
        if not values:
            return None
        return float(sum(v * n for v, n in values) / sum(n for _, n in values))

    summary = {key: mean_over_clips(key) for key in ("psnr", "ssim", "l1")}
    summary["lpips"] = mean_over_clips("lpips") if lpips is not None else SKIPPED_LPIPS
    if motion_path is not None:
        for key in ("lmd_face", "lmd_mouth", "lmv_face", "lmv_mouth"):
            summary[key] = mean_over_clips(key)
    else:
        summary["landmarks"] = SKIPPED_LANDMARKS
    report = {
        "avatar": str(avatar_ref),
        "dataset": str(Path(dataset_dir).resolve()),
        "split": split,
        "backend": backend,
        "driven_by": "predicted motion" if motion_path is not None else "tracking",
        "frames": sum(c["frames"] for c in per_clip.values()),
        "resolution": [frames.width, frames.height],
        "background": background.tolist(),
        "summary": summary,
        "clips": per_clip,
        "seconds": time.perf_counter() - start,
    }
    if video is not None:
        report["video"] = str(video)
        report["video_frames"] = write_side_by_side_video(video, pairs, dataset.info.fps)
    write_report(out_json, report)
    return report

"""Frames of the synthetic actor: coverage and mask, determinism, emotion effects, corrective shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emo_backend.data.actor_effects import (
    CORRECTIVE_NAMES, EFFECT_NAMES, corrective_activations, effect_activations,
)
from emo_backend.data.actor_render import BACKGROUND, ActorRenderer, RenderSettings, clip_camera
from emo_backend.emotion.facs import emotion_to_expression
from emo_backend.emotion.space import EMOTIONS
from emo_backend.head.expressions import au_indices
from emo_backend.head.open_head import build_open_head, random_identity

SIZE = 64


@pytest.fixture(scope="module")
def head():
    return build_open_head(seed=0)


@pytest.fixture(scope="module")
def renderer(head):
    return ActorRenderer(head, settings=RenderSettings(size=SIZE))


def _emotion(name: str, intensity: float = 1.0) -> tuple[np.ndarray, float]:
    weights = torch.zeros(1, len(EMOTIONS))
    weights[0, EMOTIONS.index(name)] = 1.0
    expr, jaw = emotion_to_expression(weights, torch.tensor([intensity]))
    return expr[0].numpy(), float(jaw[0])


def _pose(jaw: float = 0.0) -> np.ndarray:
    pose = np.zeros((5, 3), np.float32)
    pose[2, 0] = jaw
    return pose


def _render(renderer, name="neutral", intensity=1.0, **kw):
    expr, jaw = _emotion(name, intensity)
    K, view = clip_camera(renderer.settings)
    beta = random_identity(1).numpy()
    return renderer.render_frame(expr, _pose(jaw), np.zeros(3), beta, K, view, **kw)


def _pixel_of(head, renderer, point_hint, window=3):
    """Pixel window around the front-most skin vertex near an (x, y) spot of the face."""
    v = head.v_template.numpy()
    near = np.flatnonzero((np.abs(v[:, 0] - point_hint[0]) < 0.006) & (np.abs(v[:, 1] - point_hint[1]) < 0.006))
    p = v[near[np.argmax(v[near, 2])]].astype(np.float64)
    K, view = clip_camera(renderer.settings)
    cam = view[:3, :3] @ p + view[:3, 3]
    x, y = (K[:2, :2] @ (cam[:2] / cam[2]) + K[:2, 2]).astype(int)
    return slice(y - window, y + window + 1), slice(x - window, x + window + 1)


def test_frame_has_head_on_plain_background_and_mask_matches(renderer):
    rgb, mask = _render(renderer)
    assert rgb.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE) and rgb.dtype == mask.dtype == np.uint8
    head_px, bg_px = mask == 255, mask == 0
    assert 0.2 < head_px.mean() < 0.8 and bg_px.mean() > 0.15
    bg = np.round(np.asarray(BACKGROUND) * 255).astype(np.uint8)
    assert (rgb[bg_px] == bg).all()  # background exactly the documented colour where the mask is 0
    assert np.abs(rgb[head_px].astype(int) - bg.astype(int)).sum(1).mean() > 30  # the head is not background
    assert rgb[head_px].std() > 10  # shaded and textured, not flat


def test_rendering_is_deterministic(head, renderer):
    a = _render(renderer, "happy")
    fresh = ActorRenderer(head, settings=RenderSettings(size=SIZE))  # new lattice bake, same result
    b = _render(fresh, "happy")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_happy_differs_from_neutral_in_cheek_and_mouth_not_forehead(head, renderer):
    neutral, _ = _render(renderer, "neutral")
    happy, _ = _render(renderer, "happy")
    diff = np.abs(happy.astype(int) - neutral.astype(int)).sum(-1)
    cheek = _pixel_of(head, renderer, (0.042, -0.02))
    mouth_corner = _pixel_of(head, renderer, (0.026, -0.058))
    forehead = _pixel_of(head, renderer, (0.0, 0.06))
    assert diff[cheek].mean() > 6 and diff[mouth_corner].mean() > 6
    assert diff[forehead].max() <= 3


def test_wrinkle_modulation_where_the_action_units_are(head, renderer):
    _, _, neutral_fx = _render(renderer, "neutral", return_effects=True)
    assert np.abs(neutral_fx).max() == 0.0
    _, _, surprise_fx = _render(renderer, "surprised", return_effects=True)
    forehead = _pixel_of(head, renderer, (0.0, 0.06), window=4)
    chin = _pixel_of(head, renderer, (0.0, -0.095), window=3)
    assert np.abs(surprise_fx[forehead]).max() > 0.05   # forehead lines with AU1+AU2
    assert np.abs(surprise_fx[chin]).max() == 0.0
    _, _, happy_fx = _render(renderer, "happy", return_effects=True)
    nasolabial = _pixel_of(head, renderer, (0.030, -0.048), window=3)
    assert happy_fx[nasolabial].min() < -0.03            # darkened fold with AU6+AU12
    angry, _, angry_fx = _render(renderer, "angry", angry_amount=1.0, return_effects=True)
    plain, _ = _render(renderer, "angry", angry_amount=0.0)
    cheek = _pixel_of(head, renderer, (0.045, -0.02))
    assert (angry[cheek][..., 0].astype(int) - angry[cheek][..., 1]).mean() > (plain[cheek][..., 0].astype(int) - plain[cheek][..., 1]).mean() + 3


def test_effect_activations_follow_their_drivers():
    neutral = effect_activations(np.zeros(30, np.float32))
    assert neutral.shape == (len(EFFECT_NAMES),) and neutral.max() == 0.0
    expr, _ = _emotion("disgusted")
    act = dict(zip(EFFECT_NAMES, effect_activations(expr)))
    assert act["nose_wrinkles"] > 0.5 and act["forehead_medial_L"] == 0.0
    expr, _ = _emotion("sad")
    act = dict(zip(EFFECT_NAMES, effect_activations(expr)))
    assert act["forehead_medial_L"] > 0.3 and act["glabella"] > 0.3 and act["cheek_flush_L"] == 0.0


def test_corrective_shapes_are_nonlinear_and_skin_only(head, renderer):
    expr, _ = _emotion("happy")
    beta = np.zeros(head.num_identities)
    with_fix = renderer.posed_vertices(expr, _pose(), np.zeros(3), beta)
    plain = ActorRenderer(head, settings=RenderSettings(size=SIZE), corrective=False).posed_vertices(
        expr, _pose(), np.zeros(3), beta)
    moved = np.linalg.norm(with_fix - plain, axis=1)
    assert 0.001 < moved.max() < 0.006  # the cheek bulges by a few millimetres
    eyes = head.regions["eyes"].numpy()
    assert moved[np.unique(head.faces.numpy()[eyes])].max() == 0.0
    # AU6 alone or AU12 alone: no bulge (product), together: bulge -> no linear basis can do this.
    only6 = np.zeros(30, np.float32)
    only6[au_indices("AU6")] = 1.0
    only12 = np.zeros(30, np.float32)
    only12[au_indices("AU12")] = 1.0
    bulge = dict(zip(CORRECTIVE_NAMES, corrective_activations(only6 + only12, 0.0)))
    assert corrective_activations(only6, 0.0)[:2].max() == 0.0 and corrective_activations(only12, 0.0)[:2].max() == 0.0
    assert bulge["cheek_bulge_L"] == 1.0 and bulge["cheek_bulge_R"] == 1.0

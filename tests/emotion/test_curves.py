"""Keyframed emotion curves: smooth, hold at the ends, non-negative weights, JSON format and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emo_backend.emotion.curves import (
    EmotionCurves,
    Key,
    curves_to_json,
    load_curves,
    parse_curves,
    sample_emotion,
    sample_keyed_blink,
)
from emo_backend.emotion.interpolate import interpolate_keys
from emo_backend.emotion.space import EMOTION_INDEX, parse_emotion
from emo_backend.errors import EmoSplatError, InvalidFileError

HAPPY, SAD, SURPRISED = EMOTION_INDEX["happy"], EMOTION_INDEX["sad"], EMOTION_INDEX["surprised"]


def _keys(*pairs):
    return [Key(value=parse_emotion(text), frame=frame) for frame, text in pairs]


def test_neutral_to_happy_keeps_category_and_ramps_intensity():
    w, i = sample_emotion(_keys((0, "neutral"), (20, "happy@0.8")), 30, 25)
    assert w.shape == (30, 8) and i.shape == (30,)
    assert i[0] == 0 and i[20:].allclose(torch.tensor(0.8))
    assert (w[1:, HAPPY] == 1).all()  # pure happy as soon as there is any emotion
    assert (i.diff() >= -1e-7).all()  # monotone ramp, no overshoot
    assert i[10] == pytest.approx(0.4, abs=1e-6)  # smoothstep midpoint


def test_cross_fade_between_categories():
    w, i = sample_emotion(_keys((0, "happy"), (10, "sad")), 11, 25)
    assert torch.allclose(w.sum(-1), torch.ones(11)) and (w >= 0).all()
    assert w[5, HAPPY] == pytest.approx(0.5) and w[5, SAD] == pytest.approx(0.5)
    assert torch.allclose(i, torch.ones(11))
    assert (w[:, SAD].diff() >= 0).all()


def test_hold_before_first_and_after_last_key():
    w, i = sample_emotion(_keys((10, "surprised@0.6"), (20, "happy@0.3")), 40, 25)
    assert (w[:11, SURPRISED] == 1).all() and i[:11].allclose(torch.tensor(0.6))
    assert (w[20:, HAPPY] == 1).all() and i[20:].allclose(torch.tensor(0.3))


def test_smooth_through_several_keys_stays_in_range_and_is_continuous():
    keys = _keys((0, "neutral"), (7, "angry@0.9"), (9, "fear@0.2"), (30, "happy:0.5+surprised:0.5"), (33, "sad@1"))
    w, i = sample_emotion(keys, 60, 30)
    assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(60))
    assert ((i >= 0) & (i <= 1)).all()
    fine_w, fine_i = sample_emotion(keys, 600, 300, key_fps=30)  # 10x denser: no jumps anywhere
    assert fine_i.diff().abs().max() < 0.1


def test_interpolation_modes():
    x, y = np.array([0.0, 1.0, 2.0]), np.array([[0.0], [1.0], [0.0]])
    t = np.array([0.25, 0.5, 1.5])
    assert interpolate_keys(x, y, ["linear"] * 3, t)[:, 0] == pytest.approx([0.25, 0.5, 0.5])
    assert interpolate_keys(x, y, ["constant"] * 3, t)[:, 0] == pytest.approx([0.0, 0.0, 1.0])
    assert interpolate_keys(x, y, ["ease"] * 3, t)[:, 0] == pytest.approx([0.15625, 0.5, 0.5])
    # smooth is monotone between monotone keys and has zero slope at an extremum
    ramp = interpolate_keys(np.array([0.0, 1.0, 3.0]), np.array([[0.0], [0.2], [1.0]]), ["smooth"] * 3,
                            np.linspace(0, 3, 301))[:, 0]
    assert (np.diff(ramp) >= -1e-12).all() and ramp.max() <= 1.0
    peak = interpolate_keys(x, y, ["smooth"] * 3, np.array([0.99, 1.0, 1.01]))[:, 0]
    assert peak[1] == 1.0 and peak[0] < 1.0 and peak[2] < 1.0


def test_frame_keys_at_another_fps_use_the_curve_fps():
    curves = parse_curves({"fps": 25, "keys": [{"frame": 0, "emotion": "neutral"}, {"frame": 25, "emotion": "happy"}]})
    _, i30, _ = curves.sample(61, 30)  # frame 25 at 25 fps = 1 s = frame 30 at 30 fps
    assert i30[30] == pytest.approx(1.0) and i30[29] < 1.0


def test_json_example_and_roundtrip(tmp_path):
    data = {
        "fps": 25,
        "keys": [
            {"frame": 0, "emotion": "neutral", "intensity": 0},
            {"time": 1.5, "weights": {"happy": 1}, "intensity": 0.8},
            {"frame": 60, "emotion": "happy:1+surprised:1@0.8", "interpolation": "ease"},
        ],
        "blink": {"seed": 3, "keys": [{"frame": 70, "value": 0}, {"frame": 72, "value": 1}, {"frame": 75, "value": 0}]},
    }
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(data))
    curves = load_curves(path)
    w, i, blink = curves.sample(100, 25)
    assert w.shape == (100, 8) and i.shape == (100,) and blink.shape == (100,)
    assert 0.79 < i[37] <= 0.8 and w[37, HAPPY] == pytest.approx(1.0)  # key at 1.5 s = frame 37.5
    assert i[60:].allclose(torch.tensor(0.8)) and w[60:, SURPRISED].allclose(torch.tensor(0.5))
    assert blink[72] == 1.0 and blink[70] == 0.0 and blink[75] == 0.0
    again = parse_curves(json.loads(json.dumps(curves_to_json(curves))))
    for a, b in zip(curves.sample(100, 25), again.sample(100, 25)):
        assert torch.allclose(a, b)


def test_keyed_blink_span():
    keys = [Key(value=0.0, frame=10), Key(value=1.0, frame=12), Key(value=0.0, frame=16)]
    track = sample_keyed_blink(keys, 30, 25)
    assert torch.isnan(track[:10]).all() and torch.isnan(track[17:]).all()
    assert track[12] == 1.0 and ((track[10:17] >= 0) & (track[10:17] <= 1)).all()


def test_no_keys_is_neutral():
    w, i = sample_emotion([], 5, 25)
    assert (w[:, 0] == 1).all() and (i == 0).all()


@pytest.mark.parametrize(
    "data,message",
    [
        ([], "top level must be an object"),
        ({"keys": [{"emotion": "happy"}]}, r"keys\[0\]: give exactly one of 'frame' or 'time'"),
        ({"keys": [{"frame": 1, "time": 1, "emotion": "happy"}]}, "exactly one of 'frame' or 'time'"),
        ({"keys": [{"frame": 1}]}, r"keys\[0\]: give exactly one of 'emotion'"),
        ({"keys": [{"frame": 1, "emotion": "hapy"}]}, r"keys\[0\]: unknown emotion 'hapy'"),
        ({"keys": [{"frame": 1, "weights": {"happy": -1}}]}, r"keys\[0\]: weight of 'happy' must be >= 0"),
        ({"keys": [{"frame": 1, "emotion": "happy", "intensity": 2}]}, r"keys\[0\].intensity must be"),
        ({"keys": [{"frame": -1, "emotion": "happy"}]}, r"keys\[0\].frame must be a number >= 0"),
        ({"keys": [{"frame": 1, "emotion": "happy", "colour": 1}]}, r"unknown field\(s\) \['colour'\]"),
        ({"keys": [{"frame": 1, "emotion": "happy", "interpolation": "bezier"}]}, "must be one of smooth"),
        ({"fps": 0, "keys": []}, "fps must be a positive number"),
        ({"keys": [], "blink": [{"frame": 1, "value": 2}]}, r"blink.keys\[0\].value must be a number in \[0, 1\]"),
        ({"keys": [], "blink": {"seed": -1}}, "blink.seed"),
        ({"keys": [], "blink": "often"}, "'blink' must be a list"),
    ],
)
def test_json_errors_name_the_field(data, message):
    with pytest.raises(EmoSplatError, match=message):
        parse_curves(data)


def test_duplicate_key_times():
    curves = parse_curves({"keys": [{"frame": 25, "emotion": "happy"}, {"time": 1.0, "emotion": "sad"}]})
    with pytest.raises(EmoSplatError, match="same time"):
        curves.sample(50, 25)


def test_file_errors(tmp_path):
    with pytest.raises(InvalidFileError, match="does not exist"):
        load_curves(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [')
    with pytest.raises(InvalidFileError, match=r"bad.json is not valid JSON \(line 1"):
        load_curves(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"keys": [{"frame": 0}]}')
    with pytest.raises(InvalidFileError, match=r"wrong.json: keys\[0\]"):
        load_curves(wrong)


def test_curves_dataclass_defaults():
    curves = EmotionCurves(keys=_keys((0, "sad@0.5")))
    w, i, blink = curves.sample(250, 25)
    assert (w[:, SAD] == 1).all() and blink.max() == 1.0  # automatic blinks by default


def test_documented_example_parses():
    """The example in docs/emotion-curves.md is valid and behaves as the page says."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "emotion-curves.md").read_text()
    example = page.split("```json", 1)[1].split("```", 1)[0]
    curves = parse_curves(json.loads(example))
    w, i, blink = curves.sample(150, 25)
    assert i[0] == 0 and w[0, 0] == 1
    assert (w[1:37, HAPPY] == 1).all()
    assert i[130:].allclose(torch.tensor(2 / 3)) and (w[130:, SAD] == 1).all()
    assert (blink[62:71] == 1).all()

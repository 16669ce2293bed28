"""Look parameters (refocus.params): parsing, ranges, unknown keys, layering, CLI/GIMP views."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from refocus import params
from refocus.errors import BadInputError


def test_defaults_match_declarations():
    s = params.resolve()
    for p in params.PARAMS:
        assert getattr(s, p.name) == p.default


@pytest.mark.parametrize("name,text,expected", [
    ("strength", "2.5", 2.5), ("blades", "7", 7), ("blades", 7.0, 7),
    ("keep_border", "yes", True), ("keep_border", "off", False), ("keep_border", 1, True),
    ("focus", " Face ", "face"), ("focus_point", "120, 40", (120.0, 40.0)),
    ("focus_point", "0.5 0.25", (0.5, 0.25)), ("focus_point", [3, 4], (3.0, 4.0)),
    ("aperture", "f/1.8", 1.8), ("aperture", "F2", 2.0), ("aperture", "f 5.6", 5.6), ("aperture", 4, 4.0),
    ("model", "my.onnx", "my.onnx"),
])
def test_parse_values(name, text, expected):
    assert params.BY_NAME[name].parse(text) == expected


@pytest.mark.parametrize("name,value,words", [
    ("strength", "lots", ["--strength", "'lots'", "number"]),
    ("strength", "nan", ["--strength", "number"]),
    ("strength", 25, ["--strength", "25", "0..20"]),
    ("blades", 2, ["--blades", "2", "3..16"]),
    ("blades", 6.5, ["--blades", "whole number"]),
    ("focus", "eyes", ["--focus", "'eyes'", "auto, face, point"]),
    ("keep_border", "maybe", ["--keep-border", "yes/no"]),
    ("focus_point", "1,2,3", ["--focus-point", "X,Y"]),
    ("focus_point", "-1,2", ["--focus-point"]),
    ("aperture", "f/0", ["--aperture", "f-number"]),
    ("aperture", "f/100", ["--aperture", "0.5..64"]),
    ("focus_disparity", 1.5, ["--focus-disparity", "1.5", "0..1"]),
    ("depth", "lidar", ["--depth-source", "auto, embedded"]),
])
def test_bad_values_name_the_parameter(name, value, words):
    with pytest.raises(BadInputError) as e:
        params.BY_NAME[name].parse(value)
    for w in words:
        assert w in str(e.value)
    assert isinstance(e.value, ValueError)


def test_where_prefix_names_the_key():
    with pytest.raises(BadInputError, match=r"^preset\.json: strength: 99"):
        params.resolve({"strength": 99}, where="preset.json: ")


def test_unknown_keys_list_valid_ones():
    with pytest.raises(BadInputError) as e:
        params.resolve({"strenght": 1, "focs": "auto"})
    msg = str(e.value)
    assert "unknown parameters focs, strenght" in msg
    for p in params.PARAMS:
        assert p.name in msg.split("valid:")[1]


def test_later_layers_win_and_none_does_not_override():
    preset = {"strength": 2.0, "focus": "face", "grain": 1.0}
    s = params.resolve(preset, {"strength": 0.5, "focus": None, "grain": 0})
    assert s.strength == 0.5          # explicit value wins
    assert s.focus == "face"          # None = not set: the preset's value stays
    assert s.grain == 0.0             # an explicit zero is a value, not "unset"
    assert s.shape == "circle"        # neither: the default
    with pytest.raises(Exception):
        s.strength = 3                # frozen


@pytest.mark.parametrize("preset_focus,given,expect", [
    ("face", {"focus_point": "0.1,0.5"}, "point"),          # portrait: the point is honoured
    ("subject", {"focus_point": "10,20"}, "point"),
    ("edge", {"focus_disparity": 0.4}, "disparity"),
    ("face", {"focus_disparity": 0.4}, "disparity"),
    ("band", {"focus_point": "0.5,0.3"}, "band"),           # tilt-shift: the point places the band
    ("band", {"focus_disparity": 0.4}, "disparity"),
    ("face", {"focus_point": "0.1,0.5", "focus": "face"}, "face"),   # an explicit mode stays
    ("auto", {"focus_point": "0.1,0.5"}, "auto"),           # auto uses the point already
    ("face", {"strength": 2.0}, "face"),
])
def test_explicit_focus_values_win_over_the_presets_mode(preset_focus, given, expect):
    s = params.resolve({"focus": preset_focus, "strength": 3.0}, given)
    assert s.focus == expect
    assert params.resolve({"focus": preset_focus}).focus == preset_focus


def test_settings_as_dict_round_trips():
    s = params.resolve({"focus_point": "10,20", "aperture": "f/2"})
    d = s.as_dict()
    assert set(d) == {p.name for p in params.PARAMS}
    assert params.resolve(d) == s


def test_click_options_flags_win_and_unset_is_none():
    seen = {}

    @click.command()
    @params.click_options(exclude=("model",))
    def cmd(**kw):
        seen.update(kw)

    r = CliRunner().invoke(cmd, ["--strength", "3", "--focus", "POINT", "--focus-point", "0.5,0.5",
                                 "--keep-border", "--aperture", "f/2.8"])
    assert r.exit_code == 0, r.output
    assert "model" not in seen
    assert seen["strength"] == 3.0 and seen["focus"] == "point" and seen["keep_border"] is True
    assert seen["grain"] is None and seen["shape"] is None      # not given -> None (preset decides)
    s = params.resolve({"strength": 1.0, "grain": 1.0}, seen)
    assert s.strength == 3.0 and s.grain == 1.0 and s.focus_point == (0.5, 0.5) and s.aperture == 2.8
    r = CliRunner().invoke(cmd, ["--no-keep-border"])
    assert r.exit_code == 0 and seen["keep_border"] is False
    r = CliRunner().invoke(cmd, ["--blades", "x"])
    assert r.exit_code == 2 and "--blades" in r.output
    r = CliRunner().invoke(cmd, ["--help"])
    assert "--depth-source" in r.output and "--focus-point X,Y" in r.output


def test_gimp_arguments_are_plain_and_complete():
    args = params.gimp_arguments()
    names = [a["key"] for a in args]
    assert names == [p.name for p in params.PARAMS if p.gimp]
    assert "model" not in names
    for a in args:
        assert set(a) >= {"name", "key", "kind", "label", "help", "default", "min", "max", "choices", "group"}
        assert "_" not in a["name"]
        assert a["group"] in params.GROUPS
    focus = next(a for a in args if a["key"] == "focus")
    assert "band" in focus["choices"]

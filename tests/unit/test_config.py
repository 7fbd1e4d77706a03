"""Config dataclasses: docstrings as help, type coercion, CLI overrides, JSON round-trips."""

import argparse
import dataclasses
import json

import pytest

from renshu.algos.a2c import A2CConfig
from renshu.algos.ppo import PPOConfig
from renshu.config import (
    add_config_arguments,
    check,
    coerce,
    field_docs,
    overrides_from_args,
    to_dict,
)


@dataclasses.dataclass(frozen=True)
class Base:
    alpha: float = 0.5
    """first line of a docstring
    that goes on"""
    beta: int = 3
    gamma: str = "x"
    """a string field"""


@dataclasses.dataclass(frozen=True)
class Child(Base):
    delta: tuple[int, ...] = (1, 2)
    """layer sizes"""
    eps: float | None = None
    """optional number"""
    flag: bool = False
    """a switch"""


def test_field_docs_reads_attribute_docstrings():
    docs = field_docs(PPOConfig)
    assert docs["clip_coef"] == "surrogate clipping epsilon"
    assert docs["num_envs"] == "number of environments stepped in parallel"
    assert docs["target_kl"] == (
        "stop the epochs early when the approximate KL exceeds this (None: never)"
    )
    assert set(docs) == {f.name for f in dataclasses.fields(PPOConfig)}  # every field has one
    assert set(field_docs(A2CConfig)) == {f.name for f in dataclasses.fields(A2CConfig)}
    assert field_docs(A2CConfig)["optimizer"] == "rmsprop (alpha 0.99, eps 1e-5) or adam"


def test_field_docs_joins_lines_skips_undocumented_and_inherits():
    docs = field_docs(Child)
    assert docs == {
        "alpha": "first line of a docstring that goes on",
        "gamma": "a string field",
        "delta": "layer sizes",
        "eps": "optional number",
        "flag": "a switch",
    }
    assert "beta" not in docs


def test_coerce_converts_file_values_to_field_types():
    out = coerce(Child, {"alpha": 1, "beta": "7", "delta": [64, 32], "eps": 2, "flag": "yes"})
    assert out == {"alpha": 1.0, "beta": 7, "delta": (64, 32), "eps": 2.0, "flag": True}
    assert type(out["alpha"]) is float and type(out["eps"]) is float
    assert type(out["delta"]) is tuple
    assert coerce(Child, {"delta": "128,128"}) == {"delta": (128, 128)}
    assert coerce(Child, {"delta": "16"}) == {"delta": (16,)}
    assert coerce(Child, {"eps": None}) == {"eps": None}
    assert coerce(Child, {"eps": "none"}) == {"eps": None}
    assert coerce(Child, {"flag": "off"}) == {"flag": False}
    assert coerce(Child, {"gamma": "relu"}) == {"gamma": "relu"}
    assert coerce(Child, {}) == {}


@pytest.mark.parametrize(
    "values, field",
    [
        ({"beta": 2.5}, "beta"),
        ({"beta": True}, "beta"),  # a bool is not an int here
        ({"alpha": True}, "alpha"),
        ({"alpha": "fast"}, "alpha"),
        ({"flag": 1}, "flag"),
        ({"flag": "maybe"}, "flag"),
        ({"gamma": 5}, "gamma"),
        ({"delta": ["a"]}, "delta"),
        ({"delta": [64.5]}, "delta"),
        ({"delta": [True]}, "delta"),
        ({"delta": "1.5,2"}, "delta"),
        ({"eps": [1.0]}, "eps"),
    ],
)
def test_coerce_wrong_types_name_the_field(values, field):
    with pytest.raises(ValueError, match=f"config field '{field}'"):
        coerce(Child, values)


def test_coerce_unknown_field_lists_valid_fields():
    with pytest.raises(ValueError) as e:
        coerce(PPOConfig, {"clip_coeff": 0.1, "learning_rate": 1e-3})
    msg = str(e.value)
    assert "['clip_coeff']" in msg and "PPOConfig" in msg
    for name in ("clip_coef", "learning_rate", "num_minibatches", "hidden"):
        assert name in msg


def _parse(cls, argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    return overrides_from_args(parser.parse_args(argv), cls)


def test_overrides_parse_tuples_bools_optionals_and_numbers():
    out = _parse(
        PPOConfig,
        ["--hidden", "128,128", "--anneal-lr", "false", "--norm-adv", "1", "--target-kl",
         "0.02", "--num-envs", "16", "--activation", "relu", "--learning-rate", "1e-3"],
    )  # fmt: skip
    assert out == {
        "hidden": (128, 128),
        "anneal_lr": False,
        "norm_adv": True,
        "target_kl": 0.02,
        "num_envs": 16,
        "activation": "relu",
        "learning_rate": 1e-3,
    }
    assert _parse(PPOConfig, []) == {}  # fields not given stay out (presets apply)
    assert _parse(PPOConfig, ["--hidden", "64 32 16"]) == {"hidden": (64, 32, 16)}
    assert _parse(PPOConfig, ["--target-kl", "None"]) == {"target_kl": None}
    for text, value in [("yes", True), ("on", True), ("True", True), ("0", False), ("no", False)]:
        assert _parse(PPOConfig, ["--shared-torso", text]) == {"shared_torso": value}


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--shared-torso", "maybe"], "shared_torso"),
        (["--num-envs", "8.5"], "num_envs"),
        (["--hidden", "a,b"], "hidden"),
        (["--gamma", "high"], "gamma"),
    ],
)
def test_overrides_unreadable_values_name_the_field(argv, field):
    with pytest.raises(ValueError, match=f"config field '{field}'"):
        _parse(PPOConfig, argv)


def test_help_text_comes_from_docstrings_with_defaults():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, PPOConfig)
    text = parser.format_help()
    assert "--clip-coef" in text and "surrogate clipping epsilon (default: 0.2)" in text
    assert "--hidden N,N" in text and "(default: 64,64)" in text


def test_to_dict_json_round_trip_rebuilds_the_same_config():
    config = PPOConfig(hidden=(32, 16), target_kl=0.05, anneal_lr=False)
    data = json.loads(json.dumps(to_dict(config)))
    assert data["hidden"] == [32, 16]
    assert PPOConfig(**coerce(PPOConfig, data)) == config


def test_check_names_field_value_and_reason():
    check(True, "gamma", "must lie in [0, 1]", 0.5)
    with pytest.raises(ValueError, match=r"config field 'gamma' = 2: must lie in \[0, 1\]"):
        check(False, "gamma", "must lie in [0, 1]", 2)
    with pytest.raises(ValueError, match="config field 'num_minibatches' = 3: must divide"):
        PPOConfig(num_envs=8, num_steps=32, num_minibatches=3)

"""``import renshu`` stays light, and the Gymnasium ids of the native games are the native games
everywhere renshu takes an env name (they run the batched engine)."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest

import renshu
from renshu.envs.base import FunctionalEnv
from renshu.envs.specs import GYM_IDS, NATIVE, resolve
from renshu.interop.registration import ENTRY_POINTS
from renshu.runner import RunSpec
from renshu.runner.run import build

HEAVY = ("torch", "matplotlib", "tensorboard", "ale_py", "transformers", "ray", "imageio")


def _loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which HEAVY modules and renshu ids it then has."""
    probe = (
        f"{code}\nimport json, sys, gymnasium\n"
        f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], "
        "'ids': sorted(i for i in gymnasium.registry if i.startswith('renshu/'))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_renshu_imports_no_heavy_module_and_registers_the_ids():
    got = _loaded_after("import renshu")
    assert got["heavy"] == []
    assert (
        got["ids"]
        == sorted(ENTRY_POINTS)
        == [
            "renshu/CartPole-v0",
            "renshu/Game2048-v0",
            "renshu/GridWorld-v0",
        ]
    )


def test_the_lazy_names_load_on_first_use():
    got = _loaded_after("import renshu\nrenshu.make_env")
    assert "torch" in got["heavy"]
    assert renshu.FunctionalEnv is FunctionalEnv
    from renshu.envs.registry import make_env

    assert renshu.make_env is make_env
    assert {"FunctionalEnv", "TensorEnv", "make_env"} <= set(dir(renshu))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        renshu.nothing  # noqa: B018


def test_the_docstring_names_the_three_ids():
    for gym_id in ENTRY_POINTS:
        assert gym_id in renshu.__doc__


@pytest.mark.parametrize("gym_id", sorted(ENTRY_POINTS))
def test_renshu_ids_resolve_to_the_native_specs(gym_id):
    assert set(GYM_IDS) == set(ENTRY_POINTS)  # every registered id resolves, and only those
    spec = resolve(gym_id)
    assert spec is NATIVE[GYM_IDS[gym_id]]
    assert spec.family == NATIVE[spec.name].family
    # The vector entry point builds the same native game.
    envs = gym.make_vec(gym_id, num_envs=4)
    assert isinstance(envs.unwrapped.env, FunctionalEnv)
    assert envs.unwrapped.env.game.name == spec.name
    envs.close()


def test_a_run_on_a_renshu_id_trains_the_batched_engine():
    spec = RunSpec(algo="ppo", env="renshu/Game2048-v0", steps=256, seed=0).resolved()
    assert spec.env == "game2048"  # what config.json records
    values = dict(num_envs=8, num_steps=16, hidden=[16], num_minibatches=2, update_epochs=1)
    algo, collect, _ = build(spec, values, device="cpu")
    assert isinstance(algo.env, FunctionalEnv)
    assert algo.env.num_envs == 8 and algo.env.game.name == "game2048"
    batch = collect(0.0)
    assert batch.env_steps == 8 * 16


def test_a_near_miss_of_a_renshu_id_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown environment 'renshu/Game2048-v9'"):
        resolve("renshu/Game2048-v9")

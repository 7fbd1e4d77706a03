"""The Algorithm contract, parametrized over every registered algorithm (the way SB3's tests
run one test over all of its algorithms): it declares the protocol, runs through the runner,
is deterministic, saves and loads, resumes exactly, collects the same from its acting state,
and never takes an illegal action.
"""

import csv
import io

import pytest
import torch

from renshu.algos import ALGORITHMS, get_algorithm
from renshu.algos.base import Algorithm, Batch, update
from renshu.envs.registry import make_env
from renshu.runner import RunSpec, Trainer, resume_run, start_run
from renshu.runner.checkpoint import LATEST, load_checkpoint

# A small config per algorithm and the env it runs on here (algorithms for 2048 only use it).
SMALL = {
    "ppo": ("cartpole", dict(num_envs=4, num_steps=16, hidden=[16], update_epochs=2,
                             num_minibatches=2)),
    "a2c": ("cartpole", dict(num_envs=4, num_steps=8, hidden=[16])),
    "grpo": ("cartpole", dict(group_size=4, num_groups=2, hidden=[16], max_rollout_steps=64)),
    "dqn": ("cartpole", dict(num_envs=4, train_freq=16, gradient_steps=2, batch_size=16,
                             hidden=[16], learning_starts=64, buffer_size=500,
                             target_update_interval=64)),
    "ntuple": ("game2048", dict(num_envs=16, tuples="0,1,2,3;0,4,8,12", learning_rate=0.1)),
}  # fmt: skip
WALL = ("wall_seconds", "charts/steps_per_second")


@pytest.fixture(autouse=True)
def _no_final_artefacts(monkeypatch):
    """Plots and GIFs are tested elsewhere; here they would only cost time."""
    monkeypatch.setattr(Trainer, "finish", lambda self: None)


def _spec(name: str, **kw) -> RunSpec:
    env, _ = SMALL[name]
    values = dict(algo=name, env=env, steps=1024, eval_every=512, eval_episodes=4,
                  checkpoint_seconds=1e9, animation=False)  # fmt: skip
    return RunSpec(**{**values, **kw})


def _build(name: str, env_name: str | None = None, seed: int = 0, **kw) -> Algorithm:
    env, config = SMALL[name]
    cls = get_algorithm(name)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    cfg = cls.config_class(**values)
    return cls(make_env(env_name or env, num_envs=cfg.num_envs, seed=seed), cfg, seed=seed, **kw)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL} for r in csv.DictReader(f)]


def test_every_algorithm_has_a_case():
    assert set(SMALL) == set(ALGORITHMS)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_config_fields_do_not_clash_with_run_flags(name):
    """Both become `renshu train` flags: one name may not mean two things."""
    from dataclasses import fields

    from renshu.runner.run import run_flag_fields

    config = {f.name for f in fields(get_algorithm(name).config_class)}
    assert not config & {f.name for f in run_flag_fields()}


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_declares_the_protocol(name):
    cls = get_algorithm(name)
    assert cls.name == name
    assert isinstance(cls.takes_encoder, bool)
    algo = _build(name)
    assert isinstance(algo, Algorithm)
    assert algo.steps_per_update >= 1 and algo.env_steps == 0
    batch = algo.collect(0.0)
    assert isinstance(batch, Batch)
    assert batch.env_steps >= algo.steps_per_update
    assert algo.env_steps == 0  # collecting counts nothing; learning counts the batch
    metrics = algo.learn(batch, 0.0)
    assert algo.env_steps == batch.env_steps
    assert all(isinstance(v, (int, float)) for v in metrics.values()), metrics
    assert not batch.episodes or set(batch.episodes) >= {"return", "length"}
    assert type(batch).concat([batch]).env_steps == batch.env_steps


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_same_seed_same_run(name, tmp_path):
    _, a = start_run(_spec(name), SMALL[name][1], run_dir=tmp_path / "a", progress=False)
    _, b = start_run(_spec(name), SMALL[name][1], run_dir=tmp_path / "b", progress=False)
    assert a["env_steps"] == b["env_steps"] >= 1024 and a["last_eval"] == b["last_eval"]
    assert _rows(tmp_path / "a/metrics.csv") == _rows(tmp_path / "b/metrics.csv")
    assert (tmp_path / "a/episodes.csv").read_bytes() == (tmp_path / "b/episodes.csv").read_bytes()


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_interrupted_run_resumes_exactly(name, tmp_path):
    _, ref = start_run(_spec(name), SMALL[name][1], run_dir=tmp_path / "ref", progress=False)
    _, cut = start_run(_spec(name), SMALL[name][1], run_dir=tmp_path / "cut", progress=False,
                       stop_after_updates=3)  # fmt: skip
    assert cut["status"] == "interrupted" and cut["updates"] == 3
    assert load_checkpoint(tmp_path / "cut" / LATEST)["runner"]["updates"] == 3
    resumed = resume_run(tmp_path / "cut", progress=False)
    assert resumed["env_steps"] == ref["env_steps"] and resumed["last_eval"] == ref["last_eval"]
    assert _rows(tmp_path / "cut/metrics.csv") == _rows(tmp_path / "ref/metrics.csv")
    assert (tmp_path / "cut/episodes.csv").read_bytes() == (
        tmp_path / "ref/episodes.csv"
    ).read_bytes()


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_state_dict_round_trip_continues_the_same(name):
    """A copy built with another seed that loads the state dict acts and learns the same."""
    a = _build(name)
    for i in range(3):
        update(a, 0.1 * i)
    b = _build(name, seed=5)
    saved = io.BytesIO()  # through bytes, as a checkpoint goes (no tensor shared with a)
    torch.save({"algo": a.state_dict(), "env": a.env.state_dict()}, saved)
    saved.seek(0)
    data = torch.load(saved, weights_only=True)
    b.load_state_dict(data["algo"])
    b.env.load_state_dict(data["env"])
    obs, info = make_env(SMALL[name][0], num_envs=16, seed=1).reset(seed=1)
    assert torch.equal(a.act(obs, info["action_mask"]), b.act(obs, info["action_mask"]))
    _, ma = update(a, 0.5)
    _, mb = update(b, 0.5)
    assert ma == mb and a.env_steps == b.env_steps


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_a_collecting_copy_acts_like_the_learner(name):
    """What a Ray worker does: a copy built with learner=False, given the learner's acting
    state, acts as the learner does; two slices of its collection join into one batch."""
    learner = _build(name)
    update(learner, 0.3)
    worker = _build(name, seed=2, learner=False)
    worker.load_acting_state(learner.acting_state())
    obs, info = make_env(SMALL[name][0], num_envs=16, seed=1).reset(seed=1)
    mask = info["action_mask"]
    assert torch.equal(worker.act(obs, mask), learner.act(obs, mask))
    a, b = worker.collect(0.3), worker.collect(0.3)
    joined = type(a).concat([a, b])
    assert joined.env_steps == a.env_steps + b.env_steps
    for key in a.episodes:
        assert joined.episodes[key].numel() == a.episodes[key].numel() + b.episodes[key].numel()


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_never_takes_an_illegal_action(name):
    """On 2048, where moves that change nothing are illegal: neither acting nor collecting
    ever picks one (stepped anyway, such a move would be a silent no-op)."""
    algo = _build(name, env_name="game2048")
    env = algo.env
    step = env.step
    illegal = []

    def checked(actions):
        legal = env.game.legal_actions(env.state)
        illegal.append(int((~legal.gather(1, actions.unsqueeze(1))).sum()))
        return step(actions)

    env.step = checked
    for i in range(4):
        update(algo, 0.25 * i)
    assert len(illegal) >= 4 and sum(illegal) == 0
    obs, info = make_env("game2048", num_envs=256, seed=3).reset(seed=3)
    mask = info["action_mask"]
    assert not bool(mask.all())  # some moves are illegal on these boards
    for deterministic in (True, False):
        actions = algo.act(obs, mask, deterministic=deterministic)
        assert bool(mask.gather(1, actions.unsqueeze(1)).all())

"""`renshu tune`: Optuna (TPE, median pruning) over real CartPole runs at a tiny budget, the
resume of an interrupted study, and specs refused before any trial starts."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

optuna = pytest.importorskip("optuna")

from renshu import cli  # noqa: E402
from renshu.tune import (  # noqa: E402
    SPEC_FILE,
    STUDY_FILE,
    _optimize,
    _study,
    load_spec,
    prepare,
    run_tune,
)

SPEC = """
algo = "ppo"
env = "cartpole"
search = "optuna"
trials = {trials}
seed = 0
sampler_seed = 3
startup_trials = 2
warmup_evals = 1

[run]
steps = 2048
eval_every = 512
eval_episodes = 5
threads = 1

[config]
num_envs = 4
num_steps = 32
hidden = [16]
update_epochs = 2

[params]
learning_rate = {{ low = 1e-6, high = 3e-2, log = true }}
num_minibatches = {{ choices = [1, 4] }}
"""


def _write(tmp_path, text: str, name: str = "tune.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _states(out):
    return {int(r["trial"]): r["state"] for r in _rows(out / "trials.csv")}


def test_a_tiny_cartpole_tuning_prunes_and_summarises(tmp_path, capsys):
    spec_path = _write(tmp_path, SPEC.format(trials=5))
    out = tmp_path / "out"
    assert cli.main(["tune", str(spec_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Parameter importance" in printed and str(out) in printed

    rows = _rows(out / "trials.csv")
    assert len(rows) == 5 and (out / STUDY_FILE).is_file() and (out / SPEC_FILE).is_file()
    states = [r["state"] for r in rows]
    assert states.count("complete") >= 2 and states.count("pruned") >= 1, states
    for r in rows:  # each trial is a normal run directory whose numbers the table holds
        run_dir = out / "trials" / f"t{r['trial']}"
        summary = json.loads((run_dir / "summary.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())["algo_config"]
        assert config["learning_rate"] == pytest.approx(float(r["learning_rate"]))
        assert config["num_minibatches"] == int(r["num_minibatches"])
        assert 1e-6 <= config["learning_rate"] <= 3e-2
        if r["state"] == "complete":
            assert summary["status"] == "finished" and summary["env_steps"] == 2048
            assert float(r["value"]) == pytest.approx(summary["last_eval"]["mean_return"])
            assert int(r["evaluations"]) == 4
        else:  # pruned at an evaluation: stopped before its budget
            assert summary["status"] == "stopped" and summary["env_steps"] < 2048
            assert 2 <= int(r["evaluations"]) < 4  # never at its first (warmup_evals = 1)
    values = [float(r["value"]) for r in rows if r["state"] == "complete"]
    assert float(rows[0]["value"]) == max(values)  # best first
    text = (out / "summary.md").read_text()
    assert "| learning_rate |" in text and "| num_minibatches |" in text  # both ranked

    # The same command again: the study is complete, nothing runs again.
    study = optuna.load_study(study_name="ppo-cartpole", storage=f"sqlite:///{out / STUDY_FILE}")
    before = len(study.trials)
    run_tune(spec_path, out=out)
    assert len(study.trials) == before


def test_an_interrupted_study_resumes_and_reruns_the_cut_trial(tmp_path):
    text = SPEC.format(trials=3).replace("warmup_evals = 1", "pruner = 'none'")
    spec_path = _write(tmp_path, text)
    spec, out = prepare(spec_path, tmp_path / "out", None)
    _optimize(dataclasses.replace(spec, trials=2), out, None)  # two trials, then...
    study = _study(spec, out)
    cut = study.ask()  # ...the process dies inside the third: the study holds it as running
    cut_params = {p.name: p.suggest(cut) for p in spec.params.values()}
    finished = {k: (out / "trials" / f"t{k}" / "summary.json").read_text() for k in (0, 1)}

    assert cli.main(["tune", "--resume", str(out)]) == 0
    assert _states(out) == {0: "complete", 1: "complete", 2: "interrupted", 3: "complete"}
    trials = optuna.load_study(
        study_name="ppo-cartpole", storage=f"sqlite:///{out / STUDY_FILE}"
    ).trials
    assert trials[3].params == trials[2].params  # the cut trial ran again, as it was
    assert trials[3].params["num_minibatches"] == cut_params["num_minibatches"]
    for k, text in finished.items():  # finished trials are kept, not run again
        assert (out / "trials" / f"t{k}" / "summary.json").read_text() == text
    # Resuming a complete study runs nothing more.
    run_tune(resume=out)
    assert len(_states(out)) == 4


BAD = [
    ("learning_rte = 1e-3\n", "unknown key\\(s\\) \\['learning_rte'\\]"),
    ("[params]\nlearning_rate = { low = 1e-2, high = 1e-3 }\n", "is empty"),
    ("[params]\nlearning_rate = { low = 0.0, high = 1e-3, log = true }\n", "needs low > 0"),
    ("[params]\nwarp_factor = { low = 1, high = 9 }\n", "unknown config field\\(s\\)"),
    ("[params]\nnum_steps = { choices = [] }\n", "non-empty list"),
    ("[params]\nlearning_rate = { low = 1e-4, high = 1e-3, scale = 2 }\n", "unknown key"),
    ("[params]\nnum_steps = { low = 0, high = 64 }\n", "params.num_steps = 0"),
    ("[run]\nstepz = 5\n[params]\nnum_steps = { choices = [8] }\n", "unknown run setting"),
]


@pytest.mark.parametrize("tail, match", BAD)
def test_bad_specs_are_refused_before_any_trial(tmp_path, tail, match, capsys):
    head = 'algo = "ppo"\nenv = "cartpole"\n'
    if not tail.startswith("["):
        head += "[params]\nlearning_rate = { low = 1e-4, high = 1e-3 }\n"
        head, tail = tail + head, ""  # a top-level key goes before the tables
    spec_path = _write(tmp_path, head + tail)
    with pytest.raises(ValueError, match=match):
        load_spec(spec_path)
    out = tmp_path / "out"
    assert cli.main(["tune", str(spec_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("renshu tune: error:")
    assert not out.exists()  # refused before anything was made


def test_grid_search_files_point_to_sweep(tmp_path):
    text = 'algo = "ppo"\nenv = "cartpole"\nsearch = "grid"\n[params]\nnum_steps = [8, 16]\n'
    with pytest.raises(ValueError, match="renshu sweep"):
        load_spec(_write(tmp_path, text))


def test_jobs_processes_share_the_study_and_draw_different_parameters(tmp_path):
    text = SPEC.format(trials=3).replace("warmup_evals = 1", "pruner = 'none'")
    out = run_tune(_write(tmp_path, text), out=tmp_path / "out", jobs=2)
    rows = _rows(out / "trials.csv")
    assert len(rows) == 3 and {r["state"] for r in rows} == {"complete"}
    assert len({r["learning_rate"] for r in rows}) == 3  # each process has its own TPE seed


def test_a_sweep_file_with_search_optuna_is_a_tuning_file(tmp_path):
    common = 'algo = "ppo"\nenv = "cartpole"\nsearch = "optuna"\n'
    sweep = common + (
        "seeds = [4]\nsamples = 6\nsample_seed = 2\nmax_concurrent = 2\n[params]\n"
        "learning_rate = { loguniform = [1e-4, 1e-2] }\nclip_coef = { uniform = [0.1, 0.3] }\n"
        "num_steps = { randint = [16, 64] }\nnum_minibatches = { choice = [1, 4] }\n"
    )
    tuning = common + (
        "seed = 4\ntrials = 6\nsampler_seed = 2\njobs = 2\n[params]\n"
        "learning_rate = { low = 1e-4, high = 1e-2, log = true }\n"
        "clip_coef = { low = 0.1, high = 0.3 }\nnum_steps = { low = 16, high = 64 }\n"
        "num_minibatches = { choices = [1, 4] }\n"
    )
    got = load_spec(_write(tmp_path, sweep, "sweep.toml"))
    assert got == load_spec(_write(tmp_path, tuning))
    assert got.params["num_steps"].kind == "int" and got.params["clip_coef"].kind == "float"
    with pytest.raises(ValueError, match="one seed"):
        load_spec(_write(tmp_path, sweep.replace("[4]", "[0, 1]"), "two.toml"))
    with pytest.raises(ValueError, match="`trials` or `samples`, not both"):
        load_spec(
            _write(tmp_path, sweep.replace("samples = 6", "samples = 6\ntrials = 6"), "b.toml")
        )

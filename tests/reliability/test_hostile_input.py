"""Nothing a user types ends in a traceback: every subcommand and every flag (every algorithm's
config flags too) with hostile values (empty, negative, zero, huge, NaN, inf, wrong type,
unknown choice, missing or unwritable paths, unicode) either is accepted or exits with status 2
and one line ``renshu <cmd>: error: ...`` naming the flag (or the value at fault).

Table-driven and in-process (``renshu.cli.main(argv)``). Where a value is accepted, the work it
would start is cut off at the command's last step (``Trainer.train``, ``evaluate``, ``play``,
``measure_throughput``, the game's terminal loop, ``run_sweep``, ``run_tune``: renshu's own
functions) once every check before it has run, including building the run (config checks,
env and network construction)."""

from __future__ import annotations

import argparse
import io
import os
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from renshu import cli
from renshu.algos import algorithm_names
from renshu.runner import RunSpec, start_run

HOSTILE = ("", "-1", "0", "1e400", "1" + "0" * 30, "nan", "inf", "-inf", "abc", "0.5", "ünï🙂",
           "/proc/renshu/x", "/dev/null/x")  # fmt: skip
# Values no numeric flag may accept.
NEVER_NUMBER = ("nan", "abc", "ünï🙂", "1e400")
BASE_ENV = {"ntuple": "game2048"}  # an env each algorithm trains on (default cartpole)


class Accepted(Exception):
    """Raised by the command's last step: every check passed."""


def _accept(*args, **kwargs):
    raise Accepted


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("hostile") / "run"
    spec = RunSpec(algo="a2c", env="cartpole", steps=64, eval_episodes=2, animation=False)
    start_run(spec, dict(num_envs=4, num_steps=8, hidden=[16]), run_dir=run, progress=False)
    return run


@pytest.fixture
def sinks(monkeypatch, tmp_path):
    import renshu.distributed.sweep
    import renshu.envs.throughput
    import renshu.play
    import renshu.runner.evaluate
    import renshu.runner.loop
    import renshu.tune

    monkeypatch.setattr(renshu.runner.loop.Trainer, "train", _accept)
    monkeypatch.setattr(renshu.runner.evaluate, "evaluate", _accept)
    monkeypatch.setattr(renshu.runner.evaluate, "play", _accept)
    monkeypatch.setattr(renshu.envs.throughput, "measure_throughput", _accept)
    monkeypatch.setattr(renshu.play, "play_2048", _accept)
    monkeypatch.setattr(renshu.distributed.sweep, "run_sweep", _accept)
    monkeypatch.setattr(renshu.tune, "run_tune", _accept)
    monkeypatch.chdir(tmp_path)  # a relative path a value names lands here
    monkeypatch.delenv("RENSHU_DEBUG", raising=False)


def _call(argv: list[str]) -> tuple[str, int | None, str]:
    """("accepted" | "exit", status, stderr) of ``renshu ARGV``; any other exception fails."""
    err, out = io.StringIO(), io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(out):
            code = cli.main(argv)
    except Accepted:
        return "accepted", None, err.getvalue()
    except SystemExit as e:  # argparse
        return "exit", e.code, err.getvalue()
    except Exception:  # what a user would see as a traceback
        return "exit", None, err.getvalue() + "Traceback\n" + traceback.format_exc()
    return "exit", code, err.getvalue()


def _flags(command: str, algo: str = "ppo") -> list[argparse.Action]:
    parser = cli.build_parser(algo if command == "train" else None)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        a for a in sub.choices[command]._actions
        if not isinstance(a, argparse._HelpAction) and a.nargs != 0
    ]  # fmt: skip


def _names(action: argparse.Action) -> list[str]:
    names = list(action.option_strings)
    dest = action.dest.split("_", 1)[1] if action.dest.startswith(("cfg_", "run_")) else action
    names += [action.dest, dest if isinstance(dest, str) else action.dest]
    if action.metavar and not action.option_strings:
        names.append(str(action.metavar))
    return [n for n in names if n]


def _check(command: str, argv: list[str], action: argparse.Action, value: str, base_ok: bool):
    """None, or what is wrong with ``renshu ARGV``'s answer."""
    outcome, code, err = _call(argv)
    where = f"renshu {' '.join(argv)}"
    if "Traceback" in err:
        return f"{where}: traceback\n{err}"
    if outcome == "accepted" or code == 0:
        numeric = action.option_strings and str(action.metavar) in ("INT", "FLOAT")
        numeric = numeric or getattr(action.type, "__name__", "") in (
            "int", "float", "_positive_int", "_positive_float",
        )  # fmt: skip
        if numeric and value in NEVER_NUMBER:
            return f"{where}: accepted {value!r}"
        return None
    if code != 2:
        return f"{where}: exit status {code}\n{err}"
    lines = [line for line in err.splitlines() if line.startswith(f"renshu {command}: error:")]
    if len(lines) != 1:
        return f"{where}: expected one error line\n{err}"
    if base_ok:  # the command without this value is accepted: the error is about the value
        line = lines[0]
        named = any(n in line for n in _names(action)) or (value and value in line)
        if not named and (value or action.option_strings):  # ("" as RUN reads as ".")
            flag = action.option_strings or action.dest
            return f"{where}: the error does not name {flag}: {line}"
    return None


def _cases(command: str, base: list[str], positional: dict[str, int], algo: str = "ppo"):
    """(argv, action, value) for every flag of ``command`` and every hostile value."""
    for action in _flags(command, algo):
        for value in HOSTILE:
            if action.option_strings:
                yield [*base, action.option_strings[0], value], action, value
            elif action.dest in positional:
                argv, at = list(base), positional[action.dest]
                argv[at : at + 1] = [value]
                yield argv, action, value


def _run_table(command: str, base: list[str], positional: dict[str, int], algo: str = "ppo"):
    """(whether ``base`` alone is accepted, cases run, what went wrong)."""
    outcome, code, err = _call([a.replace("{n}", "base") for a in base])
    assert "Traceback" not in err, err
    base_ok = outcome == "accepted" or code == 0
    problems, count = [], 0
    for argv, action, value in _cases(command, base, positional, algo):
        argv = [a.replace("{n}", str(count)) for a in argv]  # (a fresh run directory each)
        problem = _check(command, argv, action, value, base_ok)
        if problem:
            problems.append(problem)
        count += 1
    return base_ok, count, problems


@pytest.mark.parametrize("algo", algorithm_names())
def test_train_every_flag_of_every_algorithm(algo, sinks, tmp_path):
    env = BASE_ENV.get(algo, "cartpole")
    base = ["train", algo, env, "--run-dir", str(tmp_path / "r{n}"), "--no-progress"]
    base_ok, count, problems = _run_table("train", base, {"algo": 1, "env": 2}, algo)
    assert base_ok and count > 300
    assert problems == [], "\n".join(problems)


def test_eval_record_plot_every_flag(sinks, run_dir, tmp_path):
    problems = []
    for command, base, positional in [
        ("eval", ["eval", str(run_dir)], {"run": 1}),
        ("record", ["record", str(run_dir), "--out", str(tmp_path / "o.gif")], {"run": 1}),
        ("plot", ["plot", str(run_dir), "--out", str(tmp_path / "p.png")], {"runs": 1}),
    ]:
        base_ok, _, found = _run_table(command, base, positional)
        assert base_ok, command
        problems += found
    assert problems == [], "\n".join(problems)


def test_envs_play_bench_every_flag(sinks):
    problems = []
    for command, base, positional in [
        ("envs", ["envs"], {"env": 1}),
        ("play", ["play"], {}),
        ("bench", ["bench", "cartpole", "--seconds", "0.01"], {"env": 1}),
    ]:
        base_ok, _, found = _run_table(command, base, positional)
        assert base_ok, command
        problems += found
    assert problems == [], "\n".join(problems)


def test_sweep_tune_every_flag(sinks, tmp_path):
    problems = []
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "x"\n')
    for command, base, positional in [
        ("sweep", ["sweep", str(spec)], {"spec": 1}),
        ("tune", ["tune", str(spec)], {"spec": 1}),
    ]:
        base_ok, _, found = _run_table(command, base, positional)
        assert base_ok, command
        problems += found
    assert problems == [], "\n".join(problems)


def test_unwritable_outputs_are_one_line(sinks, run_dir, tmp_path, monkeypatch):
    import renshu.runner.evaluate

    monkeypatch.undo()  # record for real: its write is what fails
    monkeypatch.chdir(tmp_path)
    for out in ("/proc/x.gif", "/sys/x.gif", str(tmp_path / "missing" / "x.gif")):
        outcome, code, err = _call(["record", str(run_dir), "--out", out, "--max-steps", "3"])
        if out.startswith(str(tmp_path)):  # a missing folder is made
            assert code == 0, err
            continue
        assert code == 2 and "Traceback" not in err, err
        assert f"renshu record: error: cannot write {out}:" in err
    assert renshu.runner.evaluate.evaluate.__name__ == "evaluate"
    assert os.path.isfile(tmp_path / "missing" / "x.gif")
    outcome, code, err = _call(["plot", str(run_dir), "--out", "/sys/x.png"])
    assert code == 2 and "Traceback" not in err, err
    assert "renshu plot: error: cannot write /sys/x.png:" in err
    # a tuning directory that cannot be made: one line naming it, before any trial runs
    spec = tmp_path / "tune.toml"
    spec.write_text(TUNE_SPEC)
    for out, reason in [("/proc/renshu/x", "/proc/renshu: No such file or directory"),
                        ("/dev/null/x", "/dev/null/x: Not a directory (ENOTDIR)"),
                        ("/sys/x", "/sys/x: ")]:  # fmt: skip
        outcome, code, err = _call(["tune", str(spec), "--out", out])
        assert code == 2 and "Traceback" not in err, err
        assert err.startswith(f"renshu tune: error: {reason}"), err
        assert len(err.strip().splitlines()) == 1, err


TUNE_SPEC = """
algo = "ppo"
env = "cartpole"
search = "optuna"
trials = 1
[run]
steps = 256
[params]
learning_rate = { low = 1e-4, high = 1e-2, log = true }
"""

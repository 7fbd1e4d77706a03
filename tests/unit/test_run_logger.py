"""RunLogger: CSV files that grow, survive kills and resume; TensorBoard scalars read back."""

import re
import sys

import pytest
import torch

from renshu.runner.logging import RunLogger, read_csv


def _text(path):
    return path.read_text(encoding="utf-8")


def _scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_metrics_header_grows_and_missing_values_are_empty(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log_iteration(100, 1.5, {"loss/policy": 0.25, "train/approx_kl": 0.01})
        # Written and flushed before the next call (a killed process leaves a valid file).
        assert _text(tmp_path / "metrics.csv") == (
            "env_steps,wall_seconds,loss/policy,train/approx_kl\n100,1.5,0.25,0.01\n"
        )
        log.log_iteration(200, 3.0, {"loss/policy": None, "eval/mean_return": 7.5})
        log.log_iteration(300, 4.5, {"train/approx_kl": float("nan"), "loss/policy": -1})
    assert _text(tmp_path / "metrics.csv") == (
        "env_steps,wall_seconds,loss/policy,train/approx_kl,eval/mean_return\n"
        "100,1.5,0.25,0.01,\n"
        "200,3.0,,,7.5\n"
        "300,4.5,-1,,\n"
    )
    assert read_csv(tmp_path / "metrics.csv") == {
        "env_steps": [100.0, 200.0, 300.0],
        "wall_seconds": [1.5, 3.0, 4.5],
        "loss/policy": [0.25, None, -1.0],
        "train/approx_kl": [0.01, None, None],
        "eval/mean_return": [None, 7.5, None],
    }


def test_metrics_accept_scalar_tensors_and_reject_reserved_keys(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log_iteration(8, 0.5, {"loss/value": torch.tensor(12.3), "x": torch.tensor(3)})
        with pytest.raises(ValueError, match="env_steps"):
            log.log_iteration(9, 0.6, {"env_steps": 1.0})
        with pytest.raises(ValueError, match="single number"):
            log.log_iteration(9, 0.6, {"loss/value": torch.zeros(2)})
    assert _text(tmp_path / "metrics.csv").splitlines() == [
        "env_steps,wall_seconds,loss/value,x",
        "8,0.5,12.3,3",
    ]


def test_episodes_rows_extras_and_empty_batches(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log_episodes(64, {"return": torch.tensor([]), "length": torch.tensor([])})
        assert _text(tmp_path / "episodes.csv") == "env_steps,return,length\n"
        log.log_episodes(
            128,
            {
                "return": torch.tensor([12.3, -1.0]),
                "length": torch.tensor([7, 9]),
                "score": torch.tensor([1024, 36]),
                "max_tile": torch.tensor([128, 8]),
            },
        )
        log.log_episodes(192, {"return": torch.tensor([2.5], dtype=torch.float64), "length": [3]})
        with pytest.raises(ValueError, match="equal lengths"):
            log.log_episodes(256, {"return": torch.zeros(2), "length": torch.zeros(3)})
        with pytest.raises(ValueError, match="1-D"):
            log.log_episodes(256, {"return": torch.zeros(2, 2)})
    assert _text(tmp_path / "episodes.csv").splitlines() == [
        "env_steps,return,length,score,max_tile",
        "128,12.3,7,1024,128",
        "128,-1,9,36,8",
        "192,2.5,3,,",
    ]
    table = read_csv(tmp_path / "episodes.csv")
    assert table["return"] == pytest.approx([12.3, -1.0, 2.5])
    assert table["score"] == [1024.0, 36.0, None]


def _write_steps(run_dir, steps, resume_step=None):
    with RunLogger(run_dir, resume_step=resume_step, tensorboard=False) as log:
        for step in steps:
            log.log_iteration(step, step / 100, {"loss/policy": step / 1000})
            log.log_episodes(step, {"return": torch.tensor([1.0, 2.0]), "length": [5, 6]})


def test_resume_keeps_exactly_the_rows_up_to_the_step(tmp_path):
    _write_steps(tmp_path, [100, 200, 300, 400, 500])
    _write_steps(tmp_path, [400, 500], resume_step=300)
    metrics = read_csv(tmp_path / "metrics.csv")
    episodes = read_csv(tmp_path / "episodes.csv")
    assert metrics["env_steps"] == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert metrics["loss/policy"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert episodes["env_steps"] == [100.0, 100.0, 200.0, 200.0, 300.0, 300.0] + [
        400.0,
        400.0,
        500.0,
        500.0,
    ]
    # resume_step=0 keeps nothing but the header; no resume_step keeps everything and appends.
    RunLogger(tmp_path, resume_step=0, tensorboard=False).close()
    assert _text(tmp_path / "metrics.csv") == "env_steps,wall_seconds,loss/policy\n"
    _write_steps(tmp_path, [100])
    _write_steps(tmp_path, [200])
    assert read_csv(tmp_path / "metrics.csv")["env_steps"] == [100.0, 200.0]


def test_half_written_last_line_is_ignored_and_repaired(tmp_path):
    _write_steps(tmp_path, [100, 200])
    with open(tmp_path / "metrics.csv", "a", encoding="utf-8") as f:
        f.write("300,3.0,0.")  # killed in the middle of a row
    assert read_csv(tmp_path / "metrics.csv")["env_steps"] == [100.0, 200.0]
    _write_steps(tmp_path, [300])
    assert _text(tmp_path / "metrics.csv").splitlines()[-2:] == ["200,2.0,0.2", "300,3.0,0.3"]


def test_foreign_csv_is_not_overwritten(tmp_path):
    (tmp_path / "metrics.csv").write_text("name,value\na,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a renshu log"):
        RunLogger(tmp_path, tensorboard=False)
    assert _text(tmp_path / "metrics.csv") == "name,value\na,1\n"


def test_log_text_appends_timestamped_lines(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.log_text("started")
        log.log_text("two\nlines")
    lines = _text(tmp_path / "log.txt").splitlines()
    stamp = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} "
    assert [re.sub(stamp, "", line) for line in lines] == ["started", "two", "lines"]
    assert all(re.match(stamp, line) for line in lines)
    with pytest.raises(RuntimeError, match="closed"):
        log.log_text("after close")


def test_tensorboard_scalars_and_resume_purge(tmp_path):
    with RunLogger(tmp_path) as log:
        for step in (100, 200, 300):
            log.log_iteration(step, 1.0, {"loss/policy": step / 10, "eval/mean_return": None})
        log.log_episodes(300, {"return": torch.tensor([1.0, 4.0]), "score": torch.tensor([8, 16])})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert _scalars(tmp_path, "loss/policy") == [(100, 10.0), (200, 20.0), (300, 30.0)]
    assert _scalars(tmp_path, "episode/return") == [(300, 2.5)]
    assert _scalars(tmp_path, "episode/score") == [(300, 12.0)]

    # Resuming from step 200: the old step-300 event is purged, the new one replaces it.
    with RunLogger(tmp_path, resume_step=200) as log:
        log.log_iteration(300, 2.0, {"loss/policy": -1.0})
    assert _scalars(tmp_path, "loss/policy") == [(100, 10.0), (200, 20.0), (300, -1.0)]


def test_tensorboard_can_be_disabled_and_missing_package_names_the_fix(tmp_path, monkeypatch):
    RunLogger(tmp_path / "off", tensorboard=False).close()
    assert not (tmp_path / "off" / "tensorboard").exists()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        RunLogger(tmp_path / "on")

"""Hyperparameter tuning with Optuna: TPE sampling, median pruning on the periodic evaluations.

A tuning is described by a TOML file (a sweep file with ``search = "optuna"``)::

    algo = "ppo"
    env = "cartpole"
    search = "optuna"          # optional here; says what the file is
    trials = 20                # trials in the study (resuming runs the ones left)
    seed = 0                   # the seed of every trial's run (same games for every config)
    sampler_seed = 0           # TPE's seed
    metric = "final"           # final: the last evaluation's mean return; best: the best one
    pruner = "median"          # median (Optuna's MedianPruner) or none
    startup_trials = 3         # trials never pruned, so that the median means something
    warmup_evals = 1           # evaluations of a trial before it may be pruned
    jobs = 1                   # trials at once, each in its own process

    [run]                      # run settings of every trial (the `renshu train` flags)
    steps = 50_000
    eval_every = 5_000         # the pruner's check points: set it, or there are ten

    [config]                   # algorithm config fields fixed for the whole study
    num_envs = 8

    [params]                   # the fields searched
    learning_rate = { low = 1e-5, high = 1e-2, log = true }
    num_steps = { low = 16, high = 128, step = 16 }      # ints when low and high are ints
    hidden = { choices = [[64], [64, 64]] }

Every trial is a normal run directory (``OUT/trials/t<k>``). The study lives in
``OUT/study.db`` (SQLite), so a tuning that was stopped (Ctrl-C, a killed process) resumes
with the same command or ``renshu tune --resume OUT``: finished and pruned trials are kept,
a trial that was cut off runs again with its parameters. At the end ``OUT/summary.md`` and
``OUT/trials.csv`` hold every trial's parameters, state and returns, best first, and Optuna's
parameter importances (fANOVA).

Backends: ``local`` (default) runs the trials one after another in this process, or ``jobs``
processes sharing the study; ``ray`` runs them as Ray Tune trials with Ray's Optuna searcher
(the same study file) and Ray's median stopping rule.

A sweep file (:mod:`renshu.distributed.sweep`) with ``search = "optuna"`` is a tuning file as
it is: ``samples``, ``sample_seed``, ``max_concurrent`` and a one-seed ``seeds`` mean
``trials``, ``sampler_seed``, ``jobs`` and ``seed``, and its distributions (``loguniform``,
``uniform``, ``randint``, ``choice``) the ranges and choices above.

Everything in the file is checked before any trial starts: an unknown key, a range that is
empty, or a parameter the algorithm does not have is one ValueError naming it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import multiprocessing
import re
import shutil
from pathlib import Path
from typing import Any

from renshu.fileio import atomic_open

TOP_LEVEL = ("name", "algo", "env", "search", "trials", "seed", "sampler_seed", "metric",
             "pruner", "startup_trials", "warmup_evals", "jobs", "run", "config", "params",
             "env_options")  # fmt: skip
RANGE_KEYS = ("low", "high", "log", "step")
# A sweep file's names (renshu.distributed.sweep) for the same things, so that a sweep file
# with search = "optuna" is a tuning file as it is.
SWEEP_KEYS = {"samples": "trials", "sample_seed": "sampler_seed", "max_concurrent": "jobs"}
SWEEP_DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
METRICS = ("final", "best")
PRUNERS = ("median", "none")
BACKENDS = ("local", "ray")
SPEC_FILE = "tune.toml"
STUDY_FILE = "study.db"
TUNE_EXTRA = 'pip install "renshu[tune]"'


@dataclasses.dataclass
class Param:
    """One searched field: a float or int range (``log``, ``step``) or a list of choices."""

    name: str
    kind: str  # float, int or categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] | None = None

    def distribution(self):
        """The Optuna distribution of this parameter."""
        import optuna.distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution([_hashable(c) for c in self.choices])
        if self.kind == "int":
            return d.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial) -> Any:
        """This parameter's value for an Optuna trial, as the config takes it."""
        if self.kind == "categorical":
            choices = [_hashable(c) for c in self.choices]
            return self.value(trial.suggest_categorical(self.name, choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=self.step or 1)  # fmt: skip
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def value(self, sampled: Any) -> Any:
        """A sampled value as the config takes it (choices that are lists come back as lists)."""
        return json.loads(sampled) if self.kind == "categorical" and _is_json(sampled) else sampled


def _hashable(choice: Any) -> Any:
    # Optuna's categorical choices are None, bool, int, float or str: lists go as JSON text.
    return json.dumps(choice) if isinstance(choice, (list, dict)) else choice


def _is_json(text: Any) -> bool:
    return isinstance(text, str) and text[:1] in "[{"


@dataclasses.dataclass
class TuneSpec:
    """A parsed tuning file (see the module docstring)."""

    algo: str
    env: str
    params: dict[str, Param]
    trials: int = 20
    seed: int = 0
    sampler_seed: int = 0
    metric: str = "final"
    pruner: str = "median"
    startup_trials: int = 3
    warmup_evals: int = 1
    jobs: int = 1
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    name: str | None = None

    def study_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name or f"{self.algo}-{self.env}")

    def algo_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The algorithm config of a trial: the env's preset, then [config], then ``values``."""
        from renshu.algos import get_algorithm
        from renshu.config import coerce
        from renshu.envs.specs import resolve

        cls = get_algorithm(self.algo)
        out = resolve(self.env).preset(self.algo)
        out.update(coerce(cls.config_class, {**self.config, **values}))
        return out

    def run_spec(self, **overrides: Any):
        """The RunSpec of every trial."""
        from renshu.runner import RunSpec

        settings = {"animation": False, **self.run, **overrides}
        return RunSpec(algo=self.algo, env=self.env, seed=self.seed,
                       env_options=dict(self.env_options), **settings)  # fmt: skip


def _int(data: dict, key: str, default: int, low: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"tuning `{key}` must be an int >= {low}, got {value!r}")
    return value


def _choice(data: dict, key: str, default: str, valid: tuple[str, ...]) -> str:
    value = data.get(key, default)
    if value not in valid:
        raise ValueError(f"tuning `{key}` must be one of {', '.join(valid)}, got {value!r}")
    return value


def _from_sweep(where: str, raw: dict) -> dict:
    """A sweep file's distribution (``{ loguniform = [a, b] }``, ``uniform``, ``randint``
    (inclusive), ``choice``) as a range or choices entry."""
    ((kind, args),) = raw.items()
    if kind == "choice":
        return {"choices": args}
    if not isinstance(args, list) or len(args) != 2:
        raise ValueError(f"{where}: {kind} takes [low, high], got {args!r}")
    low, high = args
    if kind == "randint":
        return {"low": low, "high": high}
    floats = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in args]
    return {"low": floats[0], "high": floats[1], "log": kind == "loguniform"}


def _param(name: str, raw: Any) -> Param:
    """A [params] entry as a Param; any malformed entry is one ValueError naming it."""
    where = f"tuning params.{name}"
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in SWEEP_DISTRIBUTIONS:
        raw = _from_sweep(where, raw)
    if isinstance(raw, dict) and "choices" in raw:
        extra = sorted(set(raw) - {"choices"})
        if extra:
            raise ValueError(f"{where}: a choices entry takes only `choices`, got also {extra}")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{where}: `choices` must be a non-empty list, got {choices!r}")
        return Param(name, "categorical", choices=choices)
    if not isinstance(raw, dict) or not {"low", "high"} <= set(raw):
        raise ValueError(
            f"{where}: give a range {{ low = ..., high = ... }} (optional log = true, step = ...)"
            f" or {{ choices = [...] }}, got {raw!r}"
        )
    unknown = sorted(set(raw) - set(RANGE_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {unknown}; a range takes {', '.join(RANGE_KEYS)}"
        )
    low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise ValueError(f"{where}: low, high and step must be numbers, got {raw!r}")
    if not isinstance(log, bool):
        raise ValueError(f"{where}: log must be true or false, got {log!r}")
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{where}: low, high and step must be finite, got {raw!r}")
    if not low < high:
        raise ValueError(f"{where}: the range [{low}, {high}] is empty (low must be below high)")
    if log and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0, got low = {low}")
    if step is not None and (step <= 0 or log):
        raise ValueError(f"{where}: step must be > 0 and cannot go with log = true")
    kind = "int" if all(isinstance(v, int) for v in numbers) else "float"
    if kind == "float":
        low, high = float(low), float(high)
        step = None if step is None else float(step)
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _sweep_names(path: Path, data: dict) -> dict:
    """A sweep file's keys as a tuning file's (``samples`` -> ``trials``, one of ``seeds`` ->
    ``seed``, ...); giving both names of one setting is an error."""
    data = dict(data)
    for old, new in SWEEP_KEYS.items():
        if old in data:
            if new in data:
                raise ValueError(f"tuning file {path}: give `{new}` or `{old}`, not both")
            data[new] = data.pop(old)
    if "seeds" in data:
        seeds = data.pop("seeds")
        if "seed" in data or not (isinstance(seeds, list) and len(seeds) == 1):
            raise ValueError(
                f"tuning file {path}: every Optuna trial runs one seed; give seed = N "
                f"(got seeds = {seeds!r})"
            )
        data["seed"] = seeds[0]
    return data


def load_spec(path: str | Path) -> TuneSpec:
    """Read and check a tuning file; every error is a ValueError naming the key at fault."""
    from renshu.algos import get_algorithm
    from renshu.config import coerce, read_toml
    from renshu.envs.specs import resolve
    from renshu.runner import RunSpec

    path = Path(path)
    data = read_toml(path, "tuning file")
    data = _sweep_names(path, data)
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ValueError(
            f"tuning file {path}: unknown key(s) {unknown}; valid keys: {', '.join(TOP_LEVEL)}"
        )
    for key in ("algo", "env", "params"):
        if key not in data:
            raise ValueError(f"tuning file {path} needs `{key}`")
    if data.get("search", "optuna") != "optuna":
        raise ValueError(
            f"tuning file {path}: search = {data['search']!r}; `renshu tune` runs "
            '`search = "optuna"` (grid and random searches run with `renshu sweep`)'
        )
    cls = get_algorithm(data["algo"])  # an unknown name lists the valid ones
    raw = data["params"]
    if not isinstance(raw, dict) or not raw:
        raise ValueError("tuning [params] must name at least one config field to search")
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    bad = sorted(set(raw) - fields)
    if bad:
        raise ValueError(
            f"unknown config field(s) {bad} in tuning [params] for {cls.config_class.__name__};"
            f" valid fields: {', '.join(sorted(fields))}"
        )
    params = {name: _param(name, value) for name, value in raw.items()}
    config = dict(data.get("config", {}))
    coerce(cls.config_class, config)  # unknown names: the error lists the valid fields
    run = dict(data.get("run", {}))
    run_fields = {f.name for f in dataclasses.fields(RunSpec)}
    allowed = run_fields - {"algo", "env", "seed", "env_options"}
    bad = sorted(set(run) - allowed)
    if bad:
        raise ValueError(
            f"unknown run setting(s) {bad} in tuning [run]; valid: {', '.join(sorted(allowed))}"
        )
    run = coerce(RunSpec, run)
    env = resolve(data["env"])
    spec = TuneSpec(
        algo=data["algo"], env=env.name, params=params, config=config, run=run,
        env_options=env.parse_options(dict(data.get("env_options", {}))),
        trials=_int(data, "trials", 20, 1), seed=_int(data, "seed", 0, 0),
        sampler_seed=_int(data, "sampler_seed", 0, 0),
        metric=_choice(data, "metric", "final", METRICS),
        pruner=_choice(data, "pruner", "median", PRUNERS),
        startup_trials=_int(data, "startup_trials", 3, 0),
        warmup_evals=_int(data, "warmup_evals", 1, 0), jobs=_int(data, "jobs", 1, 1),
        name=data.get("name"),
    )  # fmt: skip
    spec.run_spec().resolved()  # the run settings of a trial are valid
    # Every corner of the space must make a valid config (a value the field refuses, a
    # combination the config refuses): fail now, not in a trial.
    for param in params.values():
        values = param.choices if param.kind == "categorical" else [param.low, param.high]
        for value in values:
            try:
                cls.config_class(**spec.algo_values({param.name: value}))
            except (TypeError, ValueError) as e:
                raise ValueError(f"tuning params.{param.name} = {value!r}: {e}") from None
    return spec


# ---------------------------------------------------------------------------------------------
# Running


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError(f"tuning needs Optuna: {TUNE_EXTRA}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the summary says what happened
    return optuna


def _storage(out: Path):
    optuna = require_optuna()
    return optuna.storages.RDBStorage(f"sqlite:///{out / STUDY_FILE}")


def _study(spec: TuneSpec, out: Path, worker: int = 0):
    """The study in ``out``, created on first use; ``worker`` offsets TPE's seed so that
    processes sharing the study do not draw the same parameters."""
    optuna = require_optuna()
    sampler = optuna.samplers.TPESampler(
        seed=spec.sampler_seed + worker, n_startup_trials=spec.startup_trials
    )
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_evals
        )
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=spec.study_name(), storage=_storage(out), sampler=sampler, pruner=pruner,
        direction="maximize", load_if_exists=True,
    )  # fmt: skip


def _counts(study) -> int:
    """Trials that count towards the budget: finished, pruned, or failed by an error."""
    from optuna.trial import TrialState

    done = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
        elif t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"):
            done += 1
    return done


def _recover(spec: TuneSpec, out: Path) -> int:
    """Trials a stopped tuning cut off (Ctrl-C, or a killed process: left running) are marked
    ``interrupted`` and their parameters queued to run again, once. Returns how many."""
    from optuna.trial import TrialState

    study = _study(spec, out)
    storage = _storage(out)
    study_id = storage.get_study_id_from_name(spec.study_name())
    trials = study.get_trials(deepcopy=False)
    for t in trials:  # this process is the only one on the study: nothing is running now
        if t.state == TrialState.RUNNING:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    requeued = {t.user_attrs.get("requeue_of") for t in trials}
    again = 0
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.params:
            if t.number not in requeued:
                study.enqueue_trial(t.params, user_attrs={"requeue_of": t.number})
                again += 1
    return again


class _Objective:
    """One trial: a normal run that reports each evaluation to Optuna and stops when pruned."""

    def __init__(self, spec: TuneSpec, out: Path, threads: int | None):
        self.spec, self.out, self.threads = spec, out, threads

    def __call__(self, trial) -> float:
        optuna = require_optuna()
        from renshu.runner import start_run

        values = {p.name: p.suggest(trial) for p in self.spec.params.values()}
        run_dir = self.out / "trials" / f"t{trial.number}"
        evals: list[float] = []

        def on_eval(env_steps: int, ev: dict) -> bool:
            evals.append(float(ev["mean_return"]))
            trial.set_user_attr("env_steps", env_steps)
            if self.spec.pruner == "none":
                return False
            trial.report(evals[-1], step=len(evals) - 1)  # steps 0, 1, ...: evaluations
            return trial.should_prune()

        trial.set_user_attr("run_dir", str(run_dir))
        threads = {} if self.threads is None else {"threads": self.threads}
        _, summary = start_run(
            self.spec.run_spec(**threads), self.spec.algo_values(values), run_dir=run_dir,
            overwrite=True, progress=False, on_eval=on_eval,
        )  # fmt: skip
        trial.set_user_attr("status", summary["status"])
        trial.set_user_attr("env_steps", summary["env_steps"])
        if summary["status"] == "interrupted":
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt
        if summary["status"] == "stopped":
            raise optuna.TrialPruned(f"pruned after {len(evals)} evaluations")
        last = summary.get("last_eval") or {}
        if not evals and "mean_return" in last:
            evals.append(float(last["mean_return"]))
        if not evals:
            raise ValueError("the trial never evaluated: set [run] eval_every below steps")
        return max(evals) if self.spec.metric == "best" else evals[-1]


def _optimize(spec: TuneSpec, out: Path, threads: int | None, worker: int = 0) -> None:
    """Run trials of the study in ``out`` until it holds ``spec.trials`` (one process)."""
    require_optuna()
    study = _study(spec, out, worker)
    objective = _Objective(spec, out, threads)
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from renshu.errors import NonFiniteLossError

    left = spec.trials - _counts(study)
    if left <= 0:
        return
    # Running trials count too: a process does not start one that others already cover.
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    stop = MaxTrialsCallback(spec.trials, states=states)
    # A diverging configuration (NaN loss) or a config error is a failed trial, not the end.
    study.optimize(objective, n_trials=left, callbacks=[stop],
                   catch=(NonFiniteLossError, ValueError, RuntimeError))  # fmt: skip


def _worker(spec_path: str, out: str, threads: int | None, worker: int) -> None:
    _optimize(load_spec(spec_path), Path(out), threads, worker)


def prepare(spec_path: str | Path | None, out: str | Path | None, resume: str | Path | None):
    """(spec, out dir) of a new or resumed tuning: the spec is copied into ``out`` once, and a
    resumed tuning reads it from there."""
    if resume is not None:
        out = Path(resume)
        if not (out / SPEC_FILE).is_file() or not (out / STUDY_FILE).is_file():
            raise FileNotFoundError(f"{out} is not a renshu tuning directory (no {SPEC_FILE})")
        spec = load_spec(out / SPEC_FILE)
        if spec_path is not None and load_spec(spec_path) != spec:
            raise ValueError(f"{spec_path} differs from the tuning in {out}; resume without it")
        return spec, out
    if spec_path is None:
        raise ValueError("give a tuning file, or --resume DIR")
    spec = load_spec(spec_path)
    out = Path(out) if out is not None else Path("tunes") / spec.study_name()
    if (out / SPEC_FILE).is_file():
        if load_spec(out / SPEC_FILE) != spec:
            raise FileExistsError(
                f"{out} holds another tuning; pick another --out, or --resume {out}"
            )
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"tuning directory {out} exists and is not a tuning; pick --out")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / SPEC_FILE).is_file():
        shutil.copyfile(spec_path, out / SPEC_FILE)
    return spec, out


def run_tune(
    spec_path: str | Path | None = None,
    out: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
) -> Path:
    """Run (or resume) the tuning of ``spec_path`` in ``out`` (default ``tunes/<name>``) and
    write its summary; returns ``out``. See the module docstring."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"--jobs must be an int >= 1, got {jobs!r}")
    require_optuna()
    spec, out = prepare(spec_path, out, resume)
    jobs = jobs or spec.jobs
    _recover(spec, out)
    try:
        if backend == "ray":
            _run_ray(spec, out, address, jobs)
        elif jobs == 1:
            _optimize(spec, out, spec.run.get("threads"))
        else:
            # Processes share the SQLite study; a trial takes one thread unless [run] says more.
            threads = spec.run.get("threads") or 1
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=_worker, args=(str(out / SPEC_FILE), str(out), threads, i))
                     for i in range(jobs)]  # fmt: skip
            for p in procs:
                p.start()
            try:
                for p in procs:
                    p.join()
            except KeyboardInterrupt:
                for p in procs:
                    p.join()  # each finishes its update and saves, as a run does on Ctrl-C
                raise
    finally:  # also when stopped: the table of what ran so far
        write_summary(spec, out)
    return out


def _run_ray(spec: TuneSpec, out: Path, address: str | None, jobs: int) -> None:
    """The trials on Ray Tune: Ray's Optuna searcher over the same study, Ray's median
    stopping rule on the evaluations."""
    from renshu.distributed.cluster import connect, require_ray

    ray = require_ray()
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler, MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    optuna = require_optuna()
    left = spec.trials - _counts(_study(spec, out))
    if left <= 0:
        return
    space = {p.name: p.distribution() for p in spec.params.values()}
    searcher = OptunaSearch(
        space=space, metric="objective", mode="max", study_name=spec.study_name(),
        storage=_storage(out),
        sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed,
                                           n_startup_trials=spec.startup_trials),
    )  # fmt: skip
    scheduler = FIFOScheduler()
    if spec.pruner == "median":
        scheduler = MedianStoppingRule(
            time_attr="evaluations", metric="mean_return", mode="max",
            grace_period=max(spec.warmup_evals, 1), min_samples_required=spec.startup_trials or 1,
        )  # fmt: skip
    threads = int(spec.run.get("threads") or 1)
    owns = connect(address)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_ray_trial, {"cpu": threads}),
            param_space={"spec_path": str(out / SPEC_FILE), "out": str(out)},
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=left, max_concurrent_trials=jobs),
            run_config=tune.RunConfig(name="ray", storage_path=str(out.resolve()), verbose=0),
        )  # fmt: skip
        tuner.fit()
    finally:
        if owns:
            ray.shutdown()


def _ray_trial(config: dict) -> None:
    """A Ray Tune trial: a run reporting each evaluation (Ray's scheduler may stop it)."""
    from ray import tune

    from renshu.runner import start_run

    spec = load_spec(config["spec_path"])
    values = {name: p.value(config[name]) for name, p in spec.params.items()}
    run_dir = Path(config["out"]) / "trials" / f"ray-{tune.get_context().get_trial_id()}"
    evals: list[float] = []

    def on_eval(env_steps: int, ev: dict) -> bool:
        evals.append(float(ev["mean_return"]))
        best = max(evals) if spec.metric == "best" else evals[-1]
        tune.report({"mean_return": evals[-1], "objective": best, "evaluations": len(evals),
                     "env_steps": env_steps})  # fmt: skip
        return False

    threads = spec.run.get("threads") or 1
    start_run(spec.run_spec(threads=threads), spec.algo_values(values), run_dir=run_dir,
              overwrite=True, progress=False, on_eval=on_eval)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Summary


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def trial_rows(spec: TuneSpec, out: Path) -> list[dict[str, Any]]:
    """One row per trial of the study: parameters, state, value, evaluations, run directory."""
    optuna = require_optuna()
    study = optuna.load_study(study_name=spec.study_name(), storage=_storage(out))
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "WAITING":
            continue
        state = t.state.name.lower()
        if state == "fail" and t.user_attrs.get("interrupted"):
            state = "interrupted"
        evals = t.intermediate_values
        value = t.value if t.value is not None else math.nan
        if t.value is None and evals:  # pruned: its last evaluation
            value = evals[max(evals)]
        rows.append({
            "trial": t.number, "state": state, "value": value, "evaluations": len(evals),
            "env_steps": t.user_attrs.get("env_steps", 0),
            **{name: spec.params[name].value(v) for name, v in t.params.items()},
            "run_dir": t.user_attrs.get("run_dir", ""),
        })  # fmt: skip
    return rows


def importances(spec: TuneSpec, out: Path) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) over the finished trials ({} with fewer than
    two, or when every trial scored the same)."""
    optuna = require_optuna()
    study = optuna.load_study(study_name=spec.study_name(), storage=_storage(out))
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}


def write_summary(spec: TuneSpec, out: Path) -> dict[str, Path]:
    """``trials.csv`` and ``summary.md`` (best first, importances) of the study in ``out``."""
    rows = trial_rows(spec, out)
    names = list(spec.params)
    order = sorted(rows, key=lambda r: (r["state"] != "complete", -_key(r["value"])))
    with atomic_open(out / "trials.csv", "w", newline="", encoding="utf-8") as f:
        fields = ["trial", "state", "value", "evaluations", "env_steps", *names, "run_dir"]
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in order:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    ranked = importances(spec, out)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned")}
    metric = "last" if spec.metric == "final" else "best"
    lines = [
        f"# Tuning {spec.study_name()}: {spec.algo} on {spec.env}", "",
        f"{len(rows)} trials ({counts['complete']} complete, {counts['pruned']} pruned); value: "
        f"the {metric} evaluation's mean return (pruned: its last evaluation before it stopped).",
        "", "| trial | " + " | ".join(names) + " | state | evaluations | value |",
        "|---:|" + "---|" * len(names) + "---|---:|---:|",
    ]  # fmt: skip
    for r in order:
        cells = [str(r["trial"]), *(_fmt(r.get(n, "")) for n in names), r["state"],
                 str(r["evaluations"]), _fmt(r["value"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Parameter importance (Optuna, fANOVA)", ""]
    if ranked:
        lines += ["| parameter | importance |", "|---|---:|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in ranked.items()]
    else:
        lines.append("Needs at least two complete trials with different values.")
    with atomic_open(out / "summary.md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return {"trials.csv": out / "trials.csv", "summary.md": out / "summary.md"}


def _key(x: float) -> float:
    return -math.inf if x is None or math.isnan(x) else x

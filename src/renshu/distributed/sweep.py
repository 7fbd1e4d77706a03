"""Sweeps: a grid or random search over config fields times seeds, run as Ray Tune trials.

A sweep is described by a TOML file::

    algo = "ppo"
    env = "cartpole"
    seeds = [0, 1, 2]
    search = "grid"            # grid: every combination of [params]; random: `samples` draws
    # samples = 8              # random search: configurations drawn (seeded by sample_seed)
    # max_concurrent = 2       # trials at once (default: as many as the cluster's CPUs allow)

    [run]                      # run settings of every trial (the `renshu train` flags)
    steps = 50_000
    eval_every = 10_000

    [config]                   # algorithm config fields fixed for the whole sweep
    num_envs = 8

    [params]                   # the fields searched
    learning_rate = [1e-3, 3e-4]                      # grid: a list of values
    # learning_rate = { loguniform = [1e-4, 1e-2] }   # random: loguniform, uniform,
    # num_steps = { choice = [32, 64, 128] }          #   randint (inclusive) or choice

Every configuration runs once per seed; each trial is a normal run directory
(``OUT/trials/c<k>-s<seed>``). At the end the sweep writes ``OUT/trials.csv`` (one row per trial:
final and best evaluation return), ``OUT/summary.csv`` and ``OUT/summary.md`` (per configuration:
mean and std over seeds) and ``OUT/curves.png`` (mean +/- std learning curve per configuration).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from renshu.fileio import atomic_open

TOP_LEVEL = ("name", "algo", "env", "seeds", "search", "samples", "sample_seed",
             "max_concurrent", "run", "config", "params", "env_options")  # fmt: skip
DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
CURVE = "charts/return_recent_mean"  # training return, mean of the last 100 episodes
EVAL = "eval/mean_return"


@dataclasses.dataclass
class SweepSpec:
    """A parsed sweep file (see the module docstring)."""

    algo: str
    env: str
    seeds: list[int]
    search: str
    params: dict[str, Any]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    samples: int = 8
    sample_seed: int = 0
    max_concurrent: int | None = None
    name: str | None = None

    def configurations(self) -> list[dict[str, Any]]:
        """The searched values of every configuration (grid order, or seeded random draws)."""
        if self.search == "grid":
            names = list(self.params)
            return [dict(zip(names, combo)) for combo in itertools.product(*self.params.values())]
        rng = random.Random(self.sample_seed)
        return [
            {name: _draw(rng, dist) for name, dist in self.params.items()}
            for _ in range(self.samples)
        ]


def _draw(rng: random.Random, dist: dict[str, Any]) -> Any:
    ((kind, args),) = dist.items()
    if kind == "choice":
        return rng.choice(list(args))
    low, high = args
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "loguniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(int(low), int(high))


def _check_distribution(name: str, dist: Any) -> None:
    ok = isinstance(dist, dict) and len(dist) == 1 and next(iter(dist)) in DISTRIBUTIONS
    if ok:
        ((kind, args),) = dist.items()
        ok = isinstance(args, list) and (
            len(args) >= 1 if kind == "choice" else len(args) == 2 and args[0] <= args[1]
        )
        if ok and kind == "loguniform":
            ok = args[0] > 0
    if not ok:
        raise ValueError(
            f"sweep params.{name}: a random search needs one distribution per field, e.g. "
            "{ loguniform = [1e-4, 1e-2] }, { uniform = [0.0, 0.1] }, { randint = [1, 8] } or "
            "{ choice = [32, 64] }"
        )


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; unknown names raise a ValueError listing the valid ones."""
    from renshu.algos import get_algorithm
    from renshu.config import coerce, read_toml
    from renshu.envs.specs import resolve
    from renshu.runner import RunSpec

    path = Path(path)
    data = read_toml(path, "sweep file")
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ValueError(
            f"sweep file {path}: unknown key(s) {unknown}; valid keys: {', '.join(TOP_LEVEL)}"
        )
    for key in ("algo", "env", "params"):
        if key not in data:
            raise ValueError(f"sweep file {path} needs `{key}`")
    cls = get_algorithm(data["algo"])
    search = data.get("search", "grid")
    if search not in ("grid", "random"):
        raise ValueError(f"sweep search must be grid or random, got {search!r}")
    seeds = data.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise ValueError(f"sweep seeds must be a non-empty list of ints, got {seeds!r}")
    params = data["params"]
    if not isinstance(params, dict) or not params:
        raise ValueError("sweep [params] must name at least one config field to search")
    config = dict(data.get("config", {}))
    coerce(cls.config_class, config)  # unknown names: the error lists the valid fields
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    bad = sorted(set(params) - fields)
    if bad:
        raise ValueError(
            f"unknown config field(s) {bad} in sweep [params] for {cls.config_class.__name__}; "
            f"valid fields: {', '.join(sorted(fields))}"
        )
    for name, values in params.items():
        if search == "grid":
            if not isinstance(values, list) or not values:
                raise ValueError(
                    f"sweep params.{name}: a grid search needs a non-empty list of values"
                )
            for value in values:  # every value must be valid for the field
                coerce(cls.config_class, {name: value})
        else:
            _check_distribution(name, values)
    run = dict(data.get("run", {}))
    run_fields = {f.name for f in dataclasses.fields(RunSpec)}
    fixed = {"algo", "env", "seed", "env_options"}
    bad = sorted(set(run) - (run_fields - fixed))
    if bad:
        raise ValueError(
            f"unknown run setting(s) {bad} in sweep [run]; valid: "
            + ", ".join(sorted(run_fields - fixed))
        )
    run = coerce(RunSpec, run)
    samples = int(data.get("samples", 8))
    if samples < 1:
        raise ValueError(f"sweep samples must be >= 1, got {samples}")
    env = resolve(data["env"])  # canonical name, typed options (errors name the option)
    env_options = env.parse_options(dict(data.get("env_options", {})))
    spec = SweepSpec(
        algo=data["algo"], env=env.name, seeds=seeds, search=search, params=params,
        config=config, run=run, env_options=env_options, samples=samples,
        sample_seed=int(data.get("sample_seed", 0)), max_concurrent=data.get("max_concurrent"),
        name=data.get("name"),
    )  # fmt: skip
    # Fail now, not in a trial: every configuration must make a valid config.
    for values in spec.configurations():
        cls.config_class(**_algo_values(cls, spec, values))
    return spec


def _algo_values(cls: type, spec: SweepSpec, values: dict[str, Any]) -> dict[str, Any]:
    from renshu.config import coerce
    from renshu.envs.specs import resolve

    out = resolve(spec.env).preset(spec.algo)
    out.update(coerce(cls.config_class, {**spec.config, **values}))
    return out


# ---------------------------------------------------------------------------------------------
# Running


def _trial(space: dict[str, Any]) -> None:
    """One Tune trial: a normal run in its own run directory, reporting its returns."""
    from ray import tune

    from renshu.runner import RunSpec, start_run

    params = space["trial"]
    spec = RunSpec(**params["run"])
    run_dir = Path(params["run_dir"])
    _, summary = start_run(spec, params["config"], run_dir=run_dir, progress=False)
    final, best = trial_returns(run_dir, summary)
    tune.report(
        {"final_return": final, "best_return": best, "env_steps": summary["env_steps"],
         "wall_seconds": summary["wall_seconds"]}
    )  # fmt: skip


def trial_returns(run_dir: Path, summary: dict | None = None) -> tuple[float, float]:
    """(final, best) evaluation mean return of a run (NaN where it never evaluated)."""
    from renshu.runner.logging import read_csv

    if summary is None:
        summary = json.loads((run_dir / "summary.json").read_text())
    evals = [v for v in read_csv(run_dir / "metrics.csv").get(EVAL, []) if v is not None]
    last = summary.get("last_eval") or {}
    final = float(last.get("mean_return", evals[-1] if evals else math.nan))
    best = max(evals) if evals else final
    return final, float(best)


def _label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def run_sweep(
    spec_path: str | Path,
    out: str | Path | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
) -> Path:
    """Run the sweep of ``spec_path`` on Ray Tune and write its table and plot to ``out``
    (default ``sweeps/<name>-<time>``). Returns ``out``; trials that failed are marked
    ``error`` in the tables and their errors written to ``out/errors.txt``."""
    from renshu.algos import get_algorithm
    from renshu.distributed.cluster import connect, require_ray

    spec = load_spec(spec_path)
    cls = get_algorithm(spec.algo)
    name = spec.name or f"{spec.algo}-{spec.env}-{Path(spec_path).stem}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    if out is None:
        out = Path("sweeps") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"sweep directory {out} already exists and is not empty")
    configs = spec.configurations()
    threads = int(spec.run.get("threads") or 1)
    trials = []
    for k, values in enumerate(configs):
        for seed in spec.seeds:
            run = {**spec.run, "algo": spec.algo, "env": spec.env, "seed": seed,
                   "env_options": spec.env_options, "animation": spec.run.get("animation", False),
                   "threads": threads}  # fmt: skip
            trials.append({
                "id": f"c{k}-s{seed}", "config_index": k, "label": _label(values), "seed": seed,
                "values": values, "run": run, "config": _algo_values(cls, spec, values),
                "run_dir": str(out / "trials" / f"c{k}-s{seed}"),
            })  # fmt: skip
    ray = require_ray()
    from ray import tune

    owns = connect(address)
    sigint = signal.getsignal(signal.SIGINT)  # Tune installs its own and leaves it behind
    try:
        tuner = tune.Tuner(
            tune.with_resources(_trial, {"cpu": threads}),
            param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent or spec.max_concurrent,
                trial_name_creator=lambda t: t.config["trial"]["id"],
                trial_dirname_creator=lambda t: t.config["trial"]["id"],
            ),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(out), verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )  # fmt: skip
        results = tuner.fit()
        errors = {r.config["trial"]["id"]: r.error for r in results if r.error is not None}
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)
        if owns:
            ray.shutdown()
    write_summary(out, trials, spec.params, errors)
    if errors:
        with atomic_open(out / "errors.txt", "w", encoding="utf-8") as f:
            for trial_id, error in errors.items():
                f.write(f"== {trial_id}\n{error}\n\n")
    return out


# ---------------------------------------------------------------------------------------------
# Tables and plot


def _mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))


def write_summary(
    out: Path, trials: list[dict], params: dict[str, Any], errors: dict[str, Any] | None = None
) -> dict[str, Path]:
    """trials.csv, summary.csv, summary.md and curves.png of a finished sweep in ``out``."""
    errors = errors or {}
    names = list(params)
    rows = []
    for t in trials:
        run_dir = Path(t["run_dir"])
        status, final, best, steps = "error", math.nan, math.nan, 0
        if t["id"] not in errors and (run_dir / "summary.json").is_file():
            summary = json.loads((run_dir / "summary.json").read_text())
            status, steps = summary["status"], summary["env_steps"]
            final, best = trial_returns(run_dir, summary)
        rows.append({
            "trial": t["id"], "config": t["config_index"], **t["values"], "seed": t["seed"],
            "status": status, "env_steps": steps, "final_return": final, "best_return": best,
            "run_dir": t["run_dir"],
        })  # fmt: skip
    by_config: dict[int, list[dict]] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(row)
    summary_rows = []
    for k, group in by_config.items():
        fm, fs = _mean_std([r["final_return"] for r in group])
        bm, bs = _mean_std([r["best_return"] for r in group])
        summary_rows.append({"config": k, **{n: group[0][n] for n in names},
                             "seeds": len(group), "final_mean": fm, "final_std": fs,
                             "best_mean": bm, "best_std": bs})  # fmt: skip
    paths = {
        "trials.csv": _write_csv(out / "trials.csv", rows),
        "summary.csv": _write_csv(out / "summary.csv", summary_rows),
    }
    lines = ["# Sweep summary", "", "Mean and std over seeds of the final and the best evaluation",
             "mean return of each configuration.", "",
             "| config | " + " | ".join(names) + " | seeds | final return | best return |",
             "|---|" + "---|" * len(names) + "---:|---:|---:|"]  # fmt: skip
    for s in sorted(summary_rows, key=lambda s: -_sort_key(s["final_mean"])):
        cells = [f"c{s['config']}", *(_fmt(s[n]) for n in names), str(s["seeds"]),
                 f"{s['final_mean']:.1f} ± {s['final_std']:.1f}",
                 f"{s['best_mean']:.1f} ± {s['best_std']:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Trials", "", "| trial | " + " | ".join(names) +
              " | seed | status | env steps | final return | best return |",
              "|---|" + "---|" * len(names) + "---:|---|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        cells = [
            r["trial"], *(_fmt(r[n]) for n in names), str(r["seed"]), r["status"],
            f"{r['env_steps']:,}", f"{r['final_return']:.1f}", f"{r['best_return']:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    with atomic_open(out / "summary.md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    paths["summary.md"] = out / "summary.md"
    paths["curves.png"] = plot_curves(out / "curves.png", trials, errors)
    return paths


def _sort_key(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: _fmt(v) if isinstance(v, list) else v for k, v in r.items()}
                             for r in rows)  # fmt: skip
    return path


def plot_curves(path: Path, trials: list[dict], errors: dict[str, Any] | None = None) -> Path:
    """Mean +/- std over seeds of each configuration's training return (the mean of the last
    100 episodes) against env steps, on a common grid up to the shortest seed's last step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from renshu.fileio import atomic_path
    from renshu.runner.logging import read_csv

    errors = errors or {}
    groups: dict[int, list[dict]] = {}
    for t in trials:
        if t["id"] not in errors:
            groups.setdefault(t["config_index"], []).append(t)
    fig, ax = plt.subplots(figsize=(8, 5))
    for k, group in sorted(groups.items()):
        curves = []
        for t in group:
            metrics = Path(t["run_dir"]) / "metrics.csv"
            if not metrics.is_file():
                continue
            data = read_csv(metrics)
            pairs = [(s, y) for s, y in zip(data["env_steps"], data.get(CURVE, []))
                     if s is not None and y is not None]  # fmt: skip
            if len(pairs) >= 2:
                curves.append(np.array(pairs, dtype=float))
        if not curves:
            continue
        end = min(c[-1, 0] for c in curves)
        start = max(c[0, 0] for c in curves)
        grid = np.linspace(start, end, 200)
        ys = np.stack([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])
        mean, std = ys.mean(0), ys.std(0)
        (line,) = ax.plot(grid, mean, label=f"c{k}: {group[0]['label']} ({len(curves)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training return (mean of the last 100 episodes)")
    ax.set_title("sweep: mean ± std over seeds")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path

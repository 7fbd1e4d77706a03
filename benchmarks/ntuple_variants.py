"""N-tuple training speed of variants side by side, fair on a busy machine.

Each variant is the same training run (default config: 4096 games, 4x6 tuples, seed 0) built
in this one process; the runs take turns, 20 rounds at a time, for ``--seconds``, so load from
other jobs falls on every variant alike. They compute exactly the same thing (checked: their
tables are equal at the end), so only the speed differs. Reported: training moves per
wall-clock second and per CPU-second of this process.

Variants (``--compare``):

* ``threads``: torch / numba thread counts ``--threads-configs`` (default 1/1,1/2,2/2);
* ``pages``: the tables on 4 KiB pages vs transparent huge pages (``huge_page_zeros``);
* ``kernels``: the numba kernels of another copy of ``renshu/core/ntuple.py`` (``--old FILE``,
  e.g. ``git show 7853ec4:src/renshu/core/ntuple.py > /tmp/ntuple_old.py``) vs today's;
* ``search``: depth-2 expectimax (the fused kernel) of ``--old FILE`` vs today's, on 2048
  boards of a run trained for ``--seconds`` (one thread, in turns, CPU time).

    python benchmarks/ntuple_variants.py --compare threads --seconds 120
    python benchmarks/ntuple_variants.py --compare pages --seconds 90
    python benchmarks/ntuple_variants.py --compare kernels --old /tmp/ntuple_old.py --seconds 90
    python benchmarks/ntuple_variants.py --compare search --old /tmp/ntuple_old.py --seconds 60
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import torch

from _common import cpu_model, version  # benchmarks/_common.py
from renshu.algos.ntuple import NTuple, NTupleConfig
from renshu.core import ntuple as nt
from renshu.envs.registry import make_env

GAMES = 4096


class _Threads:
    """Stands in for ``torch`` inside renshu.core.ntuple so the numba kernels run on their own
    thread count while torch keeps the one set for the variant."""

    def __init__(self):
        self.numba = 1

    def __getattr__(self, name):
        return getattr(torch, name)

    def get_num_threads(self) -> int:
        return self.numba

    def set_num_threads(self, n: int) -> None:
        pass


def _run(seed: int = 0) -> NTuple:
    env = make_env("game2048", num_envs=GAMES, seed=seed)
    return NTuple(env, NTupleConfig(num_envs=GAMES), seed=seed)


def _load(path: str):
    spec = importlib.util.spec_from_file_location("ntuple_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ntuple_old"] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def search(args) -> None:
    """Depth-2 expectimax boards per CPU-second, --old's kernel vs today's, in turns."""
    torch.set_num_threads(1)
    algo = _run()
    start = time.perf_counter()
    boards = []
    while time.perf_counter() - start < args.seconds:
        algo.learn(algo.collect(0.0), 0.0)
        if algo.env_steps % (64 * GAMES) == 0:
            boards.append(algo.env.state.board[:256].clone())
    boards = torch.cat(boards + [algo.env.state.board])[-2048:]
    kernels = {"--old": _load(args.old).numba_backend(algo.layout, None), "today": algo.backend}
    q = [k.expectimax2(algo.tables, boards[:64]) for k in kernels.values()]
    assert torch.equal(*q), "the kernels differ"
    cpu = dict.fromkeys(kernels, 0.0)
    for _ in range(3):
        for name, kernel in kernels.items():
            torch.set_num_threads(1)
            c = time.process_time()
            kernel.expectimax2(algo.tables, boards)
            cpu[name] += time.process_time() - c
    print(f"CPU: {cpu_model()}; depth-2 expectimax of {boards.shape[0]} boards of a run "
          f"trained {algo.env_steps:,} moves, one thread, 3 times each in turns\n")  # fmt: skip
    print("| kernel | boards per CPU-second |")
    print("|---|---:|")
    for name, seconds in cpu.items():
        label = f"--old ({args.old})" if name == "--old" else name
        print(f"| {label} | {3 * boards.shape[0] / seconds:,.0f} |")


def variants(args) -> list[dict]:
    """``[{name, algo, torch, numba}]``: the runs to compare."""
    if args.compare == "threads":
        out = []
        for spec in args.threads_configs.split(","):
            t, n = (int(x) for x in spec.split("/"))
            out.append({"name": f"torch {t} / numba {n} threads", "algo": _run(), "torch": t,
                        "numba": n})  # fmt: skip
        return out
    one = {"torch": args.threads, "numba": args.threads}
    if args.compare == "pages":
        saved = nt.huge_page_zeros
        nt.huge_page_zeros = lambda n, dtype: None
        try:
            small = _run()
        finally:
            nt.huge_page_zeros = saved
        return [{"name": "4 KiB pages", "algo": small, **one},
                {"name": "2 MiB pages", "algo": _run(), **one}]  # fmt: skip
    if args.old is None:
        raise SystemExit("--compare kernels needs --old FILE (another copy of core/ntuple.py)")
    old_module = _load(args.old)
    old = _run()
    old.backend = old_module.numba_backend(old.layout, None)
    return [{"name": f"kernels of {args.old}", "algo": old, **one},
            {"name": "kernels of today", "algo": _run(), **one}]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    kinds = ["threads", "pages", "kernels", "search"]
    p.add_argument("--compare", choices=kinds, default="threads")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=1, help="threads of the pages/kernels runs")
    p.add_argument("--threads-configs", default="1/1,1/2,2/2", help="torch/numba,...")
    p.add_argument("--old", default=None, help="--compare kernels: the other core/ntuple.py")
    args = p.parse_args()
    if not nt.numba_available():
        raise SystemExit("numba is not installed (pip install 'renshu[fast]')")
    if args.compare == "search":
        if args.old is None:
            raise SystemExit("--compare search needs --old FILE (another copy of core/ntuple.py)")
        return search(args)
    runs = variants(args)
    shim = _Threads()
    real = nt.torch
    nt.torch = shim
    wall = [0.0] * len(runs)
    cpu = [0.0] * len(runs)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < args.seconds:
            for i, run in enumerate(runs):
                shim.numba = run["numba"]
                torch.set_num_threads(run["torch"])
                w, c = time.perf_counter(), time.process_time()
                for _ in range(20):
                    run["algo"].learn(run["algo"].collect(0.0), 0.0)
                    torch.set_num_threads(run["torch"])  # (an old kernel may have changed it)
                wall[i] += time.perf_counter() - w
                cpu[i] += time.process_time() - c
    finally:
        nt.torch = real
    first = runs[0]["algo"]
    assert all(torch.equal(first.tables, r["algo"].tables) for r in runs), "runs differ"
    print(f"CPU: {cpu_model()} (torch {torch.__version__}, numba {version('numba')}); "
          f"{GAMES} games, 4x6 tuples, {args.seconds:.0f} s in turns\n")  # fmt: skip
    print("| variant | training moves | moves/s | moves per CPU-second |")
    print("|---|---:|---:|---:|")
    for run, w, c in zip(runs, wall, cpu):
        moves = run["algo"].env_steps
        print(f"| {run['name']} | {moves:,} | {moves / w / 1e3:.0f} k | {moves / c / 1e3:.0f} k |")


if __name__ == "__main__":
    main()

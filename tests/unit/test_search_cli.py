"""Play-time search through the command line: ``renshu eval|record RUN --search expectimax
--depth D``, ``renshu play 2048 --hint RUN``, and their bad input.

The runs are real and small: an n-tuple run with four 4-tuples (1 MiB of tables) trained for
60k moves, and a PPO run of 512 steps. Bar for the search: over the same 24 start boards,
expectimax depth 2 scores at least 1.3x greedy play (measured here: about 2x).
"""

from __future__ import annotations

import io
import json
import re

import pytest
import torch

from renshu import cli
from renshu.envs.registry import make_env
from renshu.play import play_2048
from renshu.runner import RunSpec, Trainer, start_run
from renshu.runner.evaluate import play
from renshu.runner.hint import hint_from_run
from renshu.runner.milestones import load_agent
from renshu.runner.search import Search, parse_search, search_policy

SMALL_TUPLES = "0,1,2,3;4,5,6,7;0,1,4,5;1,2,5,6"
MOVES = ("left", "right", "up", "down")
HINT = re.compile(r"^hint: (left|right|up|down)   \((.+)\)\n  (.+)$", re.MULTILINE)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert err.startswith("renshu "), err
    for needle in needles:
        assert needle in err, (needle, err)


def _train(run_dir, algo: str, steps: int, config: dict):
    spec = RunSpec(algo=algo, env="game2048", steps=steps, eval_every=steps, eval_episodes=2,
                   checkpoint_seconds=1e9, animation=False)  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:  # no learning curve or GIF: not looked at here
        mp.setattr(Trainer, "finish", lambda self: None)
        _, summary = start_run(spec, config, run_dir=run_dir, progress=False)
    assert summary["status"] == "finished"
    return run_dir


@pytest.fixture(scope="module")
def ntuple_run(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("search") / "nt"
    return _train(run, "ntuple", 60_000, dict(num_envs=256, tuples=SMALL_TUPLES))


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("search") / "ppo"
    config = dict(num_envs=16, num_steps=16, hidden=[16], num_minibatches=2, update_epochs=1)
    return _train(run, "ppo", 512, config)


# -- renshu eval --search ------------------------------------------------------------------------


def test_expectimax_depth_2_beats_greedy_on_the_same_boards(ntuple_run, capsys):
    code, out, err = run_cli(capsys, "eval", ntuple_run, "--episodes", 24, "--search",
                             "expectimax", "--depth", 2, "--compare-greedy", "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["search"] == {"name": "expectimax", "depth": 2, "cutoff": 0.0}
    greedy = result["greedy"]
    assert result["episodes"] == greedy["episodes"] == 24
    print(f"expectimax depth 2 {result['mean_score']:.0f}, greedy {greedy['mean_score']:.0f}")
    assert result["mean_score"] >= 1.3 * greedy["mean_score"] > 0
    # searching looks further: its games last longer and reach bigger tiles
    assert result["mean_length"] > greedy["mean_length"]
    best = max(int(t) for t in result["max_tile_counts"])
    assert best >= max(int(t) for t in greedy["max_tile_counts"])


def test_depth_1_is_the_greedy_player(ntuple_run, capsys):
    """Depth 1 plays the very moves of greedy play: the same games, move for move."""
    code, out, _ = run_cli(capsys, "eval", ntuple_run, "--episodes", 8, "--search", "expectimax",
                           "--depth", 1, "--compare-greedy", "--json")  # fmt: skip
    assert code == 0
    result = json.loads(out)
    greedy = result.pop("greedy")
    result.pop("search")
    assert result == greedy


def test_the_table_shows_search_greedy_other_runs_and_random(ntuple_run, ppo_run, capsys):
    code, out, err = run_cli(capsys, "eval", ntuple_run, "--episodes", 4, "--search",
                             "expectimax", "--compare-greedy", "--compare", ppo_run,
                             "--compare-random")  # fmt: skip
    assert code == 0, err
    header = next(line for line in out.splitlines() if "ntuple (expectimax 2)" in line)
    assert header.split() == ["ntuple", "(expectimax", "2)", "ntuple", "(greedy)", "ppo",
                              "(greedy)", "random", "play"]  # fmt: skip
    scores = next(line for line in out.splitlines() if line.strip().startswith("mean score"))
    assert len([float(x) for x in scores.split()[2:]]) == 4


def test_searched_moves_are_legal_and_differ_from_greedy(ntuple_run):
    """Depth 2 and depth 3 (with a cut-off) choose legal moves only, and not always the
    greedy one: played on one game each, every chosen move is in the env's mask."""
    algo, spec, _ = load_agent(ntuple_run)
    for search in (Search("expectimax", 2), Search("expectimax", 3, cutoff=0.05)):
        act, values = search_policy(algo, search)
        env = make_env("game2048", num_envs=2, seed=3)
        chosen, greedy = [], []

        def watch(obs, mask, act=act, chosen=chosen, greedy=greedy):
            a = act(obs, mask)
            assert bool(mask.gather(1, a.unsqueeze(1)).all())
            chosen.append(a)
            greedy.append(algo.act(obs, mask))
            return a

        limit = 25 if search.depth == 3 else 100_000  # depth 3: a few moves (slow)
        play(watch, env, 2, seed=5, on_step=lambda *_, c=chosen, n=limit: len(c) >= n)
        label, q = values(*_first_position(env))
        assert label == f"{search.label} values" and q.shape == (2, 4)
        moves = torch.cat(chosen)
        assert moves.numel() >= 50 and not torch.equal(moves, torch.cat(greedy))


def _first_position(env):
    obs, info = env.reset(seed=11)
    return obs, info["action_mask"]


# -- renshu record --search and play --hint ----------------------------------------------------


def test_record_with_search(ntuple_run, tmp_path, capsys):
    out_file = tmp_path / "s.gif"
    code, out, err = run_cli(capsys, "record", ntuple_run, "--out", out_file, "--search",
                             "expectimax", "--max-steps", 30)  # fmt: skip
    assert code == 0, err
    assert f"wrote {out_file}: 30 steps" in out
    assert out_file.read_bytes()[:4] == b"GIF8"


def _hints(text: str) -> list[tuple[str, str, dict[str, float | None]]]:
    found = []
    for move, label, cells in HINT.findall(text):
        values = {}
        for name, value in re.findall(r"(left|right|up|down) (-|[-\d,.]+)\*?", cells):
            values[name] = None if value == "-" else float(value.replace(",", ""))
        found.append((move, label, values))
    return found


def test_play_hint_shows_the_agents_move_and_values(ntuple_run, capsys):
    """Scripted keys; every board drawn has a hint under it whose numbers are the run's own
    ``r + V(afterstate)`` of that board and whose move is the best of them."""
    keys = "adwsadws" + "q"
    code, out, err = run_cli_stdin(capsys, keys, "play", "2048", "--seed", 4, "--hint",
                                   ntuple_run)  # fmt: skip
    assert code == 0, err
    hints = _hints(out)
    assert len(hints) >= 5  # one per board shown (a move that changes nothing shows it again)
    algo, _, _ = load_agent(ntuple_run)
    first_board = _first_exponents(seed=4)
    label, q = algo.action_values(first_board, torch.ones(1, 4, dtype=torch.bool))
    move, shown_label, values = hints[0]
    assert shown_label == f"ntuple: {label}"
    for a, name in enumerate(MOVES):
        assert values[name] == pytest.approx(float(q[0, a]), abs=0.06)  # printed with 1 decimal
    legal = {name: v for name, v in values.items() if v is not None}
    assert move == max(legal, key=legal.get)


def test_play_hint_with_search_and_with_a_ppo_run(ntuple_run, ppo_run, capsys):
    code, out, _ = run_cli_stdin(capsys, "dq", "play", "--seed", 2, "--hint", ntuple_run,
                                 "--search", "expectimax")  # fmt: skip
    assert code == 0
    labels = {label for _, label, _ in _hints(out)}
    assert labels == {"ntuple: expectimax depth 2 values"}
    code, out, _ = run_cli_stdin(capsys, "dq", "play", "--seed", 2, "--hint", ppo_run)
    assert code == 0
    hints = _hints(out)
    assert len(hints) == 2
    for _, label, values in hints:
        assert label == "ppo: action probabilities"
        probs = [v for v in values.values() if v is not None]
        assert sum(probs) == pytest.approx(1.0, abs=0.01) and all(0 <= p <= 1 for p in probs)


def test_hint_from_run_suggests_a_legal_move(ntuple_run):
    """Through the library: a game driven by the hints alone plays legal moves only."""
    algo, spec, _ = load_agent(ntuple_run)
    hint = hint_from_run(algo, spec)
    chosen = []

    def follow(state):
        h = hint(state)
        chosen.append(h)
        return h

    stdin = io.StringIO("")  # no keys: one board drawn, one hint
    play_2048(seed=0, stdin=stdin, stdout=io.StringIO(), hint=follow)
    assert len(chosen) == 1 and chosen[0].values[chosen[0].action] is not None


def run_cli_stdin(capsys, keys: str, *argv) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.StringIO(keys))
        return run_cli(capsys, *argv)


def _first_exponents(seed: int) -> torch.Tensor:
    from renshu.envs.base import FunctionalEnv
    from renshu.envs.game2048 import Game2048

    env = FunctionalEnv(Game2048(obs="exponent"), num_envs=1, seed=seed)
    obs, _ = env.reset()
    return obs


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--search", "expectimax", "--depth", "4"], ["--depth must be one of 1, 2, 3, got 4"]),
        (["--search", "expectimax", "--depth", "0"], ["--depth must be one of 1, 2, 3, got 0"]),
        (["--depth", "2"], ["--depth goes with --search"]),
        (["--cutoff", "0.1"], ["--cutoff goes with --search"]),
        (["--search", "expectimax", "--cutoff", "1.5"], ["--cutoff is a probability"]),
        (["--search", "expectimax", "--cutoff", "nan"], ["--cutoff is a probability"]),
        (["--search", "mcts"], ["unknown --search 'mcts'", "searches: expectimax"]),
        (["--search", "expectimax", "--stochastic"], ["--stochastic", "--search"]),
        (["--compare-greedy"], ["--compare-greedy goes with --search"]),
    ],
)
def test_bad_search_flags_of_eval(ntuple_run, capsys, argv, needles):
    code, _, err = run_cli(capsys, "eval", ntuple_run, *argv)
    assert_clear_error(code, err, *needles)


def test_search_on_a_run_that_cannot_search(ppo_run, capsys):
    for command in (["eval", ppo_run], ["record", ppo_run, "--out", "x.gif"]):
        code, _, err = run_cli(capsys, *command, "--search", "expectimax")
        assert_clear_error(code, err, "a ppo run does not search", "algorithms that do: ntuple")


def test_bad_search_flags_of_record_and_play(ntuple_run, capsys, tmp_path):
    code, _, err = run_cli(capsys, "record", "--out", tmp_path / "r.gif", "--search", "expectimax")
    assert_clear_error(code, err, "--search plays a RUN's")
    code, _, err = run_cli(capsys, "play", "--search", "expectimax")
    assert_clear_error(code, err, "--search goes with --hint RUN")
    code, _, err = run_cli(capsys, "play", "--hint", tmp_path / "missing")
    assert_clear_error(code, err, "--hint", "no such run directory")
    code, _, err = run_cli(capsys, "eval", ntuple_run, "--compare", tmp_path / "missing")
    assert_clear_error(code, err, "--compare", "no such run directory")
    code, _, err = run_cli(capsys, "record", ntuple_run, "--timelapse", "--search", "expectimax")
    assert_clear_error(code, err, "not with --timelapse")
    code, _, err = run_cli(capsys, "play", "--hint", ntuple_run, "--search", "expectimax",
                           "--depth", "9")  # fmt: skip
    assert_clear_error(code, err, "--depth must be one of 1, 2, 3")


def test_parse_search_defaults():
    assert parse_search(None, None, None) is None
    assert parse_search("expectimax", None, None) == Search("expectimax", 2, 0.0)
    assert Search("expectimax", 3, 0.01).label == "expectimax depth 3, cut-off 0.01"

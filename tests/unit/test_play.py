"""Playing 2048 in the terminal with scripted input."""

from __future__ import annotations

import io
import os
import random
import re
import sys

import pytest
import torch

from renshu.envs.base import FunctionalEnv
from renshu.envs.game2048 import Game2048, board_from_tiles, legal_moves, tiles
from renshu.play import play_2048

KEY_ACTIONS = {"a": 0, "d": 1, "w": 2, "s": 3}
GAME_OVER = re.compile(r"GAME OVER — score (\d+), max tile (\d+)")


def play(keys: str, seed: int, **kwargs) -> tuple[int, str, io.StringIO]:
    stdin, stdout = io.StringIO(keys), io.StringIO()
    score = play_2048(seed=seed, stdin=stdin, stdout=stdout, **kwargs)
    return score, stdout.getvalue(), stdin


def printed_boards(text: str) -> list[list[list[int]]]:
    """Every board drawn in the output, as tile values."""
    rows = [
        [int(c) if c.strip() else 0 for c in line.strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]
    assert len(rows) % 4 == 0
    return [rows[i : i + 4] for i in range(0, len(rows), 4)]


def printed_scores(text: str) -> list[int]:
    return [int(s) for s in re.findall(r"^score (\d+) ", text, flags=re.MULTILINE)]


def reference(actions: list[int], seed: int) -> tuple[list[list[list[int]]], list[int]]:
    """Boards and scores of the same game played directly on the environment."""
    env = FunctionalEnv(Game2048(), num_envs=1, seed=seed)
    env.reset()
    boards = [tiles(env.state.board)[0].tolist()]
    scores = [0]
    for a in actions:
        _, _, terminated, _, _ = env.step(torch.tensor([a]))
        assert not bool(terminated[0])
        boards.append(tiles(env.state.board)[0].tolist())
        scores.append(int(env.state.score[0]))
    return boards, scores


def test_quitting_at_once_scores_zero():
    score, out, _ = play("q", seed=0)
    assert score == 0
    assert len(printed_boards(out)) == 1 and "score 0   moves 0" in out
    assert "bye — score 0" in out
    assert "\x1b" not in out  # plain text when the output is not a terminal


def test_end_of_input_ends_the_game():
    score, out, _ = play("", seed=0)
    assert score == 0 and "bye" in out


def test_moves_follow_the_game_exactly():
    keys = "ddddwwaassddsawd"
    score, out, stdin = play(keys + "q" + "ddd", seed=3)
    boards, scores = reference([KEY_ACTIONS[k] for k in keys], seed=3)
    assert printed_boards(out) == boards
    assert printed_scores(out) == scores
    assert score == scores[-1] > 0
    assert stdin.read() == "ddd"  # nothing read after q


def test_other_keys_are_ignored_and_uppercase_works():
    _, expected, _ = play("dwas", seed=5)
    _, out, _ = play("Dx\n W1AS", seed=5)
    assert out == expected


def test_arrow_escape_sequences_move_like_wasd():
    _, expected, _ = play("dwasq", seed=11)
    _, csi, _ = play("\x1b[C\x1b[A\x1b[D\x1b[Bq", seed=11)
    _, ss3, _ = play("\x1bOC\x1bOA\x1bOD\x1bOBq", seed=11)
    assert csi == expected and ss3 == expected
    assert len(printed_boards(expected)) == 5


def first_seed_with_an_illegal_opening(action: int) -> int:
    for seed in range(1000):
        env = FunctionalEnv(Game2048(), num_envs=1, seed=seed)
        _, info = env.reset()
        if not bool(info["action_mask"][0, action]):
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize("invalid_move", ["mask", "noop"])
def test_a_move_that_changes_nothing_is_reported(invalid_move):
    seed = first_seed_with_an_illegal_opening(0)  # left changes nothing
    score, out, _ = play("aq", seed=seed, invalid_move=invalid_move)
    assert "that move changes nothing" in out
    first, second = printed_boards(out)
    assert first == second
    assert score == 0 and printed_scores(out) == [0, 0]
    assert re.findall(r"moves (\d+)", out) == ["0", "0"]  # not counted as a move


def test_random_play_reaches_game_over():
    rng = random.Random(0)
    keys = "".join(rng.choice("wasd") for _ in range(5000))
    score, out, stdin = play(keys, seed=7)
    match = GAME_OVER.search(out)
    assert match is not None and "bye" not in out
    assert score == int(match.group(1)) > 0
    final = printed_boards(out)[-1]
    assert int(match.group(2)) == max(max(row) for row in final)
    # The final board is the finished game (not the auto-reset one): no move changes it.
    assert not bool(legal_moves(board_from_tiles(final).view(1)).any())
    assert stdin.tell() < len(keys)  # the game stopped reading at game over
    # The same keys on the environment give the same final score.
    env = FunctionalEnv(Game2048(), num_envs=1, seed=7)
    env.reset()
    for k in keys:
        _, _, terminated, _, info = env.step(torch.tensor([KEY_ACTIONS[k]]))
        if bool(terminated[0]):
            break
    assert int(info["episode"]["score"][0]) == score


@pytest.mark.skipif(not hasattr(os, "openpty") or sys.platform == "win32", reason="needs a pty")
def test_terminal_input_is_read_raw_and_settings_are_restored():
    import termios

    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "r", closefd=False) as tty_in:
            before = termios.tcgetattr(slave)
            os.write(master, b"d\x1b[Aq")
            out = io.StringIO()
            score = play_2048(seed=1, stdin=tty_in, stdout=out)
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    _, expected, _ = play("dwq", seed=1)
    assert out.getvalue() == expected
    assert score == printed_scores(expected)[-1]

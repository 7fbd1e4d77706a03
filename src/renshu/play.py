"""Play 2048 yourself in the terminal.

``play_2048()`` runs the very environment the agents train on (:class:`~renshu.envs.game2048.
Game2048` behind :class:`~renshu.envs.base.FunctionalEnv`, one board) and draws it after every
move. Keys: the arrow keys or w/a/s/d move, q quits.

On a terminal the keys are read one at a time without waiting for Enter (cbreak mode: no echo,
no line buffering, Ctrl-C still works), and the terminal's settings are restored on the way out.
When the input is not a terminal (a pipe, a file, an ``io.StringIO`` in tests) characters are
read from the stream one by one, so ``echo ddddwq | renshu play`` replays a game.

With a ``hint`` (``renshu play 2048 --hint RUN``: :func:`renshu.runner.hint.hint_from_run`),
the move a trained agent would play and its value of each of the four moves are shown under the
board before every move.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

if sys.platform != "win32":
    import termios
    import tty

import torch

from renshu.envs.base import FunctionalEnv
from renshu.envs.game2048 import Game2048, tiles
from renshu.envs.render import board_ansi

__all__ = ["play_2048"]

LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3
QUIT = -1

_LETTER_KEYS = {"a": LEFT, "d": RIGHT, "w": UP, "s": DOWN, "q": QUIT}
# Final byte of the arrow keys' escape sequences: ESC [ A (normal mode) or ESC O A (application
# cursor mode).
_ARROW_KEYS = {"A": UP, "B": DOWN, "C": RIGHT, "D": LEFT}
_CTRL_C, _CTRL_D = "\x03", "\x04"

_HELP = "arrow keys or w/a/s/d move, q quits"
_MOVE_NAMES = ("left", "right", "up", "down")
_CLEAR = "\x1b[H\x1b[2J"
_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def _read_key(read_char: Callable[[], str]) -> int | None:
    """The next command from the input: an action id, ``QUIT``, or None for any other key.

    Raises EOFError when the input ends.
    """
    ch = read_char()
    while ch == "\x1b":  # an escape sequence, or a lone ESC followed by another key
        ch = read_char()
        if ch in ("[", "O"):
            final = read_char()
            if final == "":
                raise EOFError
            return _ARROW_KEYS.get(final)
    if ch == "":
        raise EOFError
    if ch in (_CTRL_C, _CTRL_D):
        return QUIT
    return _LETTER_KEYS.get(ch.lower())


def _exponents_to_tiles(exponents: torch.Tensor) -> torch.Tensor:
    """uint8 exponents ``[4, 4]`` -> int64 tile values (0 for empty)."""
    e = exponents.to(torch.int64)
    return torch.where(e > 0, torch.ones_like(e) << e, torch.zeros_like(e))


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _number(v: float) -> str:
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3f}"


def hint_lines(hint) -> list[str]:
    """The two lines a hint (``action``, ``label``, ``values`` per move, None where the move
    changes nothing) takes under the board."""
    cells = [
        f"{name} {'-' if v is None else _number(v)}{'*' if a == hint.action else ''}"
        for a, (name, v) in enumerate(zip(_MOVE_NAMES, hint.values))
    ]
    return [f"hint: {_MOVE_NAMES[hint.action]}   ({hint.label})", "  " + "   ".join(cells)]


def play_2048(
    seed: int | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    invalid_move: str = "mask",
    hint: Callable | None = None,
) -> int:
    """Play one game of 2048 in the terminal; returns the final score.

    ``seed`` fixes the tiles that appear (None: a fresh random game). ``stdin``/``stdout``
    default to the process's; ``invalid_move`` is passed to :class:`Game2048` (a move that
    changes nothing never spawns a tile either way; you are told so and may try another).
    The game ends at game over, on q, or when the input ends. ``hint(state)`` (the one-board
    state of the game) returns the advice shown under the board (see :func:`hint_lines`).
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    # Key-at-a-time input needs termios (POSIX); elsewhere a terminal is read like a stream.
    interactive = _is_tty(stdin) and sys.platform != "win32"
    color = _is_tty(stdout)

    game = Game2048(obs="exponent", invalid_move=invalid_move)
    env = FunctionalEnv(game, num_envs=1, seed=seed)
    env.reset()

    def show(board_tiles: torch.Tensor, score: int, moves: int, message: str = "") -> None:
        lines = [
            f"2048 — {_HELP}",
            f"score {score}   moves {moves}   max tile {int(board_tiles.max())}",
            board_ansi(board_tiles, color=color),
        ]
        if message:
            lines.append(message)
        if hint is not None and not message.startswith("GAME OVER"):
            lines.extend(hint_lines(hint(env.state)))
        text = "\n".join(lines) + "\n"
        stdout.write((_CLEAR + text) if color else (text + "\n"))
        stdout.flush()

    if interactive:
        fd = stdin.fileno()
        saved_mode = termios.tcgetattr(fd)

        def read_char() -> str:
            return os.read(fd, 1).decode("latin-1")  # one byte, unbuffered, b"" at end of input

    else:

        def read_char() -> str:
            return stdin.read(1)

    score, moves = 0, 0
    try:
        if interactive:
            tty.setcbreak(fd, termios.TCSADRAIN)  # keep keys typed ahead
        if color:
            stdout.write(_HIDE_CURSOR)
        show(tiles(env.state.board)[0], score, moves)
        while True:
            try:
                key = _read_key(read_char)
            except EOFError:
                break
            if key == QUIT:
                break
            if key is None:
                continue
            before = env.state.board.clone()
            _, _, _, _, info = env.step(torch.tensor([key]))
            if bool(info["done"][0]):
                # The env has already reset this board: show the finished game from `info`.
                score = int(info["episode"]["score"][0])
                max_tile = int(info["episode"]["max_tile"][0])
                moves += 1
                final = _exponents_to_tiles(info["final_obs"][0])
                show(final, score, moves, f"GAME OVER — score {score}, max tile {max_tile}")
                return score
            if bool((env.state.board == before).all()):
                show(tiles(env.state.board)[0], score, moves, "that move changes nothing")
                continue
            moves += 1
            score = int(env.state.score[0])
            show(tiles(env.state.board)[0], score, moves)
    except KeyboardInterrupt:
        pass
    finally:
        if color:
            stdout.write(_SHOW_CURSOR)
            stdout.flush()
        if interactive:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved_mode)
    stdout.write(f"bye — score {score}\n")
    stdout.flush()
    return score

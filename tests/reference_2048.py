"""A tiny, slow, obviously-correct scalar 2048 used as the oracle in tests.

Written from the rules alone (not from renshu's code). A board is a list of 4 rows, each a list
of 4 tile values (0 for empty, else 2, 4, 8, ...). Actions: 0 left, 1 right, 2 up, 3 down.

Rules: tiles slide toward the move direction; two equal neighbours (after sliding) merge into
their sum, each tile at most once per move, the merge nearest the wall first; the reward is the
sum of the merged tiles; two 32768 tiles do not merge (the cap).

(Rows are memoised only to keep the property tests fast; the logic is the plain loop.)
"""

from __future__ import annotations

import functools

CAP = 32768
LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3

Board = list[list[int]]


def slide_row_left(row: list[int]) -> tuple[list[int], int]:
    """Slide one row of tile values to the left. Returns (new row, reward)."""
    new, reward = _slide_left(tuple(row))
    return list(new), reward


@functools.lru_cache(maxsize=1 << 16)
def _slide_left(row: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    stack: list[int] = []
    merged: list[bool] = []  # merged[i]: stack[i] was created by a merge this move
    reward = 0
    for value in row:
        if value == 0:
            continue
        if stack and stack[-1] == value and not merged[-1] and value < CAP:
            stack[-1] = 2 * value
            merged[-1] = True
            reward += 2 * value
        else:
            stack.append(value)
            merged.append(False)
    return tuple(stack) + (0,) * (len(row) - len(stack)), reward


def _transpose(board: Board) -> Board:
    return [[board[r][c] for r in range(4)] for c in range(4)]


def move(board: Board, action: int) -> tuple[Board, int]:
    """The board after ``action`` (without spawning a tile) and the reward."""
    if action not in (LEFT, RIGHT, UP, DOWN):
        raise ValueError(f"bad action {action}")
    grid = _transpose(board) if action in (UP, DOWN) else [list(r) for r in board]
    reverse = action in (RIGHT, DOWN)
    out: Board = []
    reward = 0
    for row in grid:
        line = row[::-1] if reverse else row
        new, r = slide_row_left(line)
        out.append(new[::-1] if reverse else new)
        reward += r
    if action in (UP, DOWN):
        out = _transpose(out)
    return out, reward


def changes(board: Board, action: int) -> bool:
    """Whether ``action`` changes the board."""
    return move(board, action)[0] != board


def legal(board: Board) -> list[bool]:
    return [changes(board, a) for a in range(4)]


def game_over(board: Board) -> bool:
    return not any(legal(board))


def empty_cells(board: Board) -> list[tuple[int, int]]:
    return [(r, c) for r in range(4) for c in range(4) if board[r][c] == 0]

"""The 4x3 grid world: dynamics against hand-worked paths, slip frequencies, batching, images."""

import numpy as np
import pytest
import torch

from renshu.core.nets import NatureCNN, make_torso
from renshu.envs.base import FunctionalEnv
from renshu.envs.gridworld import GOAL, PIT, START, WALL, GridWorld, cell
from renshu.envs.registry import make_env
from renshu.envs.specs import resolve
from renshu.runner.evaluate import evaluate, summarize

GRID = resolve("gridworld")

LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3


def _walk(game: GridWorld, start: int, actions: list[int]):
    """Step one game along ``actions``: (cells visited after each step, rewards, terminated)."""
    state, g = game.from_cells([start]), torch.Generator().manual_seed(0)
    cells, rewards, ends = [], [], []
    for a in actions:
        state, r, t = game.step(state, torch.tensor([a]), g)
        cells.append(int(state.pos[0]))
        rewards.append(round(float(r[0]), 6))
        ends.append(bool(t[0]))
    return cells, rewards, ends


def test_layout_matches_the_textbook_grid():
    assert START == cell(2, 0)  # bottom-left
    assert GOAL == cell(0, 3)  # top-right
    assert PIT == cell(1, 3)  # right of the middle row
    assert WALL == cell(1, 1)
    text = GridWorld().render_ansi(GridWorld().init(1, torch.Generator()), color=False)
    assert text.splitlines() == [" .  .  . +1", " . ##  . -1", " A  .  .  ."]


def test_deterministic_path_to_the_goal():
    game = GridWorld(slip=0)
    cells, rewards, ends = _walk(game, START, [UP, UP, RIGHT, RIGHT, RIGHT])
    assert cells == [cell(1, 0), cell(0, 0), cell(0, 1), cell(0, 2), GOAL]
    assert rewards == [-0.04, -0.04, -0.04, -0.04, 1.0]
    assert ends == [False, False, False, False, True]


def test_deterministic_path_into_the_pit():
    game = GridWorld(slip=0, step_cost=0.1)
    cells, rewards, ends = _walk(game, START, [RIGHT, RIGHT, UP, RIGHT])
    assert cells == [cell(2, 1), cell(2, 2), cell(1, 2), PIT]
    assert rewards == [-0.1, -0.1, -0.1, -1.0]
    assert ends == [False, False, False, True]


def test_wall_and_edges_block_moves():
    game = GridWorld(slip=0, step_cost=0)
    cases = [  # (start, action, where it ends)
        (cell(1, 0), RIGHT, cell(1, 0)),  # into the wall from the left
        (cell(1, 2), LEFT, cell(1, 2)),  # ... from the right
        (cell(0, 1), DOWN, cell(0, 1)),  # ... from above
        (cell(2, 1), UP, cell(2, 1)),  # ... from below
        (START, LEFT, START),  # off the grid
        (START, DOWN, START),
        (cell(0, 0), UP, cell(0, 0)),
        (cell(2, 3), RIGHT, cell(2, 3)),
        (cell(2, 3), UP, PIT),
        (cell(0, 2), RIGHT, GOAL),
        (cell(0, 2), DOWN, cell(1, 2)),
    ]
    starts = torch.tensor([c[0] for c in cases])
    actions = torch.tensor([c[1] for c in cases])
    state, reward, terminated = game.step(game.from_cells(starts), actions, torch.Generator())
    assert state.pos.tolist() == [c[2] for c in cases]
    assert reward.tolist() == [0.0] * 8 + [-1.0, 1.0, 0.0]
    assert terminated.tolist() == [False] * 8 + [True, True, False]


@pytest.mark.parametrize("slip", [0.2, 0.5])
def test_slip_frequencies(slip):
    """From the bottom row's third cell, 'up' reaches the cell above with p = 1 - slip and the
    left / right neighbours with slip / 2 each; 'left' slips 'down' into the edge (stays)."""
    n = 40_000
    game, g = GridWorld(slip=slip), torch.Generator().manual_seed(1)
    here = cell(2, 2)
    state = game.from_cells(torch.full((n,), here))
    up, _, _ = game.step(state, torch.full((n,), UP), g)
    freq = torch.bincount(up.pos, minlength=12).double() / n
    sd = (slip / 2 * (1 - slip / 2) / n) ** 0.5
    assert abs(freq[cell(1, 2)] - (1 - slip)) < 5 * sd
    assert abs(freq[cell(2, 1)] - slip / 2) < 5 * sd
    assert abs(freq[cell(2, 3)] - slip / 2) < 5 * sd
    assert float(freq[[cell(1, 2), cell(2, 1), cell(2, 3)]].sum()) == 1.0
    left, _, _ = game.step(state, torch.full((n,), LEFT), g)
    freq = torch.bincount(left.pos, minlength=12).double() / n
    assert abs(freq[cell(2, 1)] - (1 - slip)) < 5 * sd
    assert abs(freq[cell(1, 2)] - slip / 2) < 5 * sd  # slipped up
    assert abs(freq[here] - slip / 2) < 5 * sd  # slipped down: off the grid, stays


def test_slip_zero_never_slips_and_draws_no_random_numbers():
    game, g = GridWorld(slip=0), torch.Generator().manual_seed(3)
    before = g.get_state()
    state, _, _ = game.step(game.from_cells(torch.full((1000,), START)), torch.full((1000,), UP), g)
    assert bool((state.pos == cell(1, 0)).all())
    assert torch.equal(g.get_state(), before)


def test_batch_equals_one_by_one_and_same_seed_same_games():
    game = GridWorld(slip=0)
    gen = torch.Generator().manual_seed(0)
    cells = torch.tensor([c for c in range(12) if c != WALL])
    actions = torch.arange(cells.numel()) % 4
    batch, reward, term = game.step(game.from_cells(cells), actions, gen)
    for i in range(cells.numel()):
        one, r, t = game.step(game.from_cells(cells[i : i + 1]), actions[i : i + 1], gen)
        assert (int(one.pos[0]), float(r[0]), bool(t[0])) == (
            int(batch.pos[i]), float(reward[i]), bool(term[i]),
        )  # fmt: skip

    def play(seed):
        env = make_env("gridworld", num_envs=64, seed=seed)
        env.reset()
        act_gen = torch.Generator().manual_seed(99)
        out = []
        for _ in range(50):
            a = torch.randint(0, 4, (64,), generator=act_gen)
            obs, r, term, trunc, _ = env.step(a)
            out.append(torch.cat([obs.argmax(1).float(), r, term.float(), trunc.float()]))
        return torch.stack(out)

    first = play(5)
    assert torch.equal(first, play(5))
    assert not torch.equal(first, play(6))


def test_observations():
    game = GridWorld()
    state = game.from_cells([START, GOAL, cell(1, 2)])
    onehot = game.observe(state)
    assert onehot.dtype == torch.float32 and onehot.shape == (3, 12)
    assert onehot.argmax(1).tolist() == [START, GOAL, cell(1, 2)]
    assert onehot.sum(1).tolist() == [1.0, 1.0, 1.0]
    coords = GridWorld(obs="coords").observe(state)
    assert coords.tolist() == [[0.0, 1.0], [1.0, 0.0], [pytest.approx(2 / 3), 0.5]]
    for mode in ("onehot", "coords", "rgb"):
        g = GridWorld(obs=mode)
        obs = g.observe(state)
        assert all(g.observation_space.contains(o.numpy()) for o in obs)


def test_rgb_observation_is_a_channels_first_image_nature_cnn_takes():
    game = GridWorld(obs="rgb")
    cells = [c for c in range(12) if c != WALL]
    obs = game.observe(game.from_cells(cells))
    assert obs.dtype == torch.uint8 and obs.shape == (11, 3, 84, 84)
    # The agent's disc colour sits at the centre of its cell (21-pixel cells, 10 pixels down).
    for i, c in enumerate(cells):
        row, col = divmod(c, 4)
        y, x = 10 + 21 * row + 10, 21 * col + 10
        assert obs[i, :, y, x].tolist() == [40, 90, 220]
    assert len({bytes(o.numpy()) for o in obs}) == 11  # every cell gives a distinct frame
    # Goal, pit and wall colours where the agent is not.
    start = obs[0]
    assert start[:, 10 + 10, 63 + 10].tolist() == [40, 170, 60]  # goal
    assert start[:, 31 + 10, 63 + 10].tolist() == [210, 40, 40]  # pit
    assert start[:, 31 + 10, 21 + 10].tolist() == [60, 60, 60]  # wall
    torso = make_torso(game.observation_space)
    assert isinstance(torso, NatureCNN)
    assert torso(obs).shape == (11, 512)


def test_render_rgb_and_ansi():
    game = GridWorld()
    state = game.from_cells([START, GOAL])
    frame = game.render_rgb(state, 1, header="step 5  return 0.84")
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0
    assert game.render_rgb(state, 0).shape[0] < frame.shape[0]  # the header strip
    coloured = game.render_ansi(state, 1)
    assert "\x1b[" in coloured and "A" in coloured and "+1" not in coloured  # agent on the goal
    assert game.describe(state, 0) == "The agent is in the bottom row, first column."
    assert game.describe(state, 1) == (
        "The agent is in the top row, fourth column. It is on the goal."
    )


def test_step_limit_truncates_and_success_only_at_the_goal():
    env = make_env("gridworld", num_envs=2, seed=0, slip=0)
    assert env.max_episode_steps == 100
    env.reset()
    for t in range(100):  # walking into the left edge forever
        _, _, term, trunc, info = env.step(torch.tensor([LEFT, LEFT]))
        assert info["done"].tolist() == [t == 99, t == 99]
    assert trunc.tolist() == [True, True] and term.tolist() == [False, False]
    assert info["episode"]["length"].tolist() == [100, 100]
    assert info["episode"]["success"].tolist() == [False, False]
    assert info["episode"]["return"].tolist() == pytest.approx([-4.0, -4.0])


def _success_probability(plan: list[int], slip: float, steps: int) -> float:
    """P(reaching the goal from the start within ``steps`` moves) following ``plan[cell]``,
    by dynamic programming over a plain-Python model of the 4x3 grid."""

    def move(row, col, action):
        d_row, d_col = {LEFT: (0, -1), RIGHT: (0, 1), UP: (-1, 0), DOWN: (1, 0)}[action]
        r, c = row + d_row, col + d_col
        return (row, col) if not (0 <= r < 3 and 0 <= c < 4) or (r, c) == (1, 1) else (r, c)

    sideways = {LEFT: (UP, DOWN), RIGHT: (UP, DOWN), UP: (LEFT, RIGHT), DOWN: (LEFT, RIGHT)}
    p = {(r, c): 0.0 for r in range(3) for c in range(4)}  # success within k more moves
    for _ in range(steps):
        new = {(0, 3): 1.0, (1, 3): 0.0}
        for r, c in p:
            if (r, c) in new:
                continue
            a = plan[4 * r + c]
            outcomes = [(1 - slip, a)] + [(slip / 2, s) for s in sideways[a]]
            new[(r, c)] = sum(q * p[move(r, c, b)] for q, b in outcomes)
        p = new
    return p[(2, 0)]


def test_success_rate_in_the_evaluation_summary():
    path = {START: UP, cell(1, 0): UP, cell(0, 0): RIGHT, cell(0, 1): RIGHT, cell(0, 2): RIGHT}
    plan = torch.zeros(12, dtype=torch.int64)
    for c, a in path.items():
        plan[c] = a

    def act(obs, mask):
        return plan[obs.argmax(1)]

    env = FunctionalEnv(GridWorld(slip=0), num_envs=4, max_episode_steps=100, seed=0)
    summary = summarize(evaluate(act, env, episodes=10, seed=0), GRID)
    assert summary["success_rate"] == 1.0 and summary["mean_return"] == pytest.approx(0.84)
    # Right along the bottom row, then up past the pit: with slips it sometimes falls in.
    # Its exact success probability comes from a hand-written model of the textbook rules.
    plan = torch.tensor([RIGHT, RIGHT, RIGHT, UP, UP, UP, UP, UP, RIGHT, RIGHT, UP, LEFT])
    env = FunctionalEnv(GridWorld(), num_envs=100, max_episode_steps=100, seed=0)
    summary = summarize(evaluate(act, env, episodes=4000, seed=0), GRID)
    exact = _success_probability(plan.tolist(), slip=0.2, steps=100)
    assert 0.7 < exact < 0.9
    sd = (exact * (1 - exact) / 4000) ** 0.5
    assert abs(summary["success_rate"] - exact) < 4 * sd
    # Right along the bottom row, then up into the pit: never a success.
    pit_plan = torch.full((12,), RIGHT)
    pit_plan[cell(2, 3)] = UP
    env = FunctionalEnv(GridWorld(slip=0), num_envs=4, max_episode_steps=100, seed=0)
    summary = summarize(evaluate(lambda o, m: pit_plan[o.argmax(1)], env, episodes=8, seed=0), GRID)
    assert summary["success_rate"] == 0.0 and summary["mean_return"] == pytest.approx(-1.12)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"obs": "pixels"}, "env option 'obs' of gridworld must be one of onehot, coords, rgb"),
        ({"slip": "1.5"}, "env option 'slip' of gridworld must be a float in [0, 1], got 1.5"),
        ({"slip": "lots"}, "env option 'slip' of gridworld must be a float in [0, 1], got 'lots'"),
        ({"step_cost": "x"}, "env option 'step_cost' of gridworld must be a float"),
        ({"walls": "2"}, "unknown env option 'walls' for gridworld. Valid options: obs"),
    ],
)
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(ValueError, match=None) as err:
        make_env("gridworld", **options)
    assert message in str(err.value)


def test_options_from_the_command_line_are_parsed():
    env = make_env("gridworld", slip="0", step_cost="0.5", obs="coords")
    assert env.game.slip == 0.0 and env.game.step_cost == 0.5
    assert env.observation_space.shape == (2,)
    with pytest.raises(ValueError, match="cells must lie in"):
        GridWorld().from_cells([WALL])


def test_ppo_trains_on_rgb_frames(tmp_path):
    """PPO runs end to end on the image observation (NatureCNN torso), eval reports success."""
    from renshu.runner import RunSpec, start_run

    spec = RunSpec(
        algo="ppo", env="gridworld", env_options={"obs": "rgb"}, seed=0, steps=64,
        eval_every=10**9, eval_episodes=4, animation=False, threads=1,
    )  # fmt: skip
    _, summary = start_run(
        spec, {"num_envs": 4, "num_steps": 16, "num_minibatches": 2, "update_epochs": 1},
        run_dir=tmp_path / "run", progress=False,
    )  # fmt: skip
    assert summary["env_steps"] == 64
    assert summary["last_eval"]["episodes"] == 4
    assert 0.0 <= summary["last_eval"]["success_rate"] <= 1.0

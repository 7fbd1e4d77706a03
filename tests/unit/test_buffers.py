"""Replay buffer: n-step windows, bootstrap observations, ring wrap-around, prioritized sampling,
importance weights, memory accounting; and Q-learning targets, all against hand computations."""

import math

import pytest
import torch

from renshu.core.buffers import ReplayBuffer, SumTree
from renshu.core.returns import q_targets

F, T = False, True


# -- Q-learning targets ---------------------------------------------------------------------


def test_double_dqn_targets_by_hand():
    returns = torch.tensor([1.0, 1.0, 2.0])
    discounts = torch.tensor([0.9, 0.5, 0.0])
    online = torch.tensor([[1.0, 3.0], [2.0, 0.0], [0.0, 9.0]])
    target = torch.tensor([[5.0, 7.0], [4.0, 6.0], [8.0, 8.0]])
    # Double: online picks [1, 0, 1]; target rates them [7, 4, 8]; the terminal row adds 0.
    y = q_targets(returns, discounts, online, target, double=True)
    torch.testing.assert_close(y, torch.tensor([1 + 0.9 * 7, 1 + 0.5 * 4, 2.0]))
    # Plain DQN: max of the target network: [7, 6, 8].
    y = q_targets(returns, discounts, online, target, double=False)
    torch.testing.assert_close(y, torch.tensor([1 + 0.9 * 7, 1 + 0.5 * 6, 2.0]))


def test_q_targets_never_bootstrap_from_illegal_actions():
    returns, discounts = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    online = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    target = torch.tensor([[5.0, 7.0], [4.0, 6.0]])
    mask = torch.tensor([[T, F], [F, T]])
    torch.testing.assert_close(
        q_targets(returns, discounts, online, target, mask, double=True), torch.tensor([5.0, 6.0])
    )
    torch.testing.assert_close(
        q_targets(returns, discounts, online, target, mask, double=False),
        torch.tensor([5.0, 6.0]),
    )
    # A state with no legal move (a lost 2048 board) only ever appears after a terminal: its
    # discount is 0 and the target stays finite.
    none_legal = torch.zeros(2, 2, dtype=torch.bool)
    y = q_targets(returns, torch.zeros(2), online, target, none_legal)
    torch.testing.assert_close(y, torch.zeros(2))


# -- n-step windows on a scripted two-env stream -------------------------------------------

# Env 0: rewards t+1, terminates after t=3 and after t=8.  Env 1: rewards 10(t+1), cut by the
# time limit after t=4 (final observation 999) and after t=9 (final 998).
STEPS = 11
TERM = {(0, 3), (0, 8)}
CUT = {(1, 4): 999.0, (1, 9): 998.0}


def _stream():
    """(obs [2,1], action [2], reward [2], terminal [2], done [2], final [2,1]) per step."""
    for t in range(STEPS):
        obs = torch.tensor([[float(t)], [100.0 + t]])
        action = torch.tensor([t % 2, (t + 1) % 2])
        reward = torch.tensor([t + 1.0, 10.0 * (t + 1)])
        terminal = torch.tensor([(0, t) in TERM, (1, t) in TERM])
        done = torch.tensor([(0, t) in TERM or (0, t) in CUT, (1, t) in TERM or (1, t) in CUT])
        final = torch.tensor([[-1.0], [CUT.get((1, t), -1.0)]])
        yield obs, action, reward, terminal, done, final


def _reference(n, gamma):
    """Per-transition loop: (return, discount, next obs value) for each (t, env)."""
    steps = list(_stream())
    out = {}
    for t in range(STEPS):
        for e in range(2):
            ret, m, nxt, disc = 0.0, 0, None, None
            for j in range(n):
                if t + j >= STEPS:
                    break
                _, _, rew, term, done, final = steps[t + j]
                ret += gamma**j * float(rew[e])
                m += 1
                if bool(term[e]):
                    disc, nxt = 0.0, None
                    break
                if bool(done[e]):
                    disc, nxt = gamma**m, float(final[e, 0])
                    break
            else:
                if t + n < STEPS:
                    disc, nxt = gamma**m, float(steps[t + n][0][e, 0])
            if disc is not None:
                out[(t, e)] = (ret, disc, nxt)
    return out


def _fill(buffer):
    for obs, action, reward, terminal, done, final in _stream():
        parts = {"obs": obs, "mask": torch.ones(2, 2, dtype=torch.bool)}
        buffer.add(parts, action, reward, terminal, done, {"obs": final, "mask": parts["mask"]})


def _parts():
    return {"obs": ((1,), torch.float32), "mask": ((2,), torch.bool)}


def test_n_step_returns_by_hand():
    buf = ReplayBuffer(100, 2, _parts(), n_step=3, gamma=0.5)
    _fill(buf)
    ref = _reference(3, 0.5)
    # Hand-computed entries of the reference (checks the reference itself).
    assert ref[(0, 0)] == (1 + 0.5 * 2 + 0.25 * 3, 0.125, 3.0)  # three steps, then obs of t=3
    assert ref[(2, 0)][:2] == (3 + 0.5 * 4, 0.0)  # terminal after t=3: no bootstrap
    assert ref[(3, 1)] == (40 + 0.5 * 50, 0.25, 999.0)  # cut after t=4: final observation
    assert ref[(5, 1)] == (60 + 0.5 * 70 + 0.25 * 80, 0.125, 108.0)  # new episode
    b = buf.sample(4000, torch.Generator().manual_seed(0))
    seen = set()
    for i in range(4000):
        row, env = divmod(int(b.indices[i]), 2)
        t = row  # no wrap-around: capacity 100
        assert float(b.obs["obs"][i, 0]) == (t if env == 0 else 100 + t)
        assert int(b.actions[i]) == (t + env) % 2
        ret, disc, nxt = ref[(t, env)]
        assert float(b.returns[i]) == pytest.approx(ret)
        assert float(b.discounts[i]) == pytest.approx(disc)
        if disc > 0:
            assert float(b.next_obs["obs"][i, 0]) == nxt
        seen.add((t, env))
    # Exactly the transitions whose n-step window is complete are sampled.
    complete = {(t, e) for t in range(STEPS - 3) for e in range(2)}
    assert seen == complete
    assert len(buf) == len(complete)
    assert torch.equal(b.weights, torch.ones(4000))


@pytest.mark.parametrize("n", [1, 2])
def test_ring_wraps_and_keeps_the_newest_transitions(n):
    # 6 rows for 2 envs: after 11 steps rows hold t = 6..10 and 5.
    buf = ReplayBuffer(12, 2, _parts(), n_step=n, gamma=0.9)
    assert buf.rows == 6
    _fill(buf)
    ref = _reference(n, 0.9)
    b = buf.sample(3000, torch.Generator().manual_seed(1))
    seen = set()
    for i in range(3000):
        env = int(b.indices[i]) % 2
        t = int(b.obs["obs"][i, 0]) - 100 * env
        ret, disc, nxt = ref[(t, env)]
        assert float(b.returns[i]) == pytest.approx(ret)
        assert float(b.discounts[i]) == pytest.approx(disc)
        if disc > 0:
            assert float(b.next_obs["obs"][i, 0]) == nxt
        seen.add(t)
    # Oldest kept row: t = 5; newest with a complete window: t = 10 - n.
    assert seen == set(range(5, STEPS - n))


def test_checkpoint_round_trip_samples_identically():
    buf = ReplayBuffer(12, 2, _parts(), n_step=2, gamma=0.9, prioritized=True)
    _fill(buf)
    buf.update_priorities(torch.tensor([0, 3, 5]), torch.tensor([2.0, 0.5, 1.0]))
    copy = ReplayBuffer(12, 2, _parts(), n_step=2, gamma=0.9, prioritized=True)
    copy.load_state_dict(buf.state_dict())
    a = buf.sample(64, torch.Generator().manual_seed(3))
    b = copy.sample(64, torch.Generator().manual_seed(3))
    assert torch.equal(a.indices, b.indices) and torch.equal(a.returns, b.returns)
    with pytest.raises(ValueError, match="buffer_size or num_envs"):
        ReplayBuffer(40, 2, _parts()).load_state_dict(buf.state_dict())


# -- prioritized replay ----------------------------------------------------------------------


def test_sum_tree_sums_and_search():
    tree = SumTree(5, torch.device("cpu"))
    tree.set(torch.arange(5), torch.tensor([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert float(tree.total) == 10.0
    mass = torch.tensor([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    assert tree.find(mass).tolist() == [0, 0, 2, 2, 3, 3, 4, 4]  # never the empty leaf 1
    tree.set(torch.tensor([2]), torch.tensor([0.5]))
    assert float(tree.total) == 8.5


def test_prioritized_frequencies_follow_priorities_and_weights():
    n_envs, rows = 4, 6
    buf = ReplayBuffer(
        rows * n_envs, n_envs, {"obs": ((1,), torch.float32), "mask": ((2,), torch.bool)},
        prioritized=True, alpha=0.5, eps=1e-9,
    )  # fmt: skip
    for t in range(rows):
        buf.add(
            {"obs": torch.full((n_envs, 1), float(t)), "mask": torch.ones(n_envs, 2, dtype=bool)},
            torch.zeros(n_envs, dtype=torch.long), torch.ones(n_envs),
            torch.zeros(n_envs, dtype=bool), torch.zeros(n_envs, dtype=bool),
        )  # fmt: skip
    valid = torch.arange((rows - 1) * n_envs)  # rows 0..4 complete (n_step 1)
    assert len(buf) == valid.numel()
    # New transitions enter at the maximum priority (1 here).
    assert torch.equal(buf.tree.get(valid), torch.ones(valid.numel(), dtype=torch.float64))
    td = (valid % 5 + 1).float() ** 2  # priorities (|td|)^0.5 = 1..5
    buf.update_priorities(valid, td)
    prio = (valid % 5 + 1).double()
    probs = prio / prio.sum()
    g = torch.Generator().manual_seed(0)
    draws, batch = 200, 500
    counts = torch.zeros(buf.capacity, dtype=torch.float64)
    for _ in range(draws):
        b = buf.sample(batch, g, beta=0.6)
        counts += torch.bincount(b.indices, minlength=buf.capacity).double()
        # Importance weights: (size * P(i))^-beta, normalised by the batch maximum.
        w = (valid.numel() * probs[b.indices]).pow(-0.6)
        torch.testing.assert_close(b.weights, (w / w.max()).float())
    total = draws * batch
    assert counts[valid.numel() :].sum() == 0  # the incomplete last row is never drawn
    freq = counts[: valid.numel()] / total
    sigma = (probs * (1 - probs) / total).sqrt()
    assert ((freq - probs).abs() <= 4 * sigma + 1e-9).all(), (freq, probs)


def test_prioritized_new_rows_and_overwritten_rows():
    buf = ReplayBuffer(6, 2, _parts(), n_step=2, prioritized=True)  # 3 rows? no: >= n+2 rows
    assert buf.rows == 4
    _fill(buf)  # 11 steps into 4 rows: rows hold t = 8, 9, 10 and 7
    # Only windows complete: t = 7, 8 (t = 9 needs t = 10's successor).
    nonzero = (buf.tree.get(torch.arange(buf.capacity)) > 0).nonzero().squeeze(1)
    times = sorted({int(buf.data["obs"][int(i) // 2, int(i) % 2, 0]) % 100 for i in nonzero})
    assert times == [7, 8]


# -- memory ----------------------------------------------------------------------------------


def test_buffer_that_cannot_fit_is_refused_with_its_size():
    parts = {"obs": ((4, 84, 84), torch.uint8), "mask": ((4,), torch.bool)}
    with pytest.raises(MemoryError, match=r"needs [0-9.]+ GB .*--buffer-size"):
        ReplayBuffer(10**12, 8, parts, frame_stack=4)


def test_atari_slot_stores_one_frame():
    parts = {"obs": ((4, 84, 84), torch.uint8), "mask": ((4,), torch.bool)}
    buf = ReplayBuffer(1_000, 8, parts, frame_stack=4, max_episode_steps=27_000)
    assert tuple(buf.data["obs"].shape) == (buf.rows, 8, 84, 84)
    assert buf.data["obs"].dtype == torch.uint8
    per_slot = buf.slot_bytes()
    assert 84 * 84 <= per_slot < 84 * 84 + 64
    # 1M transitions: one frame each plus bookkeeping, well under 8 GB (the naive layout of
    # obs and next_obs as float-free uint8 stacks needs 2 * 4 * 84 * 84 bytes = 56.4 GB).
    assert 1_000_000 * per_slot < 8e9 and math.isclose(2 * 4 * 84 * 84 * 1e6 / 1e9, 56.448)


def test_prioritized_frame_stacks_never_sample_rows_without_history():
    # 8 rows for 2 envs, stacks of 4: after wrapping, the 3 rows after the newest one have
    # lost frames their stacks need, and the newest row has no successor yet.
    parts = {"obs": ((4, 2, 2), torch.uint8), "mask": ((2,), torch.bool)}
    buf = ReplayBuffer(16, 2, parts, frame_stack=4, prioritized=True)
    assert buf.rows == 8
    ones, no = torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    for t in range(13):  # row = t % 8; the last add wrote row 4
        frame = torch.full((2, 4, 2, 2), t, dtype=torch.uint8)
        buf.add({"obs": frame, "mask": ones}, torch.zeros(2, dtype=torch.long), torch.ones(2),
                no, no)  # fmt: skip
    priority = buf.tree.get(torch.arange(16)).view(8, 2)
    assert (priority[[4, 5, 6, 7]] == 0).all() and (priority[[0, 1, 2, 3]] > 0).all()
    b = buf.sample(500, torch.Generator().manual_seed(0))
    assert set((b.indices // 2).tolist()) == {0, 1, 2, 3}

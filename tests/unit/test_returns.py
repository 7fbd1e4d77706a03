"""GAE and n-step returns against hand computations."""

import torch

from renshu.core.returns import gae, normalize

F, T_ = False, True


def _t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype)


def test_gae_single_env_by_hand():
    # 3 steps, one env, no episode end; gamma 0.9, lambda 0.8.
    r, v, nv = _t([[1.0], [2.0], [3.0]]), _t([[0.5], [1.0], [1.5]]), _t([2.0])
    term = trunc = torch.zeros(3, 1, dtype=torch.bool)
    adv, ret = gae(r, v, term, trunc, nv, gamma=0.9, lam=0.8)
    d2 = 3 + 0.9 * 2.0 - 1.5  # 3.3
    d1 = 2 + 0.9 * 1.5 - 1.0  # 2.35
    d0 = 1 + 0.9 * 1.0 - 0.5  # 1.4
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    torch.testing.assert_close(adv[:, 0], _t([a0, a1, a2]))
    torch.testing.assert_close(ret, adv + v)


def test_gae_termination_and_truncation():
    # Env 0 terminates after step 1; env 1 is truncated after step 1 (bootstraps on V(final)=10).
    r = _t([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    v = _t([[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    term = torch.tensor([[F, F], [T_, F], [F, F]])
    trunc = torch.tensor([[F, F], [F, T_], [F, F]])
    final = _t([[0.0, 0.0], [0.0, 10.0], [0.0, 0.0]])
    nv = _t([5.0, 5.0])
    g, lam = 0.5, 1.0
    adv, _ = gae(r, v, term, trunc, nv, gamma=g, lam=lam, final_values=final)
    # Step 2 (new episodes): delta = 1 + 0.5*5 - 4 = -0.5 for both.
    # Env 0 step 1: delta = 1 + 0 - 3 = -2, no carry.
    # Step 0: delta = 1 + 0.5*3 - 2 = 0.5; A = 0.5 + 0.5*(-2)
    # Env 1 step 1: delta = 1 + 0.5*10 - 3 = 3. Step 0: A = 0.5 + 0.5*3
    torch.testing.assert_close(adv[:, 0], _t([0.5 - 1.0, -2.0, -0.5]))
    torch.testing.assert_close(adv[:, 1], _t([0.5 + 1.5, 3.0, -0.5]))
    # Without final values a truncation is treated like a termination.
    adv2, _ = gae(r, v, term, trunc, nv, gamma=g, lam=lam)
    torch.testing.assert_close(adv2[1, 1], torch.tensor(1.0 - 3.0))


def _discounted(r, term, trunc, next_value, gamma, final=None):
    """n-step bootstrapped returns, one env and one step at a time."""
    T, N = r.shape
    out = torch.empty_like(r)
    for n in range(N):
        running = float(next_value[n])
        for t in reversed(range(T)):
            if term[t, n]:
                running = 0.0
            elif trunc[t, n]:
                running = 0.0 if final is None else float(final[t, n])
            running = float(r[t, n]) + gamma * running
            out[t, n] = running
    return out


def test_gae_lambda_one_equals_discounted_return_minus_value():
    torch.manual_seed(0)
    r, v = torch.randn(6, 3), torch.randn(6, 3)
    term = torch.rand(6, 3) < 0.2
    trunc = torch.zeros(6, 3, dtype=torch.bool)
    nv = torch.randn(3)
    adv, ret = gae(r, v, term, trunc, nv, gamma=0.97, lam=1.0)
    torch.testing.assert_close(ret, _discounted(r, term, trunc, nv, gamma=0.97))
    torch.testing.assert_close(adv, ret - v)


def test_lambda_one_returns_bootstrap_from_final_values_by_hand():
    r = _t([[1.0], [1.0], [1.0], [1.0]])
    term = torch.tensor([[F], [T_], [F], [F]])
    trunc = torch.tensor([[F], [F], [F], [T_]])
    final = _t([[0.0], [0.0], [0.0], [8.0]])
    _, out = gae(r, torch.zeros(4, 1), term, trunc, _t([100.0]), 0.5, 1.0, final)
    # t=3 truncated: 1 + 0.5*8 = 5; t=2: 1 + 0.5*5 = 3.5; t=1 terminated: 1; t=0: 1.5
    torch.testing.assert_close(out[:, 0], _t([1.5, 1.0, 3.5, 5.0]))
    torch.testing.assert_close(out, _discounted(r, term, trunc, _t([100.0]), 0.5, final))


def test_normalize():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = normalize(x)
    assert abs(y.mean().item()) < 1e-6 and abs(y.std(unbiased=False).item() - 1) < 1e-5

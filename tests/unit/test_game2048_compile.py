"""Game2048(compile=True) plays exactly the same games as the eager step."""

import torch

from renshu.envs.base import FunctionalEnv, random_legal_actions
from renshu.envs.game2048 import Game2048


def test_compiled_step_matches_eager():
    envs = [FunctionalEnv(Game2048(compile=c), num_envs=256, seed=5) for c in (False, True)]
    outs = [env.reset(seed=5) for env in envs]
    gen = torch.Generator().manual_seed(0)
    finished = 0
    for _ in range(300):
        action = random_legal_actions(outs[0][1]["action_mask"], gen)
        results = [env.step(action) for env in envs]
        (o0, r0, t0, _, i0), (o1, r1, t1, _, i1) = results
        assert torch.equal(o0, o1) and torch.equal(r0, r1) and torch.equal(t0, t1)
        assert torch.equal(i0["action_mask"], i1["action_mask"])
        assert torch.equal(i0["episode"]["score"], i1["episode"]["score"])
        finished += int(t0.sum())
        outs = [(o0, i0), (o1, i1)]
    assert finished > 0  # auto-resets were exercised too


def test_compile_option_from_text():
    assert Game2048(compile="true").compile and not Game2048(compile="false").compile

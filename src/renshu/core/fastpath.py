"""The one place renshu calls private torch APIs, each because it was measured to matter.

* :class:`FusedAdam`: ``torch.optim.Adam(fused=True)`` whose ``step`` calls the fused kernel
  (``torch._fused_adam_``) directly, skipping the general path's bookkeeping (grouping tensors
  by device and dtype, option checks). For DQN's small Q-networks on a CPU that bookkeeping is
  a measurable share of a gradient step: DQN on CartPole trained 8.9% faster with it
  (20k steps, one thread; docs/benchmarks.md). PPO's stacked network has one flat parameter,
  where the public optimizer costs the same, so PPO, A2C and GRPO use the public one.

``tests/unit/test_fastpath.py`` checks the private signatures used here, so a torch upgrade that
changes them fails there, loudly, instead of silently elsewhere.
"""

from __future__ import annotations

import torch


class FusedAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` with a direct kernel call (see the module docstring).

    The same kernel, state and ``state_dict`` as :class:`torch.optim.Adam`. Anything beyond
    renshu's use (a closure, amsgrad, maximize, weight decay, tensors on several devices or
    dtypes) goes through ``torch.optim.Adam.step``. ``grad_scale`` / ``found_inf`` attributes are
    honoured as there (see :func:`renshu.core.nets.guarded_step`).
    """

    def __init__(self, params, lr: float, eps: float = 1e-5):
        super().__init__(params, lr=lr, eps=eps, fused=True)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            return super().step(closure)
        grad_scale = vars(self).get("grad_scale")
        found_inf = vars(self).get("found_inf")
        for group in self.param_groups:
            if group["amsgrad"] or group["maximize"] or group["weight_decay"]:
                return super().step()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if len({(p.device, p.dtype) for p in params}) > 1:
                super().step()  # the general path groups tensors by device and dtype
                continue
            if any(not self.state[p] for p in params):  # lazy state, made as Adam makes it
                self._init_group(group, [], [], [], [], [], [])
            states = [self.state[p] for p in params]
            steps = [st["step"] for st in states]
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, [p.grad for p in params], [st["exp_avg"] for st in states],
                [st["exp_avg_sq"] for st in states], [], steps, amsgrad=False, lr=group["lr"],
                beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False,
                grad_scale=grad_scale, found_inf=found_inf,
            )  # fmt: skip
            if found_inf is not None:  # a skipped step does not count
                torch._foreach_sub_(steps, [found_inf] * len(steps))
        return None

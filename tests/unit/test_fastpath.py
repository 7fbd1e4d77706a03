"""The private torch APIs of renshu.core.fastpath: their signatures, and FusedAdam equal to
torch.optim.Adam(fused=True) step for step."""

import inspect

import torch

from renshu.core.fastpath import FusedAdam


def test_private_signatures_are_the_ones_fastpath_calls():
    """Fails loudly when a torch upgrade changes what FusedAdam relies on."""
    schema = str(torch.ops.aten._fused_adam_.default._schema)
    for part in ("Tensor(a!)[] self", "Tensor(b!)[] grads", "Tensor(c!)[] exp_avgs",
                 "Tensor(d!)[] exp_avg_sqs", "Tensor(e!)[] max_exp_avg_sqs",
                 "Tensor[] state_steps", "float lr", "float beta1", "float beta2",
                 "float weight_decay", "float eps", "bool amsgrad", "bool maximize",
                 "Tensor? grad_scale=None", "Tensor? found_inf=None"):  # fmt: skip
        assert part in schema, (part, schema)
    params = list(inspect.signature(torch.optim.Adam._init_group).parameters)
    assert params == ["self", "group", "params_with_grad", "grads", "exp_avgs", "exp_avg_sqs",
                      "max_exp_avg_sqs", "state_steps"], params  # fmt: skip
    assert callable(torch._foreach_add_) and callable(torch._foreach_sub_)


def test_fused_adam_equals_torch_adam():
    """The same weights, moments and step counts as torch.optim.Adam(fused=True), with
    gradient scaling and skipped (found_inf) steps; its state_dict is torch's."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt_ours = FusedAdam(ours, lr=1e-2)
    opt_theirs = torch.optim.Adam(theirs, lr=1e-2, eps=1e-5, fused=True)
    for i in range(12):
        for p, q in zip(ours, theirs):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        for opt in (opt_ours, opt_theirs):
            opt.grad_scale = torch.tensor(1.0 + i % 3)
            opt.found_inf = torch.tensor(float(i % 5 == 0))
            opt.step()
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_ours.state[p][key], opt_theirs.state[q][key])
    assert float(opt_ours.state[ours[0]]["step"]) == 12 - 3  # steps 0, 5 and 10 were skipped
    fresh = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for p in ours], fused=True)
    fresh.load_state_dict(opt_ours.state_dict())

"""guarded_step and the Nature CNN against their plain PyTorch equivalents."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from renshu.core.nets import NatureCNN, adam, guarded_step


def _net_and_loss(seed: int, scale: float):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    x, y = torch.randn(32, 4), torch.randn(32, 2)
    return net, lambda m: scale * F.mse_loss(m(x), y)


@pytest.mark.parametrize("scale", [1e-3, 50.0])  # the norm below / above max_grad_norm
def test_guarded_step_equals_clip_grad_norm_then_adam(scale):
    net, loss_fn = _net_and_loss(0, scale)
    ref = copy.deepcopy(net)
    opt = adam(list(net.parameters()), 1e-2)  # fused: clipping happens inside the kernel
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-2, eps=1e-5, foreach=False)
    clipped = []
    for _ in range(5):
        loss = loss_fn(net)
        opt.zero_grad()
        loss.backward()
        skipped = guarded_step(opt, list(net.parameters()), 0.5, loss)
        assert skipped.item() == 0.0
        ref_loss = loss_fn(ref)
        ref_opt.zero_grad()
        ref_loss.backward()
        clipped.append(nn.utils.clip_grad_norm_(ref.parameters(), 0.5).item() > 0.5)
        ref_opt.step()
    assert all(clipped) if scale > 1 else not any(clipped)
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_guarded_step_skips_a_nonfinite_loss_and_keeps_weights_and_moments(fused):
    net, loss_fn = _net_and_loss(1, 1.0)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=1e-2, fused=fused)
    loss = loss_fn(net)
    loss.backward()
    guarded_step(opt, params, 0.5, loss)  # one good step: moments exist
    before = copy.deepcopy(net.state_dict())
    moments = copy.deepcopy(opt.state_dict()["state"])
    opt.zero_grad()
    loss = loss_fn(net) * float("nan")
    loss.backward()
    assert guarded_step(opt, params, 0.5, loss).item() == 1.0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            assert torch.equal(v, moments[i][k]), (i, k)


def test_guarded_step_without_gradients_steps_nothing():
    net, _ = _net_and_loss(2, 1.0)
    params = list(net.parameters())
    before = copy.deepcopy(net.state_dict())
    assert guarded_step(adam(params, 1e-2), params, 0.5).item() == 0.0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_nature_cnn_equals_the_plain_network_on_frames_over_255():
    torch.manual_seed(0)
    cnn = NatureCNN()
    plain = copy.deepcopy(cnn.body).to(memory_format=torch.contiguous_format)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(cnn(obs), plain(obs.float() / 255.0), rtol=1e-4, atol=1e-5)
    cnn(obs).sum().backward()
    plain(obs.float() / 255.0).sum().backward()
    g, h = cnn.body[0].weight.grad, plain[0].weight.grad
    torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-5)

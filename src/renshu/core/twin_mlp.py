"""An actor and a critic MLP on vector observations, run as one batched network.

:class:`~renshu.core.policy.ActorCritic` with separate torsos on a flat observation (CartPole,
any Gymnasium vector env) is two independent MLPs of the same shape::

    actor:  obs -> Linear -> act -> ... -> Linear -> act -> Linear(A)  = logits
    critic: obs -> Linear -> act -> ... -> Linear -> act -> Linear(1)  = value

:class:`TwinMLPActorCritic` is exactly that network with its weights stacked: the hidden layers
of the two MLPs are one ``[2, in, out]`` tensor each and run as one batched matmul
(``baddbmm``), and all weights live in one flat parameter. Its backward pass is written in
closed form and writes every weight's gradient straight into its slice of one flat gradient, so
autograd records one node for the whole network (:class:`_TwinMLP`), and PPO's gradient step
builds no graph at all (:meth:`TwinMLPActorCritic.gradient`). For networks this small the
per-op overhead of eager PyTorch, not arithmetic, sets the pace on a CPU; this is how renshu
spends fewer ops per gradient step.

It is built from an :class:`ActorCritic` (same initialisation, same outputs;
``tests/unit/test_twin_mlp.py`` checks outputs and every gradient against it) and behaves like
one: ``forward(obs) -> (logits, value)``, ``logits(obs)``, ``value(obs)``, ``gradient(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class _Layout:
    """The weights' shapes in the order they lie in the flat parameter: per hidden layer
    ``W [2, in, out]`` and ``b [2, 1, out]``, then the actor head's ``W [h, A]``, ``b [A]`` and
    the critic head's ``W [h, 1]``, ``b [1]``."""

    shapes: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]
    relu: bool


def _views(flat: torch.Tensor, layout: _Layout):
    """The weights as views of ``flat`` (or of its gradient): hidden ``[(W, b), ...]``, actor
    head ``(W, b)``, critic head ``(W, b)``."""
    views = [t.view(shape) for t, shape in zip(flat.split(layout.sizes), layout.shapes)]
    hidden = list(zip(views[:-4:2], views[1:-4:2]))
    return hidden, (views[-4], views[-3]), (views[-2], views[-1])


class _Weights:
    """The layout, and views of the flat parameter and of gradient buffers, made once per
    storage (the optimizer and ``load_state_dict`` write into the parameter in place): splitting
    a tensor into a dozen views costs more than a 64-unit layer's matmul on a CPU."""

    def __init__(self, layout: _Layout):
        self.layout = layout
        self._views: dict = {}
        self._grad = None  # the autograd path's reused gradient buffer

    def views(self, flat: torch.Tensor):
        # The cached views hold their storage, so an address cannot be reused while cached.
        key = (flat.data_ptr(), flat.dtype, flat.device)
        if key not in self._views:
            if len(self._views) >= 4:  # parameter, gradients, an old copy: no more
                self._views.clear()
            self._views[key] = _views(flat, self.layout)
        return self._views[key]

    def grad_buffer(self, flat: torch.Tensor) -> torch.Tensor:
        if self._grad is None or (self._grad.dtype, self._grad.device) != (flat.dtype, flat.device):
            self._grad = torch.empty_like(flat)
        return self._grad


def _forward(obs: torch.Tensor, flat: torch.Tensor, weights: _Weights):
    """``(logits [B, A], value [B], activations)``; activations[l] is layer l's input
    (``[2, B, in]``; the first is the observation, expanded without a copy)."""
    layout = weights.layout
    hidden, (wa, ba), (wc, bc) = weights.views(flat)
    x = obs.reshape(obs.shape[0], -1).to(flat.dtype)
    h = x.unsqueeze(0).expand(2, *x.shape)
    acts = [h]
    for w, b in hidden:
        h = torch.baddbmm(b, h, w)
        h = h.relu_() if layout.relu else h.tanh_()
        acts.append(h)
    logits = torch.addmm(ba, h[0], wa)
    value = torch.addmm(bc, h[1], wc).squeeze(1)
    return logits, value, acts


class _TwinMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, obs, flat, weights):
        logits, value, acts = _forward(obs, flat, weights)
        ctx.weights = weights
        ctx.save_for_backward(flat, *acts)
        return logits, value

    @staticmethod
    def backward(ctx, grad_logits, grad_value):
        flat, *acts = ctx.saved_tensors
        grad = ctx.weights.grad_buffer(flat)
        _backward(flat, acts, ctx.weights, grad_logits, grad_value, out=grad)
        # A copy: the buffer is rewritten by the next backward, possibly of the same graph.
        return None, grad.clone(), None


def _backward(flat, acts, weights: _Weights, grad_logits, grad_value, out: torch.Tensor) -> None:
    """Write the gradient with respect to ``flat`` into ``out``, given the gradients with
    respect to logits ``[B, A]`` and value ``[B]`` and the forward pass's activations."""
    relu = weights.layout.relu
    hidden, (wa, _), (wc, _) = weights.views(flat)
    g_hidden, (g_wa, g_ba), (g_wc, g_bc) = weights.views(out)
    grad_value = grad_value.unsqueeze(1)
    top = acts[-1]
    torch.mm(top[0].T, grad_logits, out=g_wa)
    torch.sum(grad_logits, 0, out=g_ba)
    torch.mm(top[1].T, grad_value, out=g_wc)
    torch.sum(grad_value, 0, out=g_bc)
    g_h = torch.empty_like(top)
    torch.mm(grad_logits, wa.T, out=g_h[0])
    torch.mm(grad_value, wc.T, out=g_h[1])
    for i in range(len(hidden) - 1, -1, -1):
        (w, _), (g_w, g_b), h_in, h_out = hidden[i], g_hidden[i], acts[i], acts[i + 1]
        if relu:
            g_z = g_h.masked_fill_(h_out <= 0, 0.0)
        else:
            g_z = torch.addcmul(g_h, g_h, h_out.square(), value=-1.0)  # g (1 - tanh^2)
        torch.bmm(h_in.transpose(1, 2), g_z, out=g_w)
        torch.sum(g_z, 1, keepdim=True, out=g_b)
        if i:
            g_h = torch.bmm(g_z, w.transpose(1, 2))


class TwinMLPActorCritic(nn.Module):
    """Separate actor and critic MLPs on flat observations, stacked (see the module docstring).

    ``TwinMLPActorCritic(actor_critic)`` copies the weights of an :class:`ActorCritic` with
    separate :class:`~renshu.core.nets.MLPTorso` torsos.
    """

    def __init__(self, actor_critic: nn.Module):
        super().__init__()
        actor = _linears(actor_critic.actor_torso.body) + [actor_critic.actor_head]
        critic = _linears(actor_critic.critic_torso.body) + [actor_critic.critic_head]
        activations = {type(m) for m in actor_critic.actor_torso.body if not _is_linear(m)}
        if activations not in ({nn.Tanh}, {nn.ReLU}):
            raise ValueError(f"TwinMLPActorCritic supports tanh or relu MLPs, got {activations}")
        shapes = [tuple(m.weight.shape) for m in actor[:-1]]
        if shapes != [tuple(m.weight.shape) for m in critic[:-1]]:
            raise ValueError("actor and critic torsos must have the same layer sizes")

        in_order = actor[:-1] + critic[:-1] + [actor[-1], critic[-1]]  # parameters() order
        weights = _stacked([t for m in in_order for t in (m.weight, m.bias)])
        self.layout = _Layout(
            tuple(tuple(w.shape) for w in weights),
            tuple(w.numel() for w in weights),
            activations == {nn.ReLU},
        )
        self.flat = nn.Parameter(torch.cat([w.detach().reshape(-1) for w in weights]))
        self._weights = _Weights(self.layout)

    def forward(
        self, obs: torch.Tensor, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [B, A], value [B])``."""
        _no_features(features)
        if torch.is_grad_enabled() and self.flat.requires_grad:
            return _TwinMLP.apply(obs, self.flat, self._weights)
        logits, value, _ = _forward(obs, self.flat.detach(), self._weights)
        return logits, value

    def value(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self(obs, features)[1]

    def gradient(self, obs: torch.Tensor, features: torch.Tensor | None, loss_and_grad):
        """Set (not accumulate) the gradient of a loss of the outputs, with no autograd graph.

        ``loss_and_grad(logits, value) -> (loss, stats, dL/dlogits, dL/dvalue)``; returns
        ``(loss, stats)``. The same contract as :meth:`ActorCritic.gradient`.
        """
        _no_features(features)
        flat = self.flat.detach()
        logits, value, acts = _forward(obs, flat, self._weights)
        loss, stats, grad_logits, grad_value = loss_and_grad(logits, value)
        if self.flat.grad is None:
            self.flat.grad = torch.empty_like(self.flat)
        _backward(flat, acts, self._weights, grad_logits, grad_value, out=self.flat.grad)
        return loss, stats

    def logits(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self(obs, features)[0]


def _stacked(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """ActorCritic's parameters in its ``parameters()`` order (actor torso W, b per layer,
    critic torso likewise, then the actor head's W, b and the critic head's W, b; or anything
    shaped like them, such as Adam's moments) as the twin's pieces, in the flat order."""
    layers = (len(tensors) - 4) // 4
    actor, critic = tensors[: 2 * layers], tensors[2 * layers : 4 * layers]
    pieces = []
    for i in range(0, 2 * layers, 2):
        pieces.append(torch.stack([actor[i].T, critic[i].T]))  # [2, in, out]
        pieces.append(torch.stack([actor[i + 1], critic[i + 1]])[:, None])  # [2, 1, out]
    wa, ba, wc, bc = tensors[4 * layers :]
    return pieces + [wa.T, ba, wc.T, bc]


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear)


def _linears(body: nn.Sequential) -> list[nn.Linear]:
    return [m for m in body if _is_linear(m)]


def _no_features(features: torch.Tensor | None) -> None:
    if features is not None:
        raise ValueError("this network takes no encoder features")

"""CartPole as pure batched torch functions, with exactly Gymnasium ``CartPole-v1``'s dynamics.

A pole is hinged to a cart that moves along a frictionless track; each step pushes the cart left
(action 0) or right (action 1) with a force of 10 N for ``tau = 0.02`` s, integrated with explicit
Euler, in the same order of operations as Gymnasium (the Barto, Sutton & Anderson equations).
The episode terminates when the cart leaves ``|x| <= 2.4`` or the pole leaves
``|theta| <= 12 degrees``; the reward is 1.0 for every step, the terminating one included.
``CartPole-v1``'s 500-step limit is not part of the game: :func:`renshu.envs.make_env` adds it
through :class:`~renshu.envs.base.FunctionalEnv`'s ``max_episode_steps``.

Initial states are uniform in ``[-0.05, 0.05]^4``, drawn from the explicit ``torch.Generator``.

The state is float32 by default, as Gymnasium's observations are: one step from the same state
agrees with Gymnasium's float64 step to about 1e-6. ``CartPole(dtype=torch.float64)`` keeps a
float64 state (observations are float32 either way), which follows Gymnasium's own float64
trajectories step for step over whole episodes. Termination compares the stored state with the
thresholds as exact real numbers, so a float32 state is terminal exactly when the same value in
float64 is terminal in Gymnasium.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

ACTIONS = ("left", "right")

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360
RESET_BOUND = 0.05


def _strict_bound(value: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` number ``b <= value``, so that ``x > b`` iff ``x > value`` exactly.

    (Comparing a float32 tensor with a Python float rounds the float to float32 first, which can
    round it up past a state that Gymnasium's float64 comparison calls terminal.)
    """
    if dtype == torch.float64:
        return value
    b = np.float32(value)
    if float(b) > value:
        b = np.nextafter(b, np.float32(-np.inf))
    return float(b)


@dataclass(frozen=True)
class CartPoleState:
    """``s [n, 4]``: rows ``(x, x_dot, theta, theta_dot)``; one tensor, so that a step updates
    all four with one add and a reset or auto-reset writes whole rows."""

    s: torch.Tensor

    @property
    def x(self) -> torch.Tensor:  # [n] cart position (m)
        return self.s[:, 0]

    @property
    def x_dot(self) -> torch.Tensor:  # [n] cart velocity (m/s)
        return self.s[:, 1]

    @property
    def theta(self) -> torch.Tensor:  # [n] pole angle from upright (rad)
        return self.s[:, 2]

    @property
    def theta_dot(self) -> torch.Tensor:  # [n] pole angular velocity (rad/s)
        return self.s[:, 3]


class CartPole:
    """Gymnasium's CartPole-v1 as pure batched functions (see the module docstring)."""

    name = "cartpole"
    num_actions = 2
    action_meanings = ACTIONS

    def __init__(self, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        high = np.array(
            [X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf],
            dtype=np.float32,
        )
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        # |state| > bounds, column by column (velocities are unbounded).
        self._bounds = torch.tensor(
            [_strict_bound(X_THRESHOLD, dtype), math.inf, _strict_bound(THETA_THRESHOLD, dtype),
             math.inf], dtype=dtype,
        )  # fmt: skip
        self._force = torch.tensor([-FORCE_MAG, FORCE_MAG], dtype=dtype)
        self._constants = {}  # (bounds, force) per device

    def __repr__(self) -> str:
        return "CartPole()" if self.dtype == torch.float32 else f"CartPole(dtype={self.dtype})"

    # -- pure functions ---------------------------------------------------------------------

    def init(self, n: int, generator: torch.Generator) -> CartPoleState:
        """``n`` states uniform in ``[-0.05, 0.05]^4``."""
        # Drawn as [4, n] (the order the generator's numbers always had), stored as [n, 4].
        u = torch.rand(4, n, generator=generator, device=generator.device, dtype=self.dtype)
        return CartPoleState((u * (2 * RESET_BOUND) - RESET_BOUND).T.contiguous())

    def from_observations(self, obs: torch.Tensor | np.ndarray) -> CartPoleState:
        """A state from ``[n, 4]`` rows ``(x, x_dot, theta, theta_dot)``, e.g. to fork a game."""
        t = torch.as_tensor(obs, dtype=self.dtype)
        if t.dim() != 2 or t.shape[1] != 4:
            raise ValueError(f"observations must have shape [n, 4], got {tuple(t.shape)}")
        return CartPoleState(t.contiguous())

    def step(
        self, state: CartPoleState, action: torch.Tensor, generator: torch.Generator
    ) -> tuple[CartPoleState, torch.Tensor, torch.Tensor]:
        s = state.s
        bounds, force_table = self._device_constants(s.device)
        x, x_dot, theta, theta_dot = s.unbind(1)
        force = force_table[action]
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        temp = (force + POLEMASS_LENGTH * theta_dot.square() * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * costheta.square() / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        # Explicit Euler, as Gymnasium: x + tau * x_dot, x_dot + tau * xacc, ...
        new = s + torch.stack([x_dot, xacc, theta_dot, thetaacc], dim=1) * TAU
        terminated = (new.abs() > bounds).any(dim=1)
        reward = torch.ones(s.shape[0], device=s.device)
        return CartPoleState(new), reward, terminated

    def _device_constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._constants:
            self._constants[device] = (self._bounds.to(device), self._force.to(device))
        return self._constants[device]

    def observe(self, state: CartPoleState) -> torch.Tensor:
        """float32 ``[n, 4]``: ``(x, x_dot, theta, theta_dot)``."""
        return state.s.to(torch.float32, copy=True)

    def legal_actions(self, state: CartPoleState) -> torch.Tensor:
        return torch.ones(state.s.shape[0], 2, dtype=torch.bool, device=state.s.device)

    def episode_extras(self, state: CartPoleState) -> dict[str, torch.Tensor]:
        return {}

    # -- rendering ----------------------------------------------------------------------------

    def render_rgb(self, state: CartPoleState, index: int = 0, header: str | None = None):
        """Game ``index`` as an RGB frame (uint8 numpy ``[300, 400, 3]``), e.g. for GIFs.

        Gymnasium's picture at two thirds of its size: the track spans ``x`` in ``[-2.4, 2.4]``,
        the pole is drawn at its full length (1 m); ``header`` is written in the top-left corner.
        """
        from PIL import Image, ImageDraw, ImageFont

        width, height = 400, 300
        x = float(state.x[index])
        theta = float(state.theta[index])
        scale = width / (2 * X_THRESHOLD)
        cart_w, cart_h = 34.0, 20.0
        pole_w, pole_len = 7.0, scale * 2 * LENGTH
        track_y = height * 0.7  # image y grows downwards
        cart_x = x * scale + width / 2.0

        image = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        draw.line([(0, track_y), (width, track_y)], fill=(0, 0, 0), width=1)
        cart_top = track_y - cart_h / 2 - 5  # the cart rides a little above the track
        draw.rectangle(
            [cart_x - cart_w / 2, cart_top, cart_x + cart_w / 2, cart_top + cart_h],
            fill=(0, 0, 0),
        )
        # The pole: a rectangle rotated by theta around the axle (theta > 0 leans right).
        axle = (cart_x, cart_top + cart_h / 4)
        c, s = math.cos(theta), math.sin(theta)
        corners = []
        for px, py in ((-pole_w / 2, 0.0), (-pole_w / 2, pole_len), (pole_w / 2, pole_len)):
            corners.append((axle[0] + px * c + py * s, axle[1] + px * s - py * c))
        corners.append((axle[0] + pole_w / 2 * c, axle[1] + pole_w / 2 * s))
        draw.polygon(corners, fill=(202, 152, 101))
        r = pole_w / 2
        draw.ellipse([axle[0] - r, axle[1] - r, axle[0] + r, axle[1] + r], fill=(129, 132, 203))
        if header:
            try:
                font = ImageFont.load_default(size=16)
            except (TypeError, ImportError, OSError, AttributeError):
                font = ImageFont.load_default()
            draw.text((8, 6), header, font=font, fill=(60, 60, 60))
        return np.asarray(image, dtype=np.uint8).copy()

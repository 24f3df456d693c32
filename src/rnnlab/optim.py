"""Optimizers and learning-rate schedules with PyTorch's update rules, names and defaults.

Letters: theta = p.data, g = p.grad, t = steps taken (1 on the first step), lr, wd = weight_decay,
mu = momentum, b1, b2 = betas. Every update runs in place on theta and the state arrays; p.grad is
never modified (weight decay makes a new g). All parameters share one step count t.

    SGD      g = g + wd*theta
             buf = g  (t = 1);   buf = mu*buf + (1 - dampening)*g  (t > 1)
             g = g + mu*buf if nesterov else buf
             theta = theta - lr*g
    Adam     g = g + wd*theta                                  (AdamW: theta = theta*(1 - lr*wd))
             m = m + (1 - b1)*(g - m)                          (= b1*m + (1 - b1)*g, torch's lerp)
             v = b2*v + (1 - b2)*g*g
             v_max = max(v_max, v)                             (amsgrad; then v_max replaces v below)
             theta = theta - lr/(1 - b1**t) * m / (sqrt(v)/sqrt(1 - b2**t) + eps)
    RMSprop  g = g + wd*theta
             v = alpha*v + (1 - alpha)*g*g
             g_avg = g_avg + (1 - alpha)*(g - g_avg)           (centered)
             d = sqrt(v - g_avg*g_avg) + eps  if centered else  sqrt(v) + eps
             buf = mu*buf + g/d;  theta = theta - lr*buf       (mu > 0)
             theta = theta - lr*g/d                            (mu = 0)
    Adagrad  g = g + wd*theta
             clr = lr / (1 + (t - 1)*lr_decay)
             s = s + g*g                                       (s starts at initial_accumulator_value)
             theta = theta - clr * g/(sqrt(s) + eps)

Schedules set `optimizer.lr` once per `step()`; e = steps the schedule has taken, lr0 = the lr it
found on the optimizer:

    StepLR         lr = lr*gamma  whenever e is a positive multiple of step_size   (as torch)
    ExponentialLR  lr = lr*gamma  on every step                                    (as torch)
    CosineWarmup   lr = lr0*e/W                                            e < W
                   lr = min_lr + (lr0 - min_lr)*(1 + cos(pi*(e - W)/(T - W)))/2  W <= e < T
                   lr = min_lr                                             e >= T

    >>> opt = Adam(model.parameters(), lr=3e-3)
    >>> sched = CosineWarmup(opt, warmup_steps=100, total_steps=10_000)
    >>> model.zero_grad(); loss_backward(); opt.step(); sched.step()
    >>> ckpt = {"optim": opt.state_dict(), "sched": sched.state_dict()}   # JSON + arrays, no pickle
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .nn.module import Parameter
from .settings import settings

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
           "StepLR", "ExponentialLR", "CosineWarmup"]


def _parameter_list(params, who: str, allow_empty: bool = False) -> list[Parameter]:
    """The Parameters in `params` (any iterable of them), each once, in order; TypeError otherwise."""
    if isinstance(params, (Parameter, np.ndarray, str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"{who} expects an iterable of Parameter (e.g. model.parameters()); "
                        f"got {type(params).__name__}")
    unique = {}
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{who} expects an iterable of Parameter (e.g. model.parameters()); "
                            f"got an element of type {type(p).__name__}")
        if not np.issubdtype(p.data.dtype, np.floating):
            raise TypeError(f"{who}: parameters must be floating point; got dtype {p.data.dtype}")
        # A tied weight listed twice by Layer.parameters() must step (and count in a norm) once.
        unique.setdefault(id(p), p)
    if not unique and not allow_empty:
        raise ValueError(f"{who} got an empty parameter list")
    return list(unique.values())


def _require(ok: bool, who: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{who}: {message}")


def _with_weight_decay(g: np.ndarray, theta: np.ndarray, wd: float) -> np.ndarray:
    """g + wd*theta as a new array, so p.grad keeps what backward wrote."""
    out = np.multiply(theta, wd)
    out += g
    return out


class Optimizer:
    """Base class: one group of parameters, a mutable `lr`, per-parameter state arrays and a step count.

    Subclasses set their hyper-parameters, call `super().__init__`, and define `_hyper()` (the
    constructor arguments), `_init_state(theta)` (the state arrays, allocated up front) and
    `_update(theta, g, state, t)` (one step of one parameter, in place).
    """

    def __init__(self, params, lr: float):
        name = type(self).__name__
        self.params = _parameter_list(params, name)
        _require(lr >= 0, name, f"lr must be >= 0; got {lr}")
        self.lr = float(lr)
        self.steps = 0
        self.state: list[dict[str, np.ndarray]] = [self._init_state(p.data) for p in self.params]

    def _hyper(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def _init_state(self, theta: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def _update(self, theta: np.ndarray, g: np.ndarray, state: dict, t: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every p.grad to 0 in place (backward adds into it)."""
        for p in self.params:
            p.grad.fill(0)

    def step(self) -> None:
        """Update every parameter from its p.grad, in place."""
        self.steps += 1
        for p, state in zip(self.params, self.state):
            self._update(p.data, p.grad, state, self.steps)

    def state_dict(self) -> dict:
        """{"hyper": JSON-able class name, hyper-parameters and steps, "tensors": {"i.name": copy}}."""
        hyper = {"class": type(self).__name__, **self._hyper(), "steps": self.steps}
        tensors = {f"{i}.{name}": array.copy() for i, state in enumerate(self.state)
                   for name, array in state.items()}
        return {"hyper": hyper, "tensors": tensors}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters, steps and state exactly; ValueError, changing nothing, on a mismatch."""
        name = type(self).__name__
        if not hasattr(state_dict, "keys") or set(state_dict.keys()) != {"hyper", "tensors"}:
            raise ValueError(f"{name}.load_state_dict expects a dict with keys 'hyper' and 'tensors'")
        hyper, tensors = dict(state_dict["hyper"]), state_dict["tensors"]
        if hyper.get("class") != name:
            raise ValueError(f"cannot load a state_dict saved by {hyper.get('class')!r} into {name}")
        expected = {"class", "steps", *self._hyper()}
        if set(hyper) != expected:
            raise ValueError(f"{name}.load_state_dict: hyper has keys {sorted(hyper)}, "
                             f"expected {sorted(expected)}")
        steps = hyper.pop("steps")
        del hyper["class"]
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"{name}.load_state_dict: steps must be a non-negative integer; got {steps!r}")
        # A fresh optimizer validates the saved hyper-parameters and lays out the state arrays they
        # need (amsgrad, centered, momentum...); it is adopted only once everything fits.
        fresh = type(self)(self.params, **hyper)
        problems = []
        for key, value in tensors.items():
            index, _, array_name = key.partition(".")
            target = None
            if index.isdigit() and int(index) < len(fresh.state):
                target = fresh.state[int(index)].get(array_name)
            if target is None:
                problems.append(f"unexpected key {key!r}")
                continue
            value = np.asarray(value)
            if value.shape != target.shape:
                problems.append(f"{key!r} has shape {value.shape}, expected {target.shape}")
            else:
                target[...] = value
        problems += [f"missing key '{i}.{array_name}'" for i, state in enumerate(fresh.state)
                     for array_name in state if f"{i}.{array_name}" not in tensors]
        if problems:
            raise ValueError(f"cannot load state_dict into {name}: " + "; ".join(problems))
        fresh.steps = int(steps)
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args}, steps={self.steps})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        _require(momentum >= 0, "SGD", f"momentum must be >= 0; got {momentum}")
        _require(weight_decay >= 0, "SGD", f"weight_decay must be >= 0; got {weight_decay}")
        _require(not nesterov or (momentum > 0 and dampening == 0), "SGD",
                 "nesterov=True requires momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        super().__init__(params, lr)

    def _hyper(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}

    def _init_state(self, theta):
        return {"momentum_buffer": np.zeros_like(theta)} if self.momentum != 0 else {}

    def _update(self, theta, g, state, t):
        mu = self.momentum
        tmp = np.empty_like(theta)  # the one scratch array of this update
        if self.weight_decay != 0:
            g = _with_weight_decay(g, theta, self.weight_decay)
        if mu != 0:
            buf = state["momentum_buffer"]
            if t == 1:
                buf[...] = g  # torch starts the buffer at g itself, undamped
            else:
                buf *= mu
                buf += np.multiply(g, 1 - self.dampening, out=tmp)
            g = np.add(g, np.multiply(buf, mu, out=tmp), out=tmp) if self.nesterov else buf
        theta -= np.multiply(g, self.lr, out=tmp)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction and optional AMSGrad, as torch.optim.Adam."""

    decoupled_weight_decay = False
    use_compiled = True  # one compiled pass where Numba runs (fast/optim_compiled.py); False: the ufuncs

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False):
        name = type(self).__name__
        _require(len(betas) == 2, name, f"betas must be a pair (beta1, beta2); got {betas!r}")
        _require(0 <= betas[0] < 1, name, f"betas[0] must be in [0, 1); got {betas[0]}")
        _require(0 <= betas[1] < 1, name, f"betas[1] must be in [0, 1); got {betas[1]}")
        _require(eps >= 0, name, f"eps must be >= 0; got {eps}")
        _require(weight_decay >= 0, name, f"weight_decay must be >= 0; got {weight_decay}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), bool(amsgrad)
        super().__init__(params, lr)

    def _hyper(self) -> dict:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}

    def _init_state(self, theta):
        state = {"exp_avg": np.zeros_like(theta), "exp_avg_sq": np.zeros_like(theta)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(theta)
        return state

    def _update(self, theta, g, state, t):
        if self._compiled_update(theta, g, state, t):
            return
        b1, b2 = self.betas
        m, v = state["exp_avg"], state["exp_avg_sq"]
        tmp = np.empty_like(theta)
        if self.weight_decay != 0:
            if self.decoupled_weight_decay:
                theta *= 1 - self.lr * self.weight_decay
            else:
                g = _with_weight_decay(g, theta, self.weight_decay)
        m += np.multiply(np.subtract(g, m, out=tmp), 1 - b1, out=tmp)
        v *= b2
        v += np.multiply(np.multiply(g, 1 - b2, out=tmp), g, out=tmp)
        if self.amsgrad:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v, out=tmp)
        denom /= (1 - b2 ** t) ** 0.5
        denom += self.eps
        theta -= np.multiply(np.divide(m, denom, out=tmp), step_size, out=tmp)

    def _compiled_update(self, theta, g, state, t) -> bool:
        """The same update in one compiled pass (fast/optim_compiled.py), where Numba runs and the arrays
        are contiguous float32/float64 of one dtype; False where the ufuncs above must do it."""
        arrays = [theta, g, *state.values()]
        update = settings.fast.adam(*arrays) if self.use_compiled and settings.fast is not None else None
        if update is None or not all(a.flags.c_contiguous for a in arrays):
            return False
        b1, b2 = self.betas
        c = theta.dtype.type  # each constant rounded to the parameter's dtype, as NumPy rounds a Python float
        decoupled = self.decoupled_weight_decay and self.weight_decay != 0
        v_max = state.get("max_exp_avg_sq", theta[:0])
        update(theta.reshape(-1), g.reshape(-1), state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1),
               v_max.reshape(-1), c(1 - b1), c(b2), c(1 - b2), c((1 - b2 ** t) ** 0.5), c(self.eps),
               c(self.lr / (1 - b1 ** t)), c(self.weight_decay), c(1 - self.lr * self.weight_decay), decoupled)
        return True


class AdamW(Adam):
    """Adam with decoupled weight decay (theta *= 1 - lr*wd before the step), as torch.optim.AdamW."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton) with optional centering and momentum, as torch.optim.RMSprop."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False):
        _require(eps >= 0, "RMSprop", f"eps must be >= 0; got {eps}")
        _require(momentum >= 0, "RMSprop", f"momentum must be >= 0; got {momentum}")
        _require(weight_decay >= 0, "RMSprop", f"weight_decay must be >= 0; got {weight_decay}")
        _require(alpha >= 0, "RMSprop", f"alpha must be >= 0; got {alpha}")
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), bool(centered)
        super().__init__(params, lr)

    def _hyper(self) -> dict:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered}

    def _init_state(self, theta):
        state = {"square_avg": np.zeros_like(theta)}
        if self.momentum > 0:
            state["momentum_buffer"] = np.zeros_like(theta)
        if self.centered:
            state["grad_avg"] = np.zeros_like(theta)
        return state

    def _update(self, theta, g, state, t):
        alpha = self.alpha
        v = state["square_avg"]
        tmp = np.empty_like(theta)
        if self.weight_decay != 0:
            g = _with_weight_decay(g, theta, self.weight_decay)
        v *= alpha
        v += np.multiply(np.multiply(g, 1 - alpha, out=tmp), g, out=tmp)
        if self.centered:
            g_avg = state["grad_avg"]
            g_avg += np.multiply(np.subtract(g, g_avg, out=tmp), 1 - alpha, out=tmp)
            d = np.sqrt(np.subtract(v, np.multiply(g_avg, g_avg, out=tmp), out=tmp), out=tmp)
        else:
            d = np.sqrt(v, out=tmp)
        d += self.eps
        g_over_d = np.divide(g, d, out=tmp)
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g_over_d
            theta -= np.multiply(buf, self.lr, out=tmp)
        else:
            theta -= np.multiply(g_over_d, self.lr, out=tmp)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.) with learning-rate decay, as torch.optim.Adagrad."""

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10):
        _require(lr_decay >= 0, "Adagrad", f"lr_decay must be >= 0; got {lr_decay}")
        _require(weight_decay >= 0, "Adagrad", f"weight_decay must be >= 0; got {weight_decay}")
        _require(initial_accumulator_value >= 0, "Adagrad",
                 f"initial_accumulator_value must be >= 0; got {initial_accumulator_value}")
        _require(eps >= 0, "Adagrad", f"eps must be >= 0; got {eps}")
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.initial_accumulator_value, self.eps = float(initial_accumulator_value), float(eps)
        super().__init__(params, lr)

    def _hyper(self) -> dict:
        return {"lr": self.lr, "lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps}

    def _init_state(self, theta):
        return {"sum": np.full_like(theta, self.initial_accumulator_value)}

    def _update(self, theta, g, state, t):
        s = state["sum"]
        tmp = np.empty_like(theta)
        if self.weight_decay != 0:
            g = _with_weight_decay(g, theta, self.weight_decay)
        clr = self.lr / (1 + (t - 1) * self.lr_decay)
        s += np.multiply(g, g, out=tmp)
        std = np.sqrt(s, out=tmp)
        std += self.eps
        theta -= np.multiply(np.divide(g, std, out=tmp), clr, out=tmp)


# -- learning-rate schedules -------------------------------------------------------------------------

class _Schedule:
    """Base class: sets optimizer.lr at construction (e = 0) and on every step() (e += 1)."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} expects an rnnlab Optimizer; "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr  # lr0
        self.last_epoch = 0          # e, torch's name for the steps this schedule has taken
        self.last_lr = optimizer.lr = self._lr()

    def _hyper(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def _lr(self) -> float:  # pragma: no cover - interface
        """The lr for step e = self.last_epoch (may read the optimizer's current lr)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set optimizer.lr."""
        self.last_epoch += 1
        self.last_lr = self.optimizer.lr = self._lr()

    def get_lr(self) -> float:
        """The learning rate this schedule set last (torch's get_last_lr()[0])."""
        return self.last_lr

    def state_dict(self) -> dict:
        """JSON-able: class name, arguments, base_lr, last_epoch and last_lr."""
        return {"class": type(self).__name__, **self._hyper(), "base_lr": self.base_lr,
                "last_epoch": self.last_epoch, "last_lr": self.last_lr}

    def load_state_dict(self, state: dict) -> None:
        """Restore the schedule's position; the optimizer's own lr comes back with its state_dict."""
        name = type(self).__name__
        if not hasattr(state, "keys") or state.get("class") != name:
            got = state.get("class") if hasattr(state, "get") else type(state).__name__
            raise ValueError(f"cannot load a state_dict saved by {got!r} into {name}")
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"{name}.load_state_dict: keys {sorted(state)}, expected {sorted(expected)}")
        for key, value in state.items():
            if key != "class":
                setattr(self, key, value)


class StepLR(_Schedule):
    """Multiply lr by gamma every step_size steps, as torch.optim.lr_scheduler.StepLR."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if not isinstance(step_size, (int, np.integer)) or isinstance(step_size, bool) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer; got {step_size!r}")
        _require(gamma > 0, "StepLR", f"gamma must be > 0; got {gamma}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def _hyper(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def _lr(self) -> float:
        # Chained on the current lr, as torch does, so the floats match torch bit for bit.
        lr = self.optimizer.lr
        return lr * self.gamma if self.last_epoch > 0 and self.last_epoch % self.step_size == 0 else lr


class ExponentialLR(_Schedule):
    """Multiply lr by gamma every step, as torch.optim.lr_scheduler.ExponentialLR."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        _require(gamma > 0, "ExponentialLR", f"gamma must be > 0; got {gamma}")
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def _hyper(self) -> dict:
        return {"gamma": self.gamma}

    def _lr(self) -> float:
        lr = self.optimizer.lr
        return lr * self.gamma if self.last_epoch > 0 else lr


class CosineWarmup(_Schedule):
    """Linear warm-up from 0 to lr0 over warmup_steps, then cosine down to min_lr at total_steps."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        for arg, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"CosineWarmup: {arg} must be a non-negative integer; got {value!r}")
        _require(warmup_steps <= total_steps, "CosineWarmup",
                 f"warmup_steps ({warmup_steps}) must be <= total_steps ({total_steps})")
        _require(min_lr >= 0, "CosineWarmup", f"min_lr must be >= 0; got {min_lr}")
        self.warmup_steps, self.total_steps, self.min_lr = int(warmup_steps), int(total_steps), float(min_lr)
        super().__init__(optimizer)

    def _hyper(self) -> dict:
        return {"warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "min_lr": self.min_lr}

    def _lr(self) -> float:
        e, W, T = self.last_epoch, self.warmup_steps, self.total_steps
        if e < W:
            return self.base_lr * e / W
        if e >= T:
            return self.min_lr
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * (e - W) / (T - W))) / 2

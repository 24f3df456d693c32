"""Optimizers, schedules and clipping against float64 torch, step by step, on random shapes and grads."""
import io
import json
import math
import zlib

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.clip import clip_grad_norm, clip_grad_value
from rnnlab.nn.module import Parameter
from rnnlab.optim import SGD, Adagrad, Adam, AdamW, CosineWarmup, ExponentialLR, RMSprop, StepLR

CASES = [  # (rnnlab class, torch class, keyword arguments shared by both)
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.05)),
    (Adam, torch.optim.Adam, dict(lr=0.05)),
    (Adam, torch.optim.Adam, dict(lr=0.05, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.05, amsgrad=True)),
    (Adam, torch.optim.Adam, dict(lr=0.05, betas=(0.3, 0.8), eps=1e-3, weight_decay=0.1, amsgrad=True)),
    (AdamW, torch.optim.AdamW, dict(lr=0.05)),
    (AdamW, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.1)),
    (Adagrad, torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2)),
]
IDS = [f"{ours.__name__}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for ours, _, kw in CASES]


def random_arrays(rng):
    """A 1-D, a 2-D and a 3-D float64 array of random sizes."""
    shapes = [(int(rng.integers(1, 7)),), tuple(int(n) for n in rng.integers(1, 6, 2)),
              tuple(int(n) for n in rng.integers(1, 4, 3))]
    return [rng.standard_normal(s) for s in shapes]


def assert_close(ours, theirs, what, rtol=1e-10):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    diff = float(np.abs(ours - theirs).max(initial=0.0))
    assert ours.shape == theirs.shape and diff <= rtol * scale, (
        f"{what}: max |ours - theirs| = {diff:.3e} (scale {scale:.3g})\nours:\n{ours}\ntheirs:\n{theirs}")


def step_both(opt, params, topt, tparams, rng, what):
    """Feed the same random grads to both optimizers, step, compare every parameter."""
    for p, tp in zip(params, tparams):
        g = rng.standard_normal(p.shape)
        p.grad[...] = g
        tp.grad = torch.from_numpy(g.copy())
    grads = [p.grad.copy() for p in params]
    opt.step()
    topt.step()
    for i, (p, tp, g) in enumerate(zip(params, tparams, grads)):
        assert_close(p.data, tp.detach().numpy(), f"{what}, param {i} {p.shape}")
        assert np.array_equal(p.grad, g), f"{what}: step() modified p.grad of param {i}"


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", CASES, ids=IDS)
def test_matches_torch_every_step(ours_cls, torch_cls, kwargs):
    rng = np.random.default_rng(zlib.crc32(f"{ours_cls.__name__}{kwargs}".encode()))
    arrays = random_arrays(rng)
    params = [Parameter(a.copy()) for a in arrays]
    tparams = [torch.tensor(a, requires_grad=True) for a in arrays]
    opt, topt = ours_cls(params, **kwargs), torch_cls(tparams, foreach=False, **kwargs)
    for t in range(1, 21):
        step_both(opt, params, topt, tparams, rng, f"{ours_cls.__name__}({kwargs}) step {t}")
    moved = max(float(np.abs(p.data - a).max()) for p, a in zip(params, arrays))
    assert moved > 1e-2, f"parameters barely moved ({moved:.2e}); the comparison would prove little"


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", CASES, ids=IDS)
def test_float32_stays_float32(ours_cls, torch_cls, kwargs):
    rng = np.random.default_rng(1)
    arrays = [a.astype(np.float32) for a in random_arrays(rng)]
    params = [Parameter(a.copy()) for a in arrays]
    tparams = [torch.tensor(a, requires_grad=True) for a in arrays]
    opt, topt = ours_cls(params, **kwargs), torch_cls(tparams, foreach=False, **kwargs)
    for t in range(3):
        for p, tp in zip(params, tparams):
            p.grad[...] = rng.standard_normal(p.shape)
            tp.grad = torch.from_numpy(p.grad.copy())
        opt.step()
        topt.step()
    for i, (p, tp) in enumerate(zip(params, tparams)):
        assert p.data.dtype == np.float32 and all(a.dtype == np.float32 for a in opt.state[i].values())
        assert_close(p.data, tp.detach().numpy(), f"float32 param {i}", rtol=1e-5)


def save_without_pickle(state):
    """JSON for the hyper-parameters, an .npz read back with allow_pickle=False for the arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, **state["tensors"])
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        tensors = {k: npz[k] for k in npz.files}
    return {"hyper": json.loads(json.dumps(state["hyper"])), "tensors": tensors}


@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", CASES, ids=IDS)
def test_state_dict_round_trip_is_bit_identical(ours_cls, torch_cls, kwargs):
    rng = np.random.default_rng(7)
    params = [Parameter(a) for a in random_arrays(rng)]
    opt = ours_cls(params, **kwargs)

    def run(opt, params, grads):
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad[...] = g
            opt.step()

    run(opt, params, [[rng.standard_normal(p.shape) for p in params] for _ in range(10)])
    state = opt.state_dict()
    saved = {k: v.copy() for k, v in state["tensors"].items()}
    copies = [Parameter(p.data.copy()) for p in params]
    resumed = ours_cls(copies)  # default hyper-parameters: load_state_dict must restore them all
    resumed.load_state_dict(save_without_pickle(state))
    assert resumed.steps == opt.steps == 10 and resumed.lr == opt.lr

    more = [[rng.standard_normal(p.shape) for p in params] for _ in range(10)]
    run(opt, params, more)
    run(resumed, copies, more)
    for i, (p, q) in enumerate(zip(params, copies)):
        assert np.array_equal(p.data, q.data), f"param {i}: max diff {np.abs(p.data - q.data).max():.3e}"
    for key, value in opt.state_dict()["tensors"].items():
        assert np.array_equal(value, resumed.state_dict()["tensors"][key]), key
    for key, value in state["tensors"].items():  # state_dict hands out copies, not live views
        assert np.array_equal(value, saved[key]), f"{key} changed after the state_dict was taken"


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    rng = np.random.default_rng(3)
    params = [Parameter(a) for a in random_arrays(rng)]
    opt = Adam(params, lr=0.01, amsgrad=True)
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)
    opt.step()
    state = opt.state_dict()
    before = opt.state_dict()

    with pytest.raises(ValueError, match="Adam"):
        SGD(params).load_state_dict(state)
    with pytest.raises(ValueError, match="Adam"):
        AdamW(params).load_state_dict(state)  # decoupled decay is a different optimizer

    fresh = Adam([Parameter(p.data.copy()) for p in params], lr=0.5)
    bad_shape = {"hyper": state["hyper"], "tensors": {**state["tensors"], "1.exp_avg": np.zeros((9, 9))}}
    with pytest.raises(ValueError, match=r"'1\.exp_avg' has shape \(9, 9\)"):
        fresh.load_state_dict(bad_shape)
    extra = {"hyper": state["hyper"], "tensors": {**state["tensors"], "7.exp_avg": np.zeros(1)}}
    with pytest.raises(ValueError, match=r"unexpected key '7\.exp_avg'"):
        fresh.load_state_dict(extra)
    missing = {"hyper": state["hyper"],
               "tensors": {k: v for k, v in state["tensors"].items() if k != "0.exp_avg_sq"}}
    with pytest.raises(ValueError, match=r"missing key '0\.exp_avg_sq'"):
        fresh.load_state_dict(missing)
    with pytest.raises(ValueError, match="betas"):
        fresh.load_state_dict({"hyper": {**state["hyper"], "betas": [1.5, 0.9]}, "tensors": state["tensors"]})
    assert fresh.lr == 0.5 and fresh.steps == 0 and not fresh.state[0]["exp_avg"].any()

    after = opt.state_dict()
    assert after["hyper"] == before["hyper"]
    assert all(np.array_equal(after["tensors"][k], v) for k, v in before["tensors"].items())


BAD_HYPER = [
    (SGD, dict(lr=-0.1), "lr"),
    (SGD, dict(momentum=-0.5), "momentum"),
    (SGD, dict(weight_decay=-1e-4), "weight_decay"),
    (SGD, dict(nesterov=True), "nesterov"),
    (SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    (Adam, dict(lr=-1e-3), "lr"),
    (Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (Adam, dict(eps=-1e-8), "eps"),
    (Adam, dict(weight_decay=-0.1), "weight_decay"),
    (AdamW, dict(weight_decay=-0.1), "weight_decay"),
    (AdamW, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (RMSprop, dict(alpha=-0.1), "alpha"),
    (RMSprop, dict(momentum=-0.1), "momentum"),
    (RMSprop, dict(eps=-1.0), "eps"),
    (RMSprop, dict(lr=-0.1), "lr"),
    (Adagrad, dict(lr_decay=-0.1), "lr_decay"),
    (Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (Adagrad, dict(eps=-1.0), "eps"),
    (Adagrad, dict(weight_decay=-1.0), "weight_decay"),
]


@pytest.mark.parametrize("cls, kwargs, arg", BAD_HYPER,
                         ids=[f"{c.__name__}-{a}-{k}" for c, k, a in BAD_HYPER])
def test_bad_hyper_parameters_raise_like_torch(cls, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        cls([Parameter(np.zeros(3))], **kwargs)
    with pytest.raises(ValueError):  # and torch refuses the same arguments
        getattr(torch.optim, cls.__name__)([torch.zeros(3, requires_grad=True)], **kwargs)


def test_params_must_be_an_iterable_of_parameters():
    p = Parameter(np.zeros(3))
    for bad in (p, np.zeros(3), [np.zeros(3)], [("w", p)], 3, {"w": p}):
        with pytest.raises(TypeError, match="iterable of Parameter"):
            SGD(bad)
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    opt = Adam(q for q in [p, p])  # a generator works; a tied parameter listed twice steps once
    assert opt.params == [p]


def test_zero_grad_clears_in_place():
    p = Parameter(np.ones((2, 3)))
    grad = p.grad
    grad[...] = 5.0
    SGD([p]).zero_grad()
    assert p.grad is grad and not grad.any()


# -- schedules ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ours_cls, torch_cls, kwargs", [
    (StepLR, torch.optim.lr_scheduler.StepLR, dict(step_size=7, gamma=0.5)),
    (StepLR, torch.optim.lr_scheduler.StepLR, dict(step_size=3)),
    (ExponentialLR, torch.optim.lr_scheduler.ExponentialLR, dict(gamma=0.9)),
])
def test_schedule_matches_torch(ours_cls, torch_cls, kwargs):
    opt = SGD([Parameter(np.zeros(2))], lr=0.3)
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.3)
    sched, tsched = ours_cls(opt, **kwargs), torch_cls(topt, **kwargs)
    lrs, tlrs = [opt.lr], [topt.param_groups[0]["lr"]]
    for t in range(30):
        if t == 15:  # resume halfway from JSON: a new optimizer and schedule continue exactly
            state = json.loads(json.dumps({"optim": opt.state_dict()["hyper"], "sched": sched.state_dict()}))
            opt = SGD([Parameter(np.zeros(2))], lr=123.0)
            opt.load_state_dict({"hyper": state["optim"], "tensors": {}})
            sched = ours_cls(opt, **kwargs)
            sched.load_state_dict(state["sched"])
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_lr() == tsched.get_last_lr()[0]
        lrs.append(opt.lr)
        tlrs.append(topt.param_groups[0]["lr"])
    assert lrs == tlrs, f"\nours:   {lrs}\ntheirs: {tlrs}"
    assert lrs[-1] < lrs[0]


@pytest.mark.parametrize("warmup, total, min_lr", [(5, 20, 0.01), (0, 12, 0.0), (4, 4, 0.02)])
def test_cosine_warmup_closed_form(warmup, total, min_lr):
    base = 0.1
    opt = SGD([Parameter(np.zeros(1))], lr=base)
    sched = CosineWarmup(opt, warmup, total, min_lr)
    lrs = [opt.lr]
    for _ in range(30):
        sched.step()
        lrs.append(opt.lr)
        assert sched.get_lr() == opt.lr
    e = np.arange(31.0)
    cosine = min_lr + (base - min_lr) * 0.5 * (1 + np.cos(np.pi * (e - warmup) / max(total - warmup, 1)))
    expected = np.where(e < warmup, base * e / max(warmup, 1), np.where(e >= total, min_lr, cosine))
    assert_close(lrs, expected, "CosineWarmup lr by step", rtol=1e-14)
    assert lrs[warmup] == (base if warmup < total else min_lr) and lrs[total:] == [min_lr] * (31 - total)
    if warmup:
        assert lrs[0] == 0.0

    state = json.loads(json.dumps(sched.state_dict()))
    again = CosineWarmup(SGD([Parameter(np.zeros(1))], lr=base), warmup, total, min_lr)
    again.load_state_dict(state)
    assert again.last_epoch == 30 and again.get_lr() == sched.get_lr()


def test_bad_schedule_arguments():
    opt = SGD([Parameter(np.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="gamma"):
        ExponentialLR(opt, gamma=-0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        CosineWarmup(opt, warmup_steps=10, total_steps=5)
    with pytest.raises(ValueError, match="min_lr"):
        CosineWarmup(opt, warmup_steps=1, total_steps=5, min_lr=-1.0)
    with pytest.raises(ValueError, match="StepLR"):
        ExponentialLR(opt, gamma=0.9).load_state_dict(StepLR(opt, step_size=2).state_dict())
    with pytest.raises(TypeError, match="Optimizer"):
        StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), step_size=2)


# -- clipping ----------------------------------------------------------------------------------------

def grads_pair(rng, scale=1.0):
    """The same random grads on rnnlab Parameters and on torch tensors."""
    arrays = random_arrays(rng)
    params, tparams = [], []
    for a in arrays:
        g = scale * rng.standard_normal(a.shape)
        p = Parameter(a)
        p.grad[...] = g
        t = torch.tensor(a, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        params.append(p)
        tparams.append(t)
    return params, tparams


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0])
@pytest.mark.parametrize("clips", [True, False])
def test_clip_grad_norm_matches_torch(norm_type, clips):
    rng = np.random.default_rng(11)
    params, tparams = grads_pair(rng)
    before = [p.grad.copy() for p in params]
    exact = float(torch.nn.utils.get_total_norm([t.grad for t in tparams], norm_type))
    max_norm = exact * (0.3 if clips else 2.0)
    total = clip_grad_norm(params, max_norm, norm_type)
    ttotal = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type, foreach=False))
    assert isinstance(total, float)
    assert_close(total, ttotal, f"norm {norm_type}", rtol=1e-13)
    if norm_type == math.inf:
        assert total == ttotal
    for i, (p, t, g) in enumerate(zip(params, tparams, before)):
        assert_close(p.grad, t.grad.numpy(), f"grad {i} after clipping (norm {norm_type})", rtol=1e-13)
        if not clips:
            assert np.array_equal(p.grad, g)
    norm_after = clip_grad_norm(params, math.inf, norm_type)
    assert norm_after <= max_norm * (1 + 1e-12) if clips else norm_after == pytest.approx(exact, rel=1e-13)


def test_clip_grad_value_matches_torch():
    params, tparams = grads_pair(np.random.default_rng(5))
    clip_grad_value(params, 0.5)
    torch.nn.utils.clip_grad_value_(tparams, 0.5, foreach=False)
    for i, (p, t) in enumerate(zip(params, tparams)):
        assert np.array_equal(p.grad, t.grad.numpy()), (
            f"grad {i}:\nours:\n{p.grad}\ntheirs:\n{t.grad.numpy()}")
    assert max(np.abs(p.grad).max() for p in params) == 0.5


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nonfinite_norm(bad):
    params, tparams = grads_pair(np.random.default_rng(2))
    params[1].grad.flat[0] = bad
    tparams[1].grad.view(-1)[0] = bad
    before = [p.grad.copy() for p in params]
    with pytest.raises(FloatingPointError, match="learning rate"):
        clip_grad_norm(params, 1.0, error_if_nonfinite=True)
    assert all(np.array_equal(p.grad, g, equal_nan=True) for p, g in zip(params, before)), "grads changed"
    # Without the check, scale anyway exactly as torch does (to nan, or to 0 and nan for inf).
    with np.errstate(invalid="ignore"):  # inf * 0
        total = clip_grad_norm(params, 1.0)
    ttotal = float(torch.nn.utils.clip_grad_norm_(tparams, 1.0, foreach=False))
    assert np.array_equal(total, ttotal, equal_nan=True)
    for p, t in zip(params, tparams):
        assert np.array_equal(p.grad, t.grad.numpy(), equal_nan=True)


def test_clip_arguments():
    p = Parameter(np.ones(3))
    assert clip_grad_norm([], 1.0) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([p], -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm([p], 1.0, norm_type=0)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value([p], -0.1)
    with pytest.raises(TypeError, match="iterable of Parameter"):
        clip_grad_norm(p, 1.0)


@pytest.mark.skipif(not rnnlab.settings.numba_available(), reason="numba cannot import")
@pytest.mark.parametrize("cls, kwargs", [(Adam, {}), (Adam, {"weight_decay": 0.1, "amsgrad": True}),
                                         (AdamW, {"weight_decay": 0.1}), (AdamW, {"lr": 0.0, "amsgrad": True})],
                         ids=["adam", "adam-l2-amsgrad", "adamw", "adamw-lr0-amsgrad"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_adam_gives_the_ufuncs_bits(cls, kwargs, dtype, monkeypatch):
    """Adam's one compiled pass (fast/optim_compiled.py) and its NumPy ufuncs give identical bits, step after
    step, NaN included (a NaN gradient poisons its element in both, and AMSGrad's maximum keeps it)."""
    original, calls = Adam._compiled_update, []

    def counting(self, *args):
        calls.append(original(self, *args))
        return calls[-1]

    monkeypatch.setattr(Adam, "_compiled_update", counting)
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(7,), (3, 5), (2, 3, 4)]]
    fast, slow = ([Parameter(a.copy()) for a in arrays] for _ in range(2))
    opt_fast, opt_slow = cls(fast, **kwargs), cls(slow, **kwargs)
    opt_slow.use_compiled = False
    for t in range(6):
        for p, q in zip(fast, slow):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.shape)
            if t == 3:
                p.grad.flat[0] = q.grad.flat[0] = np.nan
        opt_fast.step()
        opt_slow.step()
        for p, q in zip(fast, slow):
            assert np.array_equal(p.data, q.data, equal_nan=True)
        for s_fast, s_slow in zip(opt_fast.state, opt_slow.state):
            assert all(np.array_equal(s_fast[k], s_slow[k], equal_nan=True) for k in s_fast)
    assert calls.count(True) == 6 * 3 and np.isnan(fast[0].data.flat[0])  # the fast one compiled every step

"""Generate text from a character-level model, one character at a time, carrying the state.

The priming text is read in one forward pass (not re-read for every new character); each new
character is then one recurrent step from the carried state: a compiled step of the whole model
(fast/sample_compiled.py), or a round trip through the layers in Python where Numba cannot run.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Iterator

import numpy as np

from .data.text import Vocab
from .models import CharRNN
from .nn.losses import log_softmax
from .nn.module import no_grad
from .settings import settings

CHUNK = 64  # characters per compiled call: the stream yields them in bursts this size


class NonFiniteLogits(ValueError):
    """The model's logits hold NaN or inf (damaged or diverged weights): there is nothing to sample."""

    def __init__(self, generated: int | None = None):
        where = "" if generated is None else f" after {generated} generated character(s)"
        super().__init__(f"the model's logits are not finite (NaN or inf){where}; its weights are damaged or "
                         "diverged, so generation stopped")
        self.generated = generated


def next_char_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """p over the vocabulary from logits (V,): softmax(logits / temperature), kept to the top k.
    NonFiniteLogits if a logit is NaN or infinite."""
    if not np.isfinite(logits).all():
        raise NonFiniteLogits()
    scaled = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < scaled.size:
        cutoff = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    if np.isinf(scaled.max()):  # logits / temperature overflowed: only the likeliest remain, evenly
        scaled = np.where(scaled == scaled.max(), 0.0, -np.inf)
    return np.exp(log_softmax(scaled))


def generate(model: CharRNN, vocab: Vocab, prime: str = "", length: int = 200, temperature: float = 1.0,
             top_k: int | None = None, rng=None, on_text: Callable[[str], None] | None = None,
             compiled: bool = True) -> str:
    """Continue `prime` by `length` sampled characters; `on_text` receives each one as it comes.

    compiled: step the whole model per character in one compiled loop (fast/sample_compiled.py) where
    Numba runs; False, or where it cannot, one Python round trip through the layers per character.
    Both draw the same uniforms from `rng`, so the same seed gives the same text up to the rounding
    of float32 logits (identical in float64 in the tests).
    """
    out = []
    for char in stream(model, vocab, prime, length, temperature, top_k, rng, compiled):
        out.append(char)
        if on_text is not None:
            on_text(char)
    return prime + "".join(out)


def check_sampling(length: int, temperature: float, top_k: int | None) -> None:
    """ValueError naming the first sampling option out of range (also for rnnlab generate --onnx)."""
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 0:
        raise ValueError(f"length must be a non-negative integer; got {length!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0; got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer; got {top_k!r}")


def stream(model: CharRNN, vocab: Vocab, prime: str = "", length: int = 200, temperature: float = 1.0,
           top_k: int | None = None, rng=None, compiled: bool = True) -> Iterator[str]:
    """The sampled characters one at a time, keeping nothing: memory stays flat however long it runs.
    Arguments are checked when this is called, before the first character."""
    check_sampling(length, temperature, top_k)
    if len(vocab) != model.config.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} characters but the model expects {model.config.vocab_size}")
    rng = np.random.default_rng(rng)
    if not prime:  # start after a newline, as a text does, or anywhere if there is none
        prime_ids = vocab.encode("\n") if "\n" in vocab.chars else np.array([rng.integers(len(vocab))])
    else:
        prime_ids = vocab.encode(prime, source="the priming text")
    return _stream(model, vocab, prime_ids, length, temperature, top_k, rng, compiled)


def _stream(model, vocab, prime_ids, length, temperature, top_k, rng, compiled) -> Iterator[str]:
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits = model(prime_ids[None, :])  # (1, P, V): the whole prime in one pass
        state = model.final_state
        sampler = settings.fast.sampler(model, state) if compiled and settings.fast is not None else None
        if sampler is not None:  # the same draws: Generator.random() is what Generator.choice(p=...) uses
            first = logits[0, -1]
            for start in range(0, length, CHUNK):
                uniforms = rng.random(min(CHUNK, length - start))  # (n,) as n single draws would give
                for n, next_id in enumerate(sampler.sample(first, uniforms, temperature, top_k)):
                    if next_id < 0:
                        raise NonFiniteLogits(start + n)
                    yield vocab.chars[next_id]
                first = sampler.logits
            return
        for generated in range(length):
            if not np.isfinite(logits[0, -1]).all():
                raise NonFiniteLogits(generated)
            p = next_char_distribution(logits[0, -1], temperature, top_k)
            next_id = int(rng.choice(len(p), p=p))
            yield vocab.chars[next_id]
            with no_grad():
                logits = model(np.array([[next_id]]), state)
            state = model.final_state
    finally:
        model.train(was_training)


__all__ = ["NonFiniteLogits", "check_sampling", "generate", "next_char_distribution", "stream"]

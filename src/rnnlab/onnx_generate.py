"""Sample text from an ONNX export of a character model with NumPy and onnxruntime alone.

    python onnx_generate.py model.onnx --prime "ROMEO:" --length 300 --temperature 0.8 --seed 1

This file imports nothing from rnnlab: copy it next to model.onnx on any machine with
`pip install numpy onnxruntime`. With the same seed it draws exactly as `rnnlab generate` does
(softmax of logits / temperature in float64, optional top-k, numpy's default_rng(seed).choice), so
it prints the same text.
"""
import argparse
import json
import sys

import numpy as np
import onnxruntime as ort


def generate(path, prime="", length=200, temperature=1.0, top_k=None, seed=None, on_text=None):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    chars = _vocabulary(path, session.get_modelmeta().custom_metadata_map.get("rnnlab", "{}"))
    index = {c: i for i, c in enumerate(chars)}
    unknown = sorted(set(prime) - set(index))
    if unknown:
        raise ValueError(f"the priming text has characters not in the vocabulary: {unknown}")
    rng = np.random.default_rng(seed)
    ids = [index[c] for c in prime] or ([index["\n"]] if "\n" in index else [rng.integers(len(chars))])
    states = [i for i in session.get_inputs() if i.name != "ids"]  # h0 (L, 1, H) [, c0], zeros to start
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape],
                              np.float64 if i.type == "tensor(double)" else np.float32) for i in states}
    out = []
    for _ in range(length):
        logits, *finals = session.run(None, {"ids": np.array([ids], np.int64), **feeds})
        if getattr(logits, "shape", None) != (1, len(ids), len(chars)):
            raise ValueError(f"{path}: its logits have shape {getattr(logits, 'shape', type(logits).__name__)}, "
                             f"expected (1, {len(ids)}, {len(chars)}) for its vocabulary of {len(chars)}; "
                             "not a character model this sampler can run")
        if not np.isfinite(logits[0, -1]).all():
            raise ValueError(f"{path}: the model's logits are not finite (NaN or inf) after {len(out)} generated "
                             "character(s); its weights are damaged or diverged, so generation stopped")
        feeds = {i.name: f for i, f in zip(states, finals)}  # outputs hn [, cn] follow the inputs' order
        scaled = logits[0, -1].astype(np.float64) / temperature
        if top_k is not None and top_k < scaled.size:
            scaled = np.where(scaled >= np.partition(scaled, -top_k)[-top_k], scaled, -np.inf)
        if np.isinf(scaled.max()):  # a temperature so low that logits / temperature overflows: the likeliest
            scaled = np.where(scaled == scaled.max(), 0.0, -np.inf)
        shifted = scaled - scaled.max()
        p = np.exp(shifted - np.log(np.exp(shifted).sum()))  # the stable softmax rnnlab uses
        ids = [int(rng.choice(len(p), p=p))]
        out.append(chars[ids[0]])
        if on_text is not None:
            on_text(out[-1])
    return prime + "".join(out)


def _vocabulary(path, metadata):
    """The list of characters in the file's "rnnlab" metadata, or one clear ValueError."""
    try:
        doc = json.loads(metadata)
    except (ValueError, RecursionError):
        raise ValueError(f"{path}: its 'rnnlab' metadata is not valid JSON") from None
    chars = doc.get("vocab") if isinstance(doc, dict) else None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: its 'rnnlab' metadata is {type(doc).__name__}, not a JSON object")
    if not chars:
        raise ValueError(f"{path}: not an rnnlab character model with a vocabulary (export it with one)")
    if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars) \
            or len(set(chars)) != len(chars):
        raise ValueError(f"{path}: its vocabulary is not a list of distinct single characters "
                         f"(got {type(chars).__name__}); the file is damaged or not an rnnlab export")
    return chars


def main(argv=None):
    p = argparse.ArgumentParser(description="Sample text from an rnnlab ONNX model with onnxruntime.")
    p.add_argument("model")
    p.add_argument("--prime", default="")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(argv)
    sys.stdout.write(a.prime)
    try:
        generate(a.model, a.prime, a.length, a.temperature, a.top_k, a.seed,
                 on_text=lambda c: (sys.stdout.write(c), sys.stdout.flush()))
    except ValueError as error:  # a forged or damaged file, non-finite logits: one line, no traceback
        sys.stdout.write("\n")
        sys.exit(f"onnx_generate.py: error: {error}")
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

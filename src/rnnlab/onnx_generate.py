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
    chars = json.loads(session.get_modelmeta().custom_metadata_map.get("rnnlab", "{}")).get("vocab")
    if not chars:
        raise ValueError(f"{path}: not an rnnlab character model with a vocabulary (export it with one)")
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
        feeds = {i.name: f for i, f in zip(states, finals)}  # outputs hn [, cn] follow the inputs' order
        scaled = logits[0, -1].astype(np.float64) / temperature
        if top_k is not None and top_k < scaled.size:
            scaled = np.where(scaled >= np.partition(scaled, -top_k)[-top_k], scaled, -np.inf)
        shifted = scaled - scaled.max()
        p = np.exp(shifted - np.log(np.exp(shifted).sum()))  # the stable softmax rnnlab uses
        ids = [int(rng.choice(len(p), p=p))]
        out.append(chars[ids[0]])
        if on_text is not None:
            on_text(out[-1])
    return prime + "".join(out)


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
    generate(a.model, a.prime, a.length, a.temperature, a.top_k, a.seed,
             on_text=lambda c: (sys.stdout.write(c), sys.stdout.flush()))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

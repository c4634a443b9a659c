"""SmoothQuant for the int8 MiniLM export: per-channel activation ranges moved into the weights before quantising.

Dynamic int8 quantisation gives each MatMul's activation one scale for the whole tensor, so a few channels with
large values crush the precision of the rest. Smoothing divides each input channel j by
s_j = max|x_j|^alpha / max|w_j|^(1 - alpha) (a Mul node in front of the MatMuls that read it) and multiplies row j
of their weights by s_j: the fp32 result is unchanged, the activation to quantise is flatter (Xiao et al., 2023).
The per-channel maxima come from running the fp32 export on calibration prompts; they ship as a small JSON
artifact, because a user's machine exports the model without any calibration data.

Re-make the artifact from any JSONL file of the shared schema:
    .venv/bin/python -m gateway.int8_smoothing --data ../shared/data/llmrouter_uiuc.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.onnx_encoder import SMOOTHING as ARTIFACT

FORMAT = "tiergate-smoothing-v1"
# Chosen among 0.5 / 0.7 / 0.8 / 0.9 / 1.0 for the export as it is now (asymmetric weights, FFN output projections
# in fp32) on a selection set of 2,096 prompts disjoint from bench/encoder.py's validation prompts, which then
# measured it (classifiers/MODEL_CARD.md). Before that export, 0.9 had been chosen on the validation prompts.
ALPHA = 0.8


def _weighted_matmuls(model: Any) -> list[Any]:
    inits = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]


def activation_maxima(fp32_path: Path, token_ids: Sequence[Sequence[int]]) -> dict[str, list[float]]:
    """max |x| per channel of every weighted MatMul's activation input, over the given tokenised prompts."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(fp32_path))
    acts = sorted({n.input[0] for n in _weighted_matmuls(model)})
    for a in acts:  # expose the intermediate tensors as outputs so one run reads them all
        model.graph.output.append(onnx.helper.make_tensor_value_info(a, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}
    for ids in token_ids:
        arr = np.asarray([ids], dtype=np.int64)
        outs = sess.run(acts, {"input_ids": arr, "attention_mask": np.ones_like(arr)})
        for name, v in zip(acts, outs, strict=True):
            m = np.abs(v.reshape(-1, v.shape[-1])).max(axis=0)
            maxima[name] = np.maximum(maxima[name], m) if name in maxima else m
    return {k: [float(f"{x:.5g}") for x in v] for k, v in maxima.items()}


def smooth(model: Any, maxima: Mapping[str, Sequence[float]], alpha: float = ALPHA) -> Any:
    """The same function as `model` (an fp32 onnx.ModelProto, changed in place and returned), smoothed."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, list[Any]] = {}
    for n in _weighted_matmuls(model):
        readers.setdefault(n.input[0], []).append(n)
    if set(readers) != set(maxima):
        raise ValueError(
            "the smoothing artifact does not match this export's MatMul inputs "
            f"(missing {sorted(set(readers) - set(maxima))[:3]}, unknown {sorted(set(maxima) - set(readers))[:3]}); "
            "re-make it with `python -m gateway.int8_smoothing`"
        )
    muls: dict[str, Any] = {}
    for act, nodes in readers.items():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        xmax = np.maximum(np.asarray(maxima[act], dtype=np.float32), 1e-5)
        if xmax.shape != (weights[0].shape[0],):
            raise ValueError(f"smoothing artifact: {act} has {xmax.shape[0]} channels, its weights another number")
        wmax = np.maximum(np.max([np.abs(w).max(axis=1) for w in weights], axis=0), 1e-5)
        s = (xmax**alpha / wmax ** (1.0 - alpha)).astype(np.float32)
        inv = numpy_helper.from_array((1.0 / s).astype(np.float32), f"{act}/smooth_inv")
        model.graph.initializer.append(inv)
        muls[act] = helper.make_node("Mul", [act, inv.name], [f"{act}/smoothed"], name=f"{act}/smooth")
        for n, w in zip(nodes, weights, strict=True):
            inits[n.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), n.input[1]))
            n.input[0] = f"{act}/smoothed"
    # Each Mul goes right after the node producing its input, keeping the graph topologically sorted.
    nodes = list(model.graph.node)
    del model.graph.node[:]
    for n in nodes:
        model.graph.node.append(n)
        model.graph.node.extend(muls.pop(o) for o in n.output if o in muls)
    if muls:
        raise ValueError(f"no producer found for {sorted(muls)[:3]}")
    return model


def load_artifact(path: Path = ARTIFACT) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if d.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} artifact")
    return d


def main(argv: list[str] | None = None) -> int:
    from classifiers.features import clip
    from gateway.datasets import labelled
    from gateway.encoders import minilm_path
    from gateway.onnx_encoder import fp32_export, tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="JSONL files in the shared schema")
    ap.add_argument("--n", type=int, default=300, help="calibration prompts, sampled with a fixed seed")
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    args = ap.parse_args(argv)
    texts = [clip(e.text) for p in args.data for e in labelled(p)]
    pick = np.random.default_rng(1).choice(len(texts), min(args.n, len(texts)), replace=False)
    tok = tokenizer(minilm_path())
    ids = [tok.encode(texts[i]).ids for i in sorted(pick)]
    maxima = activation_maxima(fp32_export(minilm_path()), ids)
    meta = {"prompts": len(ids), "sources": [p.name for p in args.data], "seed": 1}
    args.out.write_text(json.dumps({"format": FORMAT, "alpha": ALPHA, "calibration": meta, "maxima": maxima}) + "\n")
    print(f"wrote {args.out}: {len(maxima)} activations from {len(ids)} prompts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Classifier speed and int8 fidelity, all backends side by side in one run. Prints a markdown report.

    .venv/bin/python -m bench.encoder [--validation N]

1. single-prompt p50 on one core (one thread) for a 20-word prompt: torch fp32, ONNX fp32, ONNX int8, in five
   alternating rounds (the median and each round's ratio to torch are printed);
2. ONNX fp32 and int8 vs torch fp32 on validation prompts (RouterBench test rows, Arena-Hard, an MMLU sample):
   cosine of the embeddings and how many routing decisions (tier under the default policy, classifier v1) change;
3. throughput through the gateway's ClassifierService (micro-batched) at concurrency 1/16/64 on this machine;
4. resident memory of a process with each backend loaded;
5. the floor: MiniLM-L6's FLOPs at that token count over this machine's measured one-core fp32 matmul rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np

import gateway  # noqa: F401  (offline environment variables)
from classifiers.labels import examples
from classifiers.model import featurize
from gateway.classify import ClassifierService, load_model
from gateway.datasets import read_jsonl
from gateway.encoders import TorchEncoder, make_encoder
from gateway.feature_cache import FeatureCache
from gateway.onnx_encoder import OnnxEncoder
from gateway.policy_file import load
from gateway.settings import DEFAULT_ARTIFACT, PACKAGE_ROOT

PROMPT = "Explain why the sky looks blue during the day but red at sunset, in simple words for a curious child."
DATA = PACKAGE_ROOT.parent / "shared" / "data"


def p50_ms(fn: Any, n: int = 200) -> float:
    for _ in range(10):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def one_core(rounds: int = 5) -> dict[str, list[float]]:
    """Each backend's p50 in `rounds` alternating rounds, so that all of them see the same machine."""
    import torch

    torch.set_num_threads(1)
    t = TorchEncoder()
    o32, o8 = OnnxEncoder(quantized=False, threads=1), OnnxEncoder(threads=1)
    out: dict[str, list[float]] = {"torch fp32": [], "onnx fp32": [], "onnx int8": []}
    for _ in range(rounds):
        for name, e in (("torch fp32", t), ("onnx fp32", o32), ("onnx int8", o8)):
            out[name].append(p50_ms(lambda e=e: e.encode([PROMPT]), n=100))
    return out


def validation(n_mmlu: int) -> dict[str, dict[str, float]]:
    rows = [r for r in read_jsonl(DATA / "routerbench_subset.jsonl") if str(r.get("orig_split", "")).endswith("test")]
    rows += list(read_jsonl(DATA / "arena_hard_v01.jsonl"))
    mmlu = list(read_jsonl(DATA / "mmlu_gpt4_vs_mixtral.jsonl"))
    rows += [mmlu[i] for i in np.random.default_rng(0).choice(len(mmlu), n_mmlu, replace=False)]
    exs = examples(rows)
    texts, turns = [e.text for e in exs], [e.turns for e in exs]
    x32 = FeatureCache(TorchEncoder, TorchEncoder.name).features(texts, turns)
    model = load_model(DEFAULT_ARTIFACT)
    policy = load(PACKAGE_ROOT / "config" / "tiergate.yaml").policies["default"]
    t32 = [policy.min_tier(s) for s in model.score_features(x32)]
    out = {}
    for name, quantized in (("onnx fp32", False), ("onnx int8", True)):
        x = featurize(OnnxEncoder(quantized=quantized), texts, turns)
        cos = (x32[:, :384] * x[:, :384]).sum(axis=1)
        tiers = [policy.min_tier(s) for s in model.score_features(x)]
        out[name] = {
            "prompts": len(exs),
            "cos_mean": float(cos.mean()),
            "cos_p1": float(np.percentile(cos, 1)),
            "cos_min": float(cos.min()),
            "same_tier": float(np.mean(np.equal(t32, tiers))),
        }
    return out


async def _drive(svc: ClassifierService, concurrency: int, total: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await svc.score(f"{PROMPT} ({i})")

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    return total / (time.perf_counter() - t)


def throughput(total: int) -> dict[str, dict[int, float]]:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    model = load_model(DEFAULT_ARTIFACT)
    out: dict[str, dict[int, float]] = {}
    backends = (
        ("torch fp32", TorchEncoder(), 1),
        ("onnx fp32", OnnxEncoder(quantized=False, threads=1), 2),
        ("onnx int8", OnnxEncoder(threads=1), 2),
    )
    for name, enc, threads in backends:
        # The gateway's defaults: no added wait; batches form while the encoder is busy.
        svc = ClassifierService(enc, model, threads=threads, max_batch=32, max_wait_ms=0.0)
        out[name] = {c: asyncio.run(_drive(svc, c, total)) for c in (1, 16, 64)}
        svc.close()
    return out


def rss_mb(backend: str) -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child would report this process's peak.
    code = (
        "import gateway, re; from gateway.encoders import make_encoder; "
        f"e = make_encoder('{backend}'); e.encode(['warm up']); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def floor_ms() -> tuple[int, float, float]:
    from threadpoolctl import threadpool_limits

    n = make_encoder("onnx").count_tokens(PROMPT)
    d, layers = 384, 6
    flops = layers * (2 * n * d * d * 4 + 2 * n * d * 4 * d * 2 + 2 * 2 * n * n * d)
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    with threadpool_limits(1):
        t = p50_ms(lambda: a @ a, 20)
    rate = 2 * 1024**3 / (t / 1000)
    return n, flops, flops / rate * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--validation", type=int, default=600, help="MMLU prompts added to the validation set")
    ap.add_argument("--requests", type=int, default=600, help="requests per concurrency level")
    args = ap.parse_args()
    rounds = one_core()
    single = {k: float(np.median(v)) for k, v in rounds.items()}
    val = validation(args.validation)
    thr = throughput(args.requests)
    rss = {b: rss_mb(b) for b in ("torch", "onnx-fp32", "onnx")}
    n, flops, floor = floor_ms()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print(
        "| backend | p50, one core, one prompt of 20 words (median of the rounds) | vs torch fp32 | each round "
        "(ms; vs torch in the same round) |\n|---|---|---|---|"
    )
    for k, v in single.items():
        each = ", ".join(f"{x:.2f} ({t / x:.2f}x)" for x, t in zip(rounds[k], rounds["torch fp32"], strict=True))
        print(f"| {k} | {v:.2f} ms | {single['torch fp32'] / v:.2f}x | {each} |")
    print(
        f"\nFloor: {n} tokens, {flops / 1e6:.0f} MFLOP per prompt; this core's fp32 matmul rate gives {floor:.2f} ms.\n"
    )
    for name, v in val.items():
        print(
            f"{name} vs torch fp32 on {v['prompts']} validation prompts: cosine mean {v['cos_mean']:.4f}, "
            f"1st percentile {v['cos_p1']:.4f}, min {v['cos_min']:.4f}; same tier (default policy, classifier v1) "
            f"for {v['same_tier']:.2%}.\n"
        )
    print("| backend | req/s at concurrency 1 | 16 | 64 | RSS (MB) |\n|---|---|---|---|---|")
    for (name, t), key in zip(thr.items(), ("torch", "onnx-fp32", "onnx"), strict=True):
        print(f"| {name} | {t[1]:.0f} | {t[16]:.0f} | {t[64]:.0f} | {rss[key]:.0f} |")
    print("\n" + json.dumps({"single_ms": single, "validation": val, "throughput": thr, "rss_mb": rss}))


if __name__ == "__main__":
    main()

"""The int8 ONNX backend against torch fp32 on the same packaged weights (export runs once per cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.encoders import TorchEncoder
from gateway.onnx_encoder import OnnxEncoder

TEXTS = [
    "hi",
    "Write a short poem about the sea.",
    "Implement a lock-free concurrent hash map in C++ with hazard pointers and explain linearizability.",
    "Which of these is a mammal? A) shark B) dolphin C) trout D) eel\nAnswer:",
    "word " * 400,  # longer than the 256-token window: truncated the same way in both
]


@pytest.fixture(scope="module")
def encoders() -> tuple[TorchEncoder, OnnxEncoder]:
    return TorchEncoder(), OnnxEncoder()


def test_int8_vectors_stay_close_to_fp32(encoders: tuple[TorchEncoder, OnnxEncoder]) -> None:
    torch_enc, onnx_enc = encoders
    a, b = torch_enc.encode(TEXTS), onnx_enc.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    # Plain per-tensor int8 gave "hi" 0.978; smoothed, every text stays above 0.99 (distribution: docs/benchmarks.md).
    assert cos.min() > 0.99, cos
    assert cos.mean() > 0.995, cos


def test_smoothing_leaves_the_fp32_function_unchanged() -> None:
    import onnx
    import onnxruntime as ort

    from gateway.encoders import minilm_path
    from gateway.int8_smoothing import load_artifact, smooth
    from gateway.onnx_encoder import fp32_export

    plain = fp32_export(minilm_path())
    art = load_artifact()
    smoothed = smooth(onnx.load(str(plain)), art["maxima"], art["alpha"])
    assert sum(n.op_type == "Mul" and n.name.endswith("/smooth") for n in smoothed.graph.node) == 24
    ids = np.asarray([[101, 7592, 2088, 1029, 102]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    run = [
        ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feed)[0]
        for m in (str(plain), smoothed.SerializeToString())
    ]
    assert np.abs(run[0] - run[1]).max() < 1e-3  # the same network in fp32: only the int8 step changes numbers
    with pytest.raises(ValueError, match="does not match"):
        smooth(onnx.load(str(plain)), {k: v for k, v in list(art["maxima"].items())[1:]}, 0.9)


def test_order_and_batching_do_not_change_vectors(encoders: tuple[TorchEncoder, OnnxEncoder]) -> None:
    _, onnx_enc = encoders
    together = onnx_enc.encode(TEXTS)
    alone = np.vstack([onnx_enc.encode([t]) for t in TEXTS])
    assert np.array_equal(together, alone)  # int8 encodes texts one at a time: no batch-mate effects
    assert onnx_enc.count_tokens("hello world") == 4  # [CLS] hello world [SEP]


def test_both_backends_count_a_long_text_whole_and_read_the_same_window(
    encoders: tuple[TorchEncoder, OnnxEncoder],
) -> None:
    """/v1/embeddings refuses a text past `max_tokens` from these counts: int8 counted with its truncating
    tokenizer, so a 402-token text counted 256 there and 402 under torch."""
    torch_enc, onnx_enc = encoders
    assert torch_enc.max_tokens == onnx_enc.max_tokens == 256
    assert torch_enc.count_tokens(TEXTS[-1]) == onnx_enc.count_tokens(TEXTS[-1]) == 402


def test_int8_on_several_threads_gives_each_text_its_own_vector(encoders: tuple[TorchEncoder, OnnxEncoder]) -> None:
    """A batch command's int8 encoder runs one prompt per thread: the same vectors, in the caller's order, as one
    thread gives (each call single-threaded, so bit for bit)."""
    texts = [f"{t} ({i})" for i in range(6) for t in TEXTS]
    one = encoders[1].encode(texts)
    many = OnnxEncoder(threads=2)
    assert many._parallel == 2
    assert np.array_equal(many.encode(texts), one)


def test_fp32_export_matches_torch(encoders: tuple[TorchEncoder, OnnxEncoder], tmp_path: Path) -> None:
    torch_enc, _ = encoders
    fp32 = OnnxEncoder(quantized=False)
    assert ((torch_enc.encode(TEXTS) * fp32.encode(TEXTS)).sum(axis=1)).min() > 0.9999


def test_int8_weight_type_follows_the_cpu() -> None:
    from gateway.onnx_encoder import int8_weights

    assert int8_weights("flags : fpu sse2 avx2 fma", "x86_64") == "u8"  # u8 x s8 sums saturate without VNNI
    assert int8_weights("flags : fpu avx2 avx512f avx512_vnni", "x86_64") == "s8"
    assert int8_weights("flags : fpu avx2 avx_vnni", "x86_64") == "s8"
    assert int8_weights("", "aarch64") == "s8"


def test_int8_export_keeps_each_layers_feed_forward_output_in_fp32() -> None:
    import onnx

    from gateway.encoders import minilm_path
    from gateway.onnx_encoder import ffn_down_projections, fp32_export, int8_export

    plain = onnx.load(str(fp32_export(minilm_path())))
    names = ffn_down_projections(plain, 6)
    assert len(names) == 6 and all("output/dense" in n and "attention" not in n for n in names)
    with pytest.raises(RuntimeError, match="one feed-forward output MatMul per layer"):
        ffn_down_projections(plain, 12)
    q = onnx.load(str(int8_export(minilm_path())))
    float_matmuls = {n.name for n in q.graph.node if n.op_type == "MatMul"}
    assert set(names) <= float_matmuls  # left in fp32 ...
    # ... while the other 30 weighted MatMuls (attention q/k/v/out, feed-forward in) are int8, with zero points.
    assert sum(n.op_type == "MatMulInteger" for n in q.graph.node) == 30
    zero_points = [i for i in q.graph.initializer if i.name.endswith("_zero_point") and len(i.dims) == 1]
    assert zero_points and any(np.any(onnx.numpy_helper.to_array(z) != 0) for z in zero_points)

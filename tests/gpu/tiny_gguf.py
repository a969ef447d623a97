"""Write a tiny random-weight GGUF that carries the shipped Qwen's tokenizer and chat template.

The GPU check (`tests/gpu/check.sh`) runs on a machine that can receive about 60 MB per call and
nothing from the network, so the 491 MB model cannot travel. This file has the same architecture
(qwen2, with q/k/v biases and an untied output), the same tensor names, the same kinds of
quantization (Q5_0 and Q8_0 blocks, F32 norms) and the same tokenizer, at a hidden size of 128:
vLLM loads it through exactly the path the real model takes (GGUF config, GGUF kernels, tokenizer
converted from the GGUF's metadata). Its words are noise; the grammar still fixes its tool calls.

    python tests/gpu/tiny_gguf.py OUT.gguf   (needs `pip install gguf` and the shipped model)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 128, 2, 1, 256, 2
COPIED_PREFIXES = ("tokenizer.",)


def build(source: Path, target: Path, seed: int = 0) -> None:
    import gguf
    from gguf.quants import quantize

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, "qwen2")
    writer.add_name("velox tiny random qwen2 (GPU path check only)")
    writer.add_context_length(4096)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_block_count(LAYERS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q5_0)
    for key, field in reader.fields.items():
        if key.startswith(COPIED_PREFIXES):
            value_type = field.types[0]
            sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), value_type, sub_type)

    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    rng = np.random.default_rng(seed)
    kv = HIDDEN // HEADS * KV_HEADS

    def add(name: str, rows: int, cols: int, kind: gguf.GGMLQuantizationType | None) -> None:
        data = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        if kind is None:
            writer.add_tensor(name, data.reshape(-1) if rows == 1 else data)
        else:
            writer.add_tensor(name, quantize(data, kind), raw_dtype=kind)

    q5, q8 = gguf.GGMLQuantizationType.Q5_0, gguf.GGMLQuantizationType.Q8_0
    add("token_embd.weight", vocab, HIDDEN, q5)
    add("output.weight", vocab, HIDDEN, q8)
    add("output_norm.weight", 1, HIDDEN, None)
    for n in range(LAYERS):
        add(f"blk.{n}.attn_norm.weight", 1, HIDDEN, None)
        add(f"blk.{n}.ffn_norm.weight", 1, HIDDEN, None)
        add(f"blk.{n}.attn_q.weight", HIDDEN, HIDDEN, q5)
        add(f"blk.{n}.attn_q.bias", 1, HIDDEN, None)
        add(f"blk.{n}.attn_k.weight", kv, HIDDEN, q5)
        add(f"blk.{n}.attn_k.bias", 1, kv, None)
        add(f"blk.{n}.attn_v.weight", kv, HIDDEN, q8)
        add(f"blk.{n}.attn_v.bias", 1, kv, None)
        add(f"blk.{n}.attn_output.weight", HIDDEN, HIDDEN, q5)
        add(f"blk.{n}.ffn_gate.weight", FFN, HIDDEN, q5)
        add(f"blk.{n}.ffn_up.weight", FFN, HIDDEN, q5)
        add(f"blk.{n}.ffn_down.weight", HIDDEN, FFN, q8)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    from app.llm.model_files import qwen_gguf_path
    from app.settings import get_settings

    build(qwen_gguf_path(get_settings().server.velox_data_dir), Path(sys.argv[1]))

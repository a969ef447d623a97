"""Which GGUF the SLM loads: SLM_MODEL_PATH when set, checked before any engine sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.llm.model_files import GGUF_MAGIC, ModelFileError, slm_model_path


def test_an_override_that_is_a_gguf_is_used(tmp_path: Path) -> None:
    model = tmp_path / "bigger.gguf"
    model.write_bytes(GGUF_MAGIC + b"\x03\x00\x00\x00")
    assert slm_model_path(model, tmp_path / "data") == model


def test_a_missing_override_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="SLM_MODEL_PATH .* is not a file"):
        slm_model_path(tmp_path / "nope.gguf", tmp_path)


def test_an_override_that_is_not_a_gguf_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "weights.safetensors"
    model.write_bytes(b"{}")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        slm_model_path(model, tmp_path)

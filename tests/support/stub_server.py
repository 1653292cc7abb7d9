"""Run the scripted OpenAI-compatible stub (`tests.support.openai_stub`) as its own process, the model
server of a collector host in the multi-host tests and bench:

    python -m tests.support.stub_server --host 127.0.0.1 --port 8100 --delay 0.3

`--delay` is the seconds each chat completion waits before answering (a slow model, so a run lasts
long enough to inject a fault into it); the stub plays the counter env's solver.
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.support.openai_stub import StubControl, create_stub


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each chat completion answers")
    args = parser.parse_args(argv)
    app, _ = create_stub(StubControl(delay=args.delay))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

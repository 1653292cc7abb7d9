"""A bare FastAPI no-op endpoint with a small pydantic body: the HTTP baseline for bench_service.py.

    python -m bench.noop_app --port P      (uvicorn with the env service's settings, see common.serve_app)
"""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    action: str


@app.post("/noop")
async def noop(body: Body) -> dict[str, str]:
    return {"observation": body.action}


if __name__ == "__main__":
    from bench.common import serve_app

    serve_app(app)

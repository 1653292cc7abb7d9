"""A bare FastAPI no-op endpoint with a small pydantic body: the baseline for bench_service.py."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    action: str


@app.post("/noop")
async def noop(body: Body) -> dict[str, str]:
    return {"observation": body.action}

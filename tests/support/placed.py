"""Expert episodes placed through a hub (`clients.hub_client.Placement`): which replica each ran on."""

from __future__ import annotations

import asyncio

from clients.hub_client import Placement, RegistryClient


async def placed_expert_episodes(registry: RegistryClient, name: str, count: int, hold: float = 0.2) -> list[tuple[str, bool]]:
    """`count` expert episodes of `name` at once, each on the replica placement gives it; (replica URL, success)
    each. Every session is held open `hold` seconds first, so that placement sees them all together."""
    placement = Placement(registry, name)

    async def episode(i: int) -> tuple[str, bool]:
        async with placement.lease() as lease:
            created = await lease.client.create(task_id=f"counter-{i}")
            await asyncio.sleep(hold)
            while True:
                result = await lease.client.step(created.session_id, await lease.client.expert_action(created.session_id))
                if result.done:
                    await lease.client.close(created.session_id)
                    return lease.url, bool(result.info["success"])

    try:
        return list(await asyncio.gather(*(episode(i) for i in range(count))))
    finally:
        await placement.aclose()

"""The node's store gate: updates side by side, a rebuild alone."""

import asyncio

from freeim.node.storegate import StoreGate


async def test_a_rebuild_waits_for_updates_in_flight_and_holds_new_ones_back():
    gate, log = StoreGate(), []

    async def update(name, hold):
        async with gate.shared():
            log.append(f"{name} in")
            await asyncio.sleep(hold)
            log.append(f"{name} out")

    async def rebuild():
        async with gate.exclusive():
            log.append("rebuild in")
            await asyncio.sleep(0.02)
            log.append("rebuild out")

    first, second = asyncio.create_task(update("a", 0.02)), asyncio.create_task(update("b", 0.01))
    await asyncio.sleep(0)
    rebuilding = asyncio.create_task(rebuild())
    await asyncio.sleep(0)
    late = asyncio.create_task(update("c", 0))
    await asyncio.gather(first, second, rebuilding, late)
    assert log == ["a in", "b in", "b out", "a out", "rebuild in", "rebuild out", "c in", "c out"]

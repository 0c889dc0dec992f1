"""The stop order of a pod with sidecars: regular containers first, then sidecars last to first."""

import asyncio

from kubelet.termination import termination_order

SPEC = {
    "initContainers": [
        {"name": "log", "image": "x", "restartPolicy": "Always"},
        {"name": "setup", "image": "x"},
        {"name": "proxy", "image": "x", "restartPolicy": "Always"},
    ],
    "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
}


def test_no_sidecars_no_order():
    assert termination_order({"spec": {"containers": SPEC["containers"]}}, {"a", "b"}) is None
    assert termination_order(None, {"a"}) is None


async def test_sidecars_stop_after_the_regular_containers_in_reverse_order():
    order = termination_order({"spec": SPEC}, {"log", "proxy", "a", "b"})
    assert order is not None
    stopped: list[str] = []

    async def stop(name: str) -> None:
        await order.wait_for_turn(name, 5)
        stopped.append(name)
        order.stopped(name)

    tasks = [asyncio.create_task(stop(n)) for n in ("log", "proxy")]
    await asyncio.sleep(0)
    assert stopped == []  # both wait for a and b
    await stop("b")
    await asyncio.sleep(0)
    assert stopped == ["b"]
    await stop("a")
    await asyncio.gather(*tasks)
    assert stopped == ["b", "a", "proxy", "log"]


async def test_containers_that_do_not_run_are_no_ones_wait_and_waiting_is_bounded():
    order = termination_order({"spec": SPEC}, {"log", "a"})
    assert order is not None
    order.stopped("a")
    assert await order.wait_for_turn("log", 5) == 0  # proxy and b were not running
    stuck = termination_order({"spec": SPEC}, {"log", "a"})
    assert stuck is not None
    waited = await asyncio.wait_for(stuck.wait_for_turn("log", 0.05), 2)  # a never stops: the grace period ends
    assert waited == 0

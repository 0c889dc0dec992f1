"""The controller-manager's plumbing: --controllers selection, flags, the run loop, launch command."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from controller_manager.__main__ import main
from controller_manager.base import Controller, ControllerContext, FakeClock, register
from controller_manager.fake import FakeAPI, FakeInformerFactory
from controller_manager.manager import ControllerSet, enabled_controllers, load_controllers
from controller_manager.options import parse_duration


class _A(Controller):
    name = "a-controller"
    aliases = ("a",)


class _B(Controller):
    name = "b-controller"
    aliases = ("b",)


class _Off(Controller):
    name = "bootstrapsigner-controller"
    aliases = ("bootstrapsigner",)
    enabled_by_default = False


REGISTRY = {c.name: c for c in (_A, _B, _Off)}


@pytest.mark.parametrize(("spec", "expected"), [
    (["*"], ["a-controller", "b-controller"]),
    (["*", "-b"], ["a-controller"]),
    (["*", "bootstrapsigner"], ["a-controller", "b-controller", "bootstrapsigner-controller"]),
    (["a"], ["a-controller"]),
    (["-a", "*"], ["b-controller"]),
    (["b-controller", "-b-controller"], []),  # disabling wins
    ([], []),
])
def test_controllers_flag(spec, expected):
    assert enabled_controllers(spec, REGISTRY) == expected


def test_unknown_controller_is_refused():
    with pytest.raises(ValueError, match="not in the list of known controllers"):
        enabled_controllers(["*", "-nope"], REGISTRY)


def test_every_workload_controller_is_registered_under_upstream_names():
    registry = load_controllers()
    for name, alias in (("replicaset-controller", "replicaset"), ("deployment-controller", "deployment"),
                        ("daemonset-controller", "daemonset"), ("statefulset-controller", "statefulset"),
                        ("job-controller", "job"), ("cronjob-controller", "cronjob"),
                        ("ttl-after-finished-controller", "ttl-after-finished")):
        assert name in registry and alias in registry[name].aliases
        assert registry[name].service_account  # each writes as its own ServiceAccount
    assert enabled_controllers(["*", "-job", "-cronjob"], registry) == [
        n for n in registry if n not in ("job-controller", "cronjob-controller") and registry[n].enabled_by_default]


def test_register_refuses_a_second_controller_with_the_same_name():
    class Dup(Controller):
        name = "replicaset-controller"

    load_controllers()
    with pytest.raises(ValueError, match="registered twice"):
        register(Dup)


@pytest.mark.parametrize(("text", "seconds"), [
    ("40s", 40), ("5m0s", 300), ("1h30m", 5400), ("250ms", 0.25), ("2", 2), ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_duration():
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_cli_rejects_unknown_controllers_and_has_help():
    r = CliRunner().invoke(main, ["--controllers", "*,-nosuch"])
    assert r.exit_code != 0 and "not in the list of known controllers" in r.output
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for flag in ("--leader-elect", "--concurrent-deployment-syncs", "--node-monitor-grace-period",
                 "--pod-eviction-timeout", "--cluster-cidr", "--allocate-node-cidrs",
                 "--use-service-account-credentials", "--secure-port"):
        assert flag in r.output


async def test_controller_set_runs_workers_until_stopped():
    clock = FakeClock()
    api = FakeAPI(clock)
    synced: list[str] = []

    class Echo(Controller):
        name = "echo-controller"

        def __init__(self, ctx: ControllerContext) -> None:
            super().__init__(ctx)
            self.watch("v1", "configmaps")

        async def sync(self, key: str) -> None:
            synced.append(key)

    ctx = ControllerContext(api, FakeInformerFactory(api), clock=clock, recorder_factory=api.recorder)  # type: ignore[arg-type]
    cs = ControllerSet(ctx, ["echo-controller"], {"echo-controller": Echo})
    stop = asyncio.Event()
    task = asyncio.create_task(cs.run(stop))
    for _ in range(100):
        if cs.synced:
            break
        await asyncio.sleep(0.01)
    api.create("v1", "configmaps", {"metadata": {"name": "x", "namespace": "default"}})
    for _ in range(100):
        if synced:
            break
        await asyncio.sleep(0.01)
    assert synced == ["default/x"]
    assert ctx.sync_total.get("echo-controller", "success") == 1
    stop.set()
    await asyncio.wait_for(task, 5)


def test_launch_command():
    from controller_manager.launch import controller_manager_command
    from minictl.components import ClusterConfig

    cmd = controller_manager_command(ClusterConfig("/tmp/x"))
    assert cmd[1:3] == ["-m", "controller_manager"]
    assert "--use-service-account-credentials" in cmd and "--leader-elect" in cmd
    assert cmd[cmd.index("--kubeconfig") + 1] == "/tmp/x/kubeconfigs/controller-manager.kubeconfig"
    assert cmd[cmd.index("--cluster-cidr") + 1] == "10.244.0.0/16"

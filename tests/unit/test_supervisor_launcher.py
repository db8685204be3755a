"""The launcher of a StorageDriver's process: the generic command template and the per-type registry."""

from __future__ import annotations

import pytest

from ovsd.agent.launcher import GenericLauncher, LaunchError, Launchers, LaunchSpec
from ovsd.config import ConfigError, StoragedriverConfig, load

STORAGEDRIVER = {
    "guid": "8ceb873a-7b60-4a8f-b91f-c373ce65ea07",
    "name": "local0050569647a1",
    "storagedriver_id": "local0050569647a1",
    "mountpoint": "/mnt/local",
    "mountpoint_bfs": "/mnt/bfs/local",
}
VPOOL = {"guid": "e9146a46-2ca2-4f09-93f4-9101e0ffd439", "name": "local", "type": "LOCAL"}


def config(*command: str) -> StoragedriverConfig:
    return StoragedriverConfig(command=command, stop_grace=5.0, max_restarts=5)


def test_generic_launcher_fills_every_placeholder_per_argument() -> None:
    launcher = GenericLauncher(config(
        "/usr/bin/volumedriver", "--name={name}", "--vpool", "{vpool}", "--id={storagedriver_id}",
        "{mountpoint}/data", "--guid", "{guid}", "--literal={{braces}}",
    ))
    spec = launcher.launch_spec(STORAGEDRIVER, VPOOL)
    assert spec.argv == [
        "/usr/bin/volumedriver", "--name=local0050569647a1", "--vpool", "local", "--id=local0050569647a1",
        "/mnt/local/data", "--guid", "8ceb873a-7b60-4a8f-b91f-c373ce65ea07", "--literal={braces}",
    ]
    assert spec.env == {} and spec.control_socket is None and spec.ready is None


def test_default_command_runs_forever_without_placeholders() -> None:
    spec = GenericLauncher(load(None, environ={}).storagedriver).launch_spec(STORAGEDRIVER, VPOOL)
    assert spec.argv == ["sleep", "infinity"]


@pytest.mark.parametrize("argument", ["--x={unknown}", "{name.upper}", "{name!r}", "{guid:>40}", "{0}", "{}"])
def test_unknown_placeholders_are_a_configuration_error_naming_the_key(argument: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GenericLauncher(config("volumedriver", argument))
    assert caught.value.key == "storagedriver.command"
    assert "{name}" in str(caught.value)  # the message lists the placeholders that exist


def test_an_unbalanced_brace_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"storagedriver\.command"):
        GenericLauncher(config("volumedriver", "--x={name"))


def test_a_missing_value_names_the_placeholder_and_the_driver() -> None:
    launcher = GenericLauncher(config("volumedriver", "{mountpoint}"))
    with pytest.raises(LaunchError, match=r"\{mountpoint\}.*storagedriver has no mountpoint.*8ceb873a"):
        launcher.launch_spec({**STORAGEDRIVER, "mountpoint": None}, VPOOL)
    # a placeholder the template does not use may be missing
    assert GenericLauncher(config("volumedriver", "{name}")).launch_spec({"name": "sd"}, {}).argv == [
        "volumedriver", "sd",
    ]


def test_every_vpool_type_uses_the_generic_launcher_until_another_is_registered() -> None:
    launchers = Launchers(config("volumedriver", "{vpool}"))
    for vpool_type in ("LOCAL", "DISTRIBUTED", "CEPH_S3", "AMAZON_S3", "SWIFT_S3"):
        assert isinstance(launchers.launcher_for(vpool_type), GenericLauncher)
        assert launchers.launch_spec(STORAGEDRIVER, {**VPOOL, "type": vpool_type}).argv == ["volumedriver", "local"]
    with pytest.raises(LaunchError, match="'NFS'"):
        launchers.launcher_for("NFS")

    class Qsd:
        def launch_spec(self, storagedriver: object, vpool: object) -> LaunchSpec:
            return LaunchSpec(argv=["qemu-storage-daemon"], control_socket="/run/qmp.sock")

    launchers.register("LOCAL", Qsd())
    assert launchers.launch_spec(STORAGEDRIVER, VPOOL).control_socket == "/run/qmp.sock"


def test_specs_compare_by_what_they_would_run_not_by_their_ready_check() -> None:
    async def ready_a() -> None:
        pass

    async def ready_b() -> None:
        pass

    assert LaunchSpec(["a"], ready=ready_a) == LaunchSpec(["a"], ready=ready_b)
    assert LaunchSpec(["a"]) != LaunchSpec(["a"], env={"X": "1"})
    assert LaunchSpec(["a"]) != LaunchSpec(["a"], control_socket="/s")

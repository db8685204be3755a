"""qemu-img as child processes: sizes, thin overlays, offline resize, copies, and errors in qemu-img's words."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor

from ovsd.storage import images
from tests.storage_support import MiB, cleanup, qemu_io_file, short_dir


@pytest.fixture
def directory() -> Iterator[str]:
    path = short_dir()
    yield path
    cleanup(path)


@pytest_twisted.ensureDeferred
async def test_an_overlay_is_thin_and_shows_its_backing(directory: str) -> None:
    base = os.path.join(directory, "base.qcow2")
    top = os.path.join(directory, "top.qcow2")
    await images.create(reactor, base, 64 * MiB)
    await qemu_io_file(base, "write -P 0x5a 0 8M")
    await images.create(reactor, top, None, backing=base)
    info = await images.info(reactor, top)
    assert info.virtual_size == 64 * MiB and info.backing == base
    assert info.actual_size < MiB <= 8 * MiB <= (await images.info(reactor, base)).actual_size
    chain = await images.chain_info(reactor, top)
    assert [i.path for i in chain] == [top, base]

    copy = os.path.join(directory, "copy.qcow2")
    await images.convert(reactor, top, copy)
    standalone = await images.info(reactor, copy)
    assert standalone.backing is None and standalone.actual_size >= 8 * MiB
    await qemu_io_file(copy, "read -P 0x5a 0 8M")

    await images.resize(reactor, copy, 128 * MiB)
    assert (await images.info(reactor, copy)).virtual_size == 128 * MiB


@pytest_twisted.ensureDeferred
async def test_a_failure_carries_what_qemu_img_said(directory: str) -> None:
    missing = os.path.join(directory, "nowhere", "x.qcow2")
    with pytest.raises(images.ImageError) as raised:
        await images.create(reactor, missing, 64 * MiB)
    assert "nowhere" in raised.value.stderr and raised.value.code == 1
    with pytest.raises(images.ImageError, match="No such file"):
        await images.info(reactor, os.path.join(directory, "absent.qcow2"))
    with pytest.raises(images.ImageError, match="absent"):
        await images.create(reactor, os.path.join(directory, "child.qcow2"), None,
                            backing=os.path.join(directory, "absent.qcow2"))
    assert not os.path.exists(os.path.join(directory, "child.qcow2"))


def test_a_missing_program_names_its_package() -> None:
    with pytest.raises(images.MissingTool, match=r"qemu-storage-daemon is not installed.*qemu-system-common"):
        images.tool_path("qemu-storage-daemon", search="/nonexistent")
    with pytest.raises(images.MissingTool, match="qemu-utils"):
        images.tool_path("qemu-img", search="/nonexistent")

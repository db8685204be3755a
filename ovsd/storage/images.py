"""Image work that QMP cannot do, run as ``qemu-img`` child processes (never in the reactor thread).

Every call spawns ``qemu-img`` and waits for it without blocking the reactor; a failure raises
:class:`ImageError` carrying qemu-img's own stderr. Reads of an image a daemon holds open use ``-U``
(force-share): the daemon keeps the write lock, and reads of sizes and headers do not need it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import threads
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.utils import getProcessOutputAndValue

from ovsd.childguard import child_env

#: the Debian package that brings each tool (a node without it gets an error naming the package)
PACKAGES = {"qemu-img": "qemu-utils", "qemu-io": "qemu-utils", "qemu-storage-daemon": "qemu-system-common"}


class ImageError(RuntimeError):
    """qemu-img failed: ``stderr`` is what it said."""

    def __init__(self, args: Sequence[str], code: int | str, stderr: str) -> None:
        said = stderr.strip() or "(nothing on stderr)"
        super().__init__(f"qemu-img {' '.join(args[:1])} failed ({code}): {said}")
        self.args_ = list(args)
        self.code = code
        self.stderr = stderr


class MissingTool(RuntimeError):
    """A QEMU program is not installed on this node."""

    def __init__(self, tool: str) -> None:
        super().__init__(f"{tool} is not installed on this node (Debian package {PACKAGES.get(tool, tool)})")
        self.tool = tool


def tool_path(tool: str, search: str | None = None) -> str:
    """The absolute path of a QEMU program (on PATH, else /usr/bin); MissingTool naming the package when absent."""
    if search is None:
        search = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/bin:/usr/sbin"
    found = shutil.which(tool, path=search)
    if found is None:
        raise MissingTool(tool)
    return found


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` says of one image."""

    path: str
    virtual_size: int
    #: bytes the image file really takes on disk (its allocation, not its length)
    actual_size: int
    #: the backing file as written in the header (None for a standalone image)
    backing: str | None
    snapshots: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageInfo:
        return cls(
            path=str(data.get("filename", "")),
            virtual_size=int(data.get("virtual-size", 0)),
            actual_size=int(data.get("actual-size", 0)),
            backing=data.get("full-backing-filename") or data.get("backing-filename"),
            snapshots=tuple(str(s.get("name")) for s in data.get("snapshots", [])),
        )


async def run(reactor: IReactorProcess, *args: str) -> str:
    """Run ``qemu-img ARGS``; its stdout, or ImageError with its stderr."""
    executable = tool_path("qemu-img")
    out, err, code = await _spawn(reactor, executable, list(args))
    if code != 0:
        raise ImageError(args, code, err)
    return out


async def _spawn(reactor: IReactorProcess, executable: str, args: list[str]) -> tuple[str, str, int | str]:
    running = getProcessOutputAndValue(executable, args, env=child_env(), reactor=reactor)
    # a signal ends it with an errback whose value is the (out, err, signal) tuple, not an exception
    caught = running.addErrback(lambda failure: ("signal", failure.value))
    result = await caught
    if result[0] == "signal":
        out, err, sig = result[1] if isinstance(result[1], tuple) else (b"", str(result[1]).encode(), "?")
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), f"signal {sig}"
    out, err, code = result
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), int(code)


async def create(reactor: IReactorProcess, path: str, size: int | None, backing: str | None = None) -> None:
    """A new qcow2 image of ``size`` bytes; on ``backing`` (a qcow2 image) it is a thin overlay.

    With a size given, ``-u`` keeps qemu-img from opening the backing file (a daemon may be writing
    it); without one (``backing`` required), qemu-img reads the size from the backing file.
    """
    # qemu-img create truncates an existing file: never let it overwrite a vDisk's data
    if await _in_thread(reactor, os.path.lexists, path):
        raise FileExistsError(f"image {path} already exists")
    args = ["create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += (["-u"] if size is not None else []) + ["-b", backing, "-F", "qcow2"]
    elif size is None:
        raise ValueError("an image without a backing file needs a size")
    await run(reactor, *args, path, *([str(size)] if size is not None else []))


async def info(reactor: IReactorProcess, path: str) -> ImageInfo:
    """Sizes, backing file and internal snapshots of one image (readable while a daemon holds it)."""
    out = await run(reactor, "info", "-U", "--output=json", path)
    return ImageInfo.from_json(json.loads(out))


async def chain_info(reactor: IReactorProcess, path: str) -> list[ImageInfo]:
    """The image and every image under it, top first."""
    out = await run(reactor, "info", "-U", "--backing-chain", "--output=json", path)
    return [ImageInfo.from_json(item) for item in json.loads(out)]


async def resize(reactor: IReactorProcess, path: str, size: int) -> None:
    """Grow (or, with care, shrink) an image that no daemon holds open."""
    args = ["resize", "-q", "-f", "qcow2"]
    await run(reactor, *args, path, str(size))


async def convert(reactor: IReactorProcess, source: str, target: str, snapshot: str | None = None) -> None:
    """A standalone qcow2 copy of ``source`` (of its internal ``snapshot`` if given), backing chain folded in."""
    args = ["convert", "-U", "-f", "qcow2", "-O", "qcow2"]
    if snapshot is not None:
        args += ["-l", f"snapshot.name={snapshot}"]
    await run(reactor, *args, source, target)


async def _in_thread(reactor: Any, call: Any, *args: Any) -> Any:
    return await threads.deferToThreadPool(reactor, reactor.getThreadPool(), call, *args)


async def remove(reactor: Any, paths: Iterable[str]) -> None:
    """Delete image files (a missing one is no error); the unlinks run in a thread, not the reactor."""
    targets = list(paths)

    def unlink_all() -> None:
        for path in targets:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    await _in_thread(reactor, unlink_all)

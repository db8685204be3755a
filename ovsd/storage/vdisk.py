"""What a StorageDriver needs to serve a vDisk: its description (kept by ovsd, replayed after a restart).

A vDisk is a writable qcow2 image (its *top*) over a chain of read-only qcow2 images. A snapshot is
such a chain: the image that was the top when the snapshot was taken, and everything under it. The
files of a chain never change again, so a clone or a template child is a new top whose chain is the
snapshot's (or the template's), sharing every byte it did not write (see ovsd.storage.daemon).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

#: read-only images, nearest first: the image a top sits on, then the one under it, …
Chain = tuple[str, ...]


@dataclass(frozen=True)
class VDisk:
    """One vDisk as a StorageDriver serves it; ovsd stores it and hands it back to ``replay``."""

    guid: str
    #: the qcow2 file written through the export (read-only for a template)
    image: str
    #: bytes the disk shows
    size: int
    chain: Chain = ()
    #: the NBD export name (the vDisk guid unless told otherwise)
    export: str = ""
    #: a template is exported read-only, and is the chain of its children
    template: bool = False
    #: its top opened with O_DIRECT (cache mode "none") or through the page cache; None: the driver's options
    cache_direct: bool | None = None
    #: the export flushes after every write before answering it (NBD ``writethrough``)
    write_through: bool = False

    def __post_init__(self) -> None:
        if not self.export:
            object.__setattr__(self, "export", self.guid)

    @property
    def as_backing(self) -> Chain:
        """The chain a child of this vDisk sits on (its top, then its own chain)."""
        return (self.image, *self.chain)

    def as_dict(self) -> dict[str, Any]:
        return {"guid": self.guid, "image": self.image, "size": self.size, "chain": list(self.chain),
                "export": self.export, "template": self.template, "cache_direct": self.cache_direct,
                "write_through": self.write_through}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VDisk:
        return cls(guid=str(data["guid"]), image=str(data["image"]), size=int(data["size"]),
                   chain=tuple(str(p) for p in data.get("chain", ())), export=str(data.get("export", "")),
                   template=bool(data.get("template", False)),
                   # descriptions stored before these settings existed: the driver's own options
                   cache_direct=None if data.get("cache_direct") is None else bool(data["cache_direct"]),
                   write_through=bool(data.get("write_through", False)))

    def evolve(self, **changes: Any) -> VDisk:
        return replace(self, **changes)


@dataclass(frozen=True)
class ImageOptions:
    """How the daemon opens images. The defaults are the daemon's own (page cache, thread-pool AIO), so an
    ovsd export runs as fast as a plain ``qemu-storage-daemon --blockdev`` of the same image."""

    cache_direct: bool = False
    no_flush: bool = False
    aio: str = "threads"
    #: guest discards free qcow2 clusters (the vDisk's stored size shrinks)
    discard: str = "unmap"
    extra: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str, path: str, backing: str | None, read_only: bool,
             cache_direct: bool | None = None) -> dict[str, Any]:
        """blockdev-add arguments of a qcow2 image over its file (``backing`` a node name; None: none;
        ``cache_direct`` a vDisk's own cache mode, None: these options')."""
        direct = self.cache_direct if cache_direct is None else cache_direct
        cache = {"direct": direct, "no-flush": self.no_flush}
        file: dict[str, Any] = {"driver": "file", "filename": path, "aio": self.aio, "cache": cache,
                                "read-only": read_only, "discard": self.discard}
        arguments: dict[str, Any] = {"driver": "qcow2", "node-name": name, "file": file, "cache": cache,
                                     "read-only": read_only, "discard": self.discard, "backing": backing,
                                     **self.extra}
        return arguments


def node_name(path: str) -> str:
    """The daemon's node name of an image file: one name per file, so chains shared by vDisks share nodes.

    QEMU wants a letter first, ``[A-Za-z0-9._-]`` and at most 31 characters (fact sheet §4.4).
    """
    return "i" + hashlib.blake2b(os.path.abspath(path).encode(), digest_size=14).hexdigest()


def export_id(vdisk_guid: str) -> str:
    return f"nbd-{vdisk_guid}"


def new_top(vdisk: VDisk) -> str:
    """A fresh file name for a new top of this vDisk, next to its current one."""
    directory = os.path.dirname(vdisk.image)
    return os.path.join(directory, f"{vdisk.guid}.{uuid.uuid4().hex[:12]}.qcow2")

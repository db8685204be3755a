"""An external Valkey server on TCP, and a plain-socket client for it that shares no code with ovsd's."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from devnode.host import can_connect, wait_for


def raw_store_command(address: str | tuple[str, int], *args: str) -> Any:
    """Send one command to a Valkey server over a plain socket (the caller's own client, not ovsd's)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        s.sendall(payload.encode())
        data = s.recv(65536)
    if data.startswith(b"$-1"):
        return None
    if data.startswith(b"$"):
        return data.split(b"\r\n")[1].decode()
    return data.split(b"\r\n")[0][1:].decode()


def valkey_server(
    port: int, directory: Path, *extra: str, bind: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """An external Valkey server on TCP, started by the caller (the store a cluster may use)."""
    from ovsd.store.embedded import find_server_binary

    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [find_server_binary(), "--port", str(port), "--bind", bind, "--dir", str(directory),
         "--appendonly", "yes", "--save", "", "--daemonize", "no", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if not wait_for(lambda: can_connect(port, bind), 10):
        proc.kill()
        raise AssertionError("valkey did not start")
    return proc

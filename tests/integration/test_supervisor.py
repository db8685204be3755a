"""A storagedriver process dies with the daemon that supervises it, even when the daemon is SIGKILLed."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import REPO, children_of, processes_with, wait_for

# a minimal daemon: a DriverSupervisor on the real reactor running one StorageDriver of the generic launcher
DAEMON = textwrap.dedent("""
    import sys
    from twisted.internet import reactor
    from ovsd.agent.launcher import Launchers
    from ovsd.agent.supervisor import DriverSupervisor
    from ovsd.config import StoragedriverConfig

    config = StoragedriverConfig(command=("sleep", sys.argv[1]), stop_grace=5.0, max_restarts=5)
    supervisor = DriverSupervisor(reactor, config)
    supervisor.startService()
    spec = Launchers(config).launch_spec({"guid": "sd1", "name": "sd1"}, {"name": "pool", "type": "LOCAL"})
    supervisor.ensure("sd1", spec)
    reactor.run()
""")


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@pytest.mark.parametrize("when", ["running", "starting"])
def test_a_sigkilled_daemon_leaves_no_storagedriver_behind(when: str) -> None:
    duration = str(random.randrange(10**8, 10**9))
    marker = f"sleep {duration}"
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, duration], cwd=REPO)
    try:
        if when == "running":
            driver = wait_for(lambda: [p for p in processes_with(marker) if _command_line(p) == marker], 10)
            assert driver, "the supervised storagedriver did not start"
            assert driver[0] in children_of(daemon.pid)
        else:
            # the guard's interpreter is still starting: it must notice its parent is gone, not exec the driver
            assert wait_for(lambda: processes_with(marker), 10, interval=0.002)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        assert wait_for(lambda: not processes_with(marker), 2), processes_with(marker)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)

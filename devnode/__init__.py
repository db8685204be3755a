"""Real nodes and stores on this machine, for the tests and the benchmarks alike.

Neither a test nor a benchmark (and not shipped: setup.py packages only ``ovsd``): a ``twistd -n ovsd``
subprocess as a user or systemd runs it, the configuration it reads, an external Valkey server and a
plain-socket client for it, free ports and bounded waits. ``tests/`` and ``bench/`` both import it from
the repository root, so a benchmark never depends on the test suite.
"""

from devnode.config import ADMIN_PASSWORD, node_sections, toml_value, write_config
from devnode.host import can_connect, free_port, wait_for
from devnode.twistd import BIN, TwistdNode
from devnode.valkey import raw_store_command, valkey_server

__all__ = [
    "ADMIN_PASSWORD",
    "BIN",
    "TwistdNode",
    "can_connect",
    "free_port",
    "node_sections",
    "raw_store_command",
    "toml_value",
    "valkey_server",
    "wait_for",
    "write_config",
]

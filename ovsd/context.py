"""What one node's services share: its configuration, the store, the clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovsd.config import Config
from ovsd.store.connection import Store


@dataclass
class NodeContext:
    """The collaborators of this node, handed to every service and to the API (no module globals)."""

    config: Config
    store: Store
    reactor: Any  # the reactor (or a Clock in unit tests that only need time)

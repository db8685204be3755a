"""The work of each domain: what views and tasks call; task functions live here."""

from __future__ import annotations

import importlib
import pkgutil


def load_controllers() -> None:
    """Import every controller module, so their ``@task`` functions are registered."""
    for info in pkgutil.iter_modules(__path__, __name__ + "."):
        importlib.import_module(info.name)

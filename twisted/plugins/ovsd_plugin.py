"""The twistd plugin: ``twistd -n ovsd -c etc/ovsd.toml``. Options and makeService only."""

from __future__ import annotations

import gc
import sys
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    optParameters = [["config", "c", None, "configuration file (TOML); OVSD_* variables override it"]]

    def postOptions(self) -> None:
        from ovsd.config import ConfigError, load

        try:
            self["parsed"] = load(self["config"])
        except ConfigError as e:
            # one line naming the key, exit 2: systemd and scripts see a configuration error at once
            sys.stderr.write(f"ovsd: {e}\n")
            raise SystemExit(2) from None


@implementer(IServiceMaker, IPlugin)
class OvsdServiceMaker:
    tapname = "ovsd"
    description = "Open vStorage-style StorageRouter node agent (REST API, store, tasks, agent)"
    options = Options

    def makeService(self, options: Options) -> Any:
        from ovsd.service import makeService

        service = makeService(options["parsed"])
        # Everything imported and built so far lives as long as the daemon: out of the collector's way, its
        # full passes no longer walk those hundreds of thousands of objects while requests are served
        # (measured: about 8% of the CPU of an object fetch). Only the daemon's process does this.
        gc.collect()
        gc.freeze()
        # A full pass walks every connection's objects: with 10,000 GUIs connected it stalls the reactor for
        # 0.1-0.35 s, and with the default threshold it ran every 2 s while they re-armed their long-polls,
        # finding nothing to free. Ten times fewer full passes; the young generations are collected as usual.
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, 100)
        return service


serviceMaker = OvsdServiceMaker()

"""Log output beyond twistd's own: the configured level, quieter libraries, the optional JSON file."""

from __future__ import annotations

from typing import IO, Any

from twisted.application.service import Service
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
    jsonFileLogObserver,
)

# libraries that log routine events at info: reconnect attempts of every pooled store connection
_QUIET_NAMESPACES = ("twisted.application._client_service",)


def level_predicate(level: str) -> LogLevelFilterPredicate:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    for namespace in _QUIET_NAMESPACES:
        predicate.setLogLevelForNamespace(namespace, LogLevel.warn)
    return predicate


class LogService(Service):
    """Applies the configured level to twistd's observers and adds a JSON-lines file if asked."""

    name = "log"

    def __init__(self, level: str, json_file: str = "") -> None:
        self.level = level
        self.json_file = json_file
        self._file: IO[str] | None = None
        self._added: list[ILogObserver] = []
        self._wrapped: list[tuple[ILogObserver, ILogObserver]] = []

    def startService(self) -> None:
        super().startService()
        predicate = level_predicate(self.level)
        # twistd has already begun logging to its own observers; wrap them in our level filter
        for observer in list(getattr(globalLogPublisher, "_observers", [])):
            filtered = FilteringLogObserver(observer, [predicate])
            globalLogPublisher.removeObserver(observer)
            globalLogPublisher.addObserver(filtered)
            self._wrapped.append((observer, filtered))
        if self.json_file:
            self._file = open(self.json_file, "a", encoding="utf-8")
            observer = FilteringLogObserver(jsonFileLogObserver(self._file), [predicate])
            globalLogPublisher.addObserver(observer)
            self._added.append(observer)

    def stopService(self) -> Any:
        super().stopService()
        for observer in self._added:
            globalLogPublisher.removeObserver(observer)
        for original, filtered in self._wrapped:
            globalLogPublisher.removeObserver(filtered)
            globalLogPublisher.addObserver(original)
        self._added, self._wrapped = [], []
        if self._file is not None:
            self._file.close()

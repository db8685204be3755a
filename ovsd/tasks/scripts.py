"""The Lua scripts that change task state: each change of a record, its indexes, its queue entry and the
completion notice happens in one atomic step, so a daemon dying mid-change never leaves them disagreeing.
Their sources (with what each takes and returns) are ``ovsd/store/lua/task_*.lua``."""

from __future__ import annotations

from ovsd.store.scripts import load_lua

ENQUEUE = load_lua("task_enqueue")
START = load_lua("task_start")
PROGRESS = load_lua("task_progress")
FINISH = load_lua("task_finish")
REVOKE = load_lua("task_revoke")
TOUCH = load_lua("task_touch")

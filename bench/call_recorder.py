"""Which functions a Telltale worker runs between two signals: the worker's half of
``bench/event_path.py``, which copies this file into a folder of its own as
``sitecustomize.py`` and puts that folder on the worker's ``PYTHONPATH``.

Nothing happens unless ``EVENT_PATH_CALLS`` is set, to a path prefix. Then the recorder
writes ``<prefix>.<pid>.ready`` at start-up; :data:`START` opens a recording window and
:data:`STOP` closes it and writes ``<prefix>.<pid>.<n>.json`` (n = 0, 1, ...): every code
object that got a profiler ``call`` event during the window (coroutine and generator
resumptions included), in any thread, with the window's length in seconds.

The main thread's profiler is installed only while a window is open (from the signal
handler, which Python always runs in the main thread), so the worker runs at full speed
the rest of the time; the other threads get a profiler at start-up that records only
while a window is open.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from types import CodeType, FrameType
from typing import Any

#: Path prefix of the files the recorder writes; the recorder is off when it is unset.
ENVIRONMENT_VARIABLE = "EVENT_PATH_CALLS"
#: Opens a recording window.
START = signal.SIGRTMIN + 1
#: Closes the window and writes its file.
STOP = signal.SIGRTMIN + 2


def ready_path(prefix: str, pid: int) -> str:
    """Written by the recorder of process ``pid`` once its signal handlers are in place."""
    return f"{prefix}.{pid}.ready"


def window_path(prefix: str, pid: int, window: int) -> str:
    """The calls of window ``window`` (0, 1, ...) of process ``pid``."""
    return f"{prefix}.{pid}.{window}.json"


def install(prefix: str) -> None:
    """Set the signal handlers and the other threads' profiler; write the ready file."""
    codes: set[CodeType] = set()
    state: dict[str, Any] = {"open": False, "window": 0, "since": 0.0}

    def record(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            codes.add(frame.f_code)

    def record_in_thread(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and state["open"]:
            codes.add(frame.f_code)

    def start(signum: int, frame: FrameType | None) -> None:
        codes.clear()
        state["open"] = True
        state["since"] = time.monotonic()
        sys.setprofile(record)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.setprofile(None)
        state["open"] = False
        seconds = time.monotonic() - state["since"]
        calls = sorted({(c.co_filename, c.co_qualname, c.co_name, c.co_firstlineno)
                        for c in list(codes)})
        codes.clear()
        path = window_path(prefix, os.getpid(), state["window"])
        state["window"] += 1
        # Written whole, then renamed: the bench never reads half a file.
        with open(path + ".tmp", "w") as out:
            json.dump({"seconds": seconds, "calls": calls}, out)
        os.replace(path + ".tmp", path)

    threading.setprofile(record_in_thread)
    signal.signal(START, start)
    signal.signal(STOP, stop)
    with open(ready_path(prefix, os.getpid()), "w") as out:
        out.write(str(os.getpid()))


if os.environ.get(ENVIRONMENT_VARIABLE):
    install(os.environ[ENVIRONMENT_VARIABLE])

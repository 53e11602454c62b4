"""``inventory serve --role query --workers N``: one address served by N processes of a role.

Python runs one thread of the application at a time, so a process uses one core; the query role
keeps no state another process needs (it reads the shared read model and follows the change
feed by itself), so N processes of it serve N times the reads. Each worker has its own listening
socket on the same address (SO_REUSEPORT): the kernel spreads new connections over them, and a
worker that dies takes only its own queue along.

The supervisor forks the workers before anything else starts (no event loop, thread or
connection is copied), starts a worker again when one dies, and on SIGTERM or SIGINT stops
them all and waits for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

# A worker that died is started again after this long (a crash loop must not spin).
RESTART_DELAY_SECONDS = 1.0


def supervise(count: int, serve_one: Callable[[int], None]) -> int:
    """Run ``serve_one(worker_number)`` in ``count`` forked processes until told to stop."""
    children: dict[int, int] = {}
    stopping = False

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                serve_one(number)
            except BaseException:  # the worker's end, whatever it is, is reported here
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = number

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in range(count):
        start(number)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        number_or_none = children.pop(pid, None)
        if number_or_none is None or stopping:
            continue
        log.warning("worker %d (pid %d) ended with status %d; starting it again", number_or_none, pid, status)
        print(f"inventory: worker {number_or_none} ended; starting it again", file=sys.stderr, flush=True)
        time.sleep(RESTART_DELAY_SECONDS)
        if not stopping:
            start(number_or_none)
    return 0

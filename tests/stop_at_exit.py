"""Stop the namespaced test clusters (:mod:`ns_cluster`, :mod:`slurm_cluster`) when their process ends.

A cluster that :func:`register` was given is stopped (its ``stop()``) at interpreter exit and on SIGTERM
or SIGINT, after which the signal has its usual effect; its ``stop()`` calls :func:`unregister`.
"""

from __future__ import annotations

import atexit
import os
import signal

_LIVE: list = []  # clusters to stop at exit or on a signal
_HANDLERS = {"installed": False}


def register(cluster) -> None:
    """Stop ``cluster`` at exit and on SIGTERM/SIGINT (handlers installed on the first call)."""
    _install_handlers()
    _LIVE.append(cluster)


def unregister(cluster) -> None:
    if cluster in _LIVE:
        _LIVE.remove(cluster)


def stop_all() -> None:
    for c in list(_LIVE):
        c.stop()


def _install_handlers() -> None:
    if _HANDLERS["installed"]:
        return
    _HANDLERS["installed"] = True
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            stop_all()
            if callable(previous):
                previous(signum, frame)
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)

"""The header lines every benchmark prints: CPU model and how busy the machine was."""

from __future__ import annotations

import os

from ohgw.studies.tables import cpu_model

__all__ = ["cpu_model", "load_line"]


def load_line(when: str) -> str:
    """The 1- and 5-minute load averages, and whether other processes competed for the CPUs."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return f"load average {when}: unavailable"
    n = os.cpu_count() or 1
    shared = "other processes were competing for the CPUs" if one > n * 0.75 else "machine mostly idle"
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min) on {n} CPUs: {shared}"

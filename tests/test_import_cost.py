"""The processes the harness starts again and again import only what they use.

A study's planner (the CLI), its runner and every study task (a Ray task that unpickles
:func:`ohgw.studies.study.run_study`) never compute a hyper-gradient, so importing them must not
import torch (~3 s of CPU per process on 2 cores), nor scipy's statistics (the runner needs them
only for a sequential study). Each check runs in a fresh interpreter: this process has long
imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys

# torch-free at import: what the harness' driver and its study tasks load, and what they load the settings from
TORCH_FREE = ("ohgw.studies.cli", "ohgw.studies.runner", "ohgw.studies.study", "ohgw.studies.methods",
              "ohgw.warmstart_settings", "ohgw.warmstart", "ohgw.cost", "ohgw.tune")
HEAVY = ("torch", "scipy.stats", "sklearn")


def _loaded_after(code: str) -> dict:
    """Which of :data:`HEAVY` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_harness_modules_import_neither_torch_nor_scipy_stats():
    loaded = _loaded_after("\n".join(f"import {m}" for m in TORCH_FREE))
    assert loaded == {"torch": False, "scipy.stats": False, "sklearn": False}


def test_the_settings_re_exported_by_warmstart_are_the_torch_free_ones():
    import ohgw
    from ohgw import warmstart, warmstart_settings

    for name in warmstart_settings.__all__:
        assert getattr(warmstart, name) is getattr(warmstart_settings, name), name
    assert ohgw.WarmStartSettings is warmstart_settings.WarmStartSettings

"""The bad-input matrix of issue 20: in every entry point, CUDA asked for on a machine without it, and a
``deterministic`` value that is not a boolean, are one line of output and exit status 2, with nothing written.

Every script in ``experiments/``, every family CLI (``python -m trainables.<family>...``) and every benchmark
with a ``--device`` flag is run in this process (``runpy``, as ``python`` runs it; argument checks only: each
refuses before any training or Ray), with CUDA made unavailable (``torch.cuda.is_available`` is False, as on
this machine). :data:`ENTRY_POINTS` must name every such file: a new one fails
:func:`test_the_matrix_covers_every_entry_point` until it is added. An entry point that takes neither
setting is listed in :data:`NO_DEVICE_INPUT` with the reason, and its ``--help`` must not offer either.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STUDY_CLI = (["--device", "cuda"], ["--deterministic", "maybe"])  # ohgw.studies.cli
# entry point (a path, or -m module) → (argv asking for CUDA, argv with a non-boolean deterministic or None)
ENTRY_POINTS: dict[str, tuple[list[str], list[str] | None]] = {
    "experiments/asha_vs_ohgw.py": STUDY_CLI,
    "experiments/dyhpo_vs_ohgw.py": STUDY_CLI,
    "experiments/hyperband_vs_ohgw.py": STUDY_CLI,
    "experiments/lcbench_vs_ohgw.py": STUDY_CLI,
    "experiments/linear_byol_ohgw.py": STUDY_CLI,
    "experiments/pasha_vs_ohgw.py": STUDY_CLI,
    "experiments/ssl_asha_vs_ohgw.py": STUDY_CLI,
    "experiments/jepa_noise_sweep.py": (["--values", "device=cuda"], ["--values", "deterministic=maybe"]),
    "-m trainables.jepa.train": (["--values", "device=cuda"], ["--values", "deterministic=maybe"]),
    "-m trainables.ssl.train": (["--device", "cuda"], ["--deterministic", "maybe"]),
    "-m trainables.linear_byol": (["train", "--device", "cuda"], ["train", "--deterministic", "maybe"]),
    # benchmarks: the device is asked for; determinism is each benchmark's own measured setting
    "benchmarks/gpu_check.py": (["--device", "cuda"], None),
    "benchmarks/linear_byol_speed.py": (["--device", "cuda"], None),
    "benchmarks/trainable_throughput.py": (["--device", "cuda"], None),
    "benchmarks/warmstart_cost.py": (["--device", "cuda"], None),
}
# the one line's words where they are not "CUDA is not available"
CUDA_REFUSAL = {"experiments/jepa_noise_sweep.py": "device=cuda: this sweep trains every trial on the CPU"}
NO_DEVICE_INPUT = {
    "experiments/analyze.py": "reads a results directory's Parquet files; trains nothing",
    "experiments/tw_byol_ablation.py": "the SSL family's cpu preset, always on the CPU",
}


def _files() -> set[str]:
    """Every experiment script, family CLI and benchmark with a --device flag, as ENTRY_POINTS names them."""
    found = {f"experiments/{p.name}" for p in (ROOT / "experiments").glob("*.py")}
    found |= {f"-m trainables.{p.parent.name}" for p in ROOT.glob("trainables/*/__main__.py")}
    found |= {f"-m trainables.{p.parent.name}.train" for p in ROOT.glob("trainables/*/train.py")}
    found |= {f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py") if "--device" in p.read_text()}
    return found


def _run(entry: str, argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stdout + stderr) of ``python <entry> <argv>``, run in this process."""
    old = sys.argv
    try:
        if entry.startswith("-m "):
            sys.argv = [entry[3:], *argv]
            runpy.run_module(entry[3:], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [str(ROOT / entry), *argv]
            runpy.run_path(str(ROOT / entry), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def no_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("OHGW_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # default output folders are relative: nothing may appear here
    with contextlib.suppress(ImportError):
        import ray  # noqa: F401  (imported once here, so the first study script's import is not in its error path)
    return work


def test_the_matrix_covers_every_entry_point():
    assert _files() == set(ENTRY_POINTS) | set(NO_DEVICE_INPUT)


@pytest.mark.parametrize("entry", sorted(NO_DEVICE_INPUT))
def test_an_entry_point_without_device_input_offers_neither_setting(entry, no_cuda, capsys):
    code, text = _run(entry, ["--help"], capsys)
    assert code == 0 and "--device" not in text and "deterministic" not in text


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_cuda_without_cuda_is_one_line_and_exit_status_2(entry, no_cuda, capsys):
    code, text = _run(entry, ENTRY_POINTS[entry][0], capsys)
    lines = text.strip().splitlines()
    needle = CUDA_REFUSAL.get(entry, "CUDA is not available")
    assert code == 2 and len(lines) == 1 and needle in lines[0], (code, text[-1500:])
    assert list(no_cuda.iterdir()) == []


@pytest.mark.parametrize("entry", sorted(e for e, (_, det) in ENTRY_POINTS.items() if det))
def test_a_non_boolean_deterministic_is_one_line_and_exit_status_2(entry, no_cuda, capsys):
    code, text = _run(entry, ENTRY_POINTS[entry][1], capsys)
    lines = text.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "deterministic" in lines[0] and "maybe" in lines[0], (code, text[-1500:])
    assert list(no_cuda.iterdir()) == []

"""The benchmarks' published figures rerun to the same numbers, and every benchmark names its command and versions.

Issue 22, §6. ``benchmarks/README.md`` publishes the output of deterministic commands as ``$ python
benchmarks/...`` blocks; the small ones are rerun here in this process and every printed figure is compared
with the page, except timing columns (``sched ms/epoch``). The 10-seed block is published, not rerun (it takes
many minutes).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PAGE = BENCH / "README.md"
TINY = "--seeds 1 --budget 12 --max-t 4 --refit-every 5"
QUICK = "--seeds 2 --budget 54 --refit-every 5"
METHODS = ("random", "asha", "pasha", "dyhpo")


def _published(script: str) -> dict[str, list[str]]:
    """Each ``$ python benchmarks/<script> ARGS`` block of the page: ARGS -> its lines."""
    blocks, current = {}, None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"$ python benchmarks/{script} "):
            current = blocks.setdefault(line.split(script, 1)[1].strip(), [])
        elif line.startswith("```"):
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _rows(lines: list[str], drop_last: bool) -> dict[str, list[str]]:
    out = {}
    for line in lines:
        words = line.split()
        if words and words[0] in METHODS:
            out[words[0]] = words[1:-1] if drop_last else words[1:]
    return out


def _rerun(args: str, capsys) -> list[str]:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("lcbench_schedulers", BENCH / "lcbench_schedulers.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.main(shlex.split(args)) == 0
    finally:
        sys.path.remove(str(BENCH))
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("args", [TINY, pytest.param(QUICK, marks=pytest.mark.slow)])
def test_lcbench_schedulers_reruns_to_the_published_regrets(args, capsys):
    published = _published("lcbench_schedulers.py")
    assert {TINY, QUICK, "--seeds 10 --budget 108"} <= set(published)
    out = _rerun(args, capsys)
    # the output starts with the exact command and the versions it ran with
    assert out[0] == f"# command: python benchmarks/lcbench_schedulers.py {args}"
    assert re.match(r"# versions: python \d+\.\d+\.\d+, ohgw-tune \S+, ray \d", out[1]), out[1]
    header = next(line for line in out if line.split()[:1] == ["method"])
    assert header.split()[:-2] == published[args][0].split()  # the same columns, timing column left out
    printed, page = _rows(out, drop_last=True), _rows(published[args], drop_last=False)
    assert set(page) == set(METHODS) and printed == page


def test_every_benchmark_prints_its_command_and_versions_first():
    """Each benchmark's main prints ``run_header`` before any other output line."""
    for path in sorted(BENCH.glob("*.py")):
        if path.name.startswith("_"):
            continue
        src = path.read_text(encoding="utf-8")
        main = next(f for f in ast.parse(src).body if isinstance(f, ast.FunctionDef) and f.name == "main")
        calls = sorted((c for c in ast.walk(main) if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "print"
                        and not any(k.arg == "file" for k in c.keywords)), key=lambda c: (c.lineno, c.col_offset))
        # left out: bad-input lines, and warmstart_cost's subprocess mode (it prints JSON only)
        calls = [c for c in calls if "error" not in ast.unparse(c) and "json.dumps" not in ast.unparse(c)]
        first = ast.unparse(calls[0])
        # _machine.run_header, or a header of the script's own in the same form (gpu_check.py: it runs without Ray)
        own = "# command: " in src and "# versions: " in src and "head = header(" in src
        assert first.startswith("print(run_header(__file__") or (own and first.startswith("print(head")), \
            f"{path.name}: prints {first!r} before its command and versions"

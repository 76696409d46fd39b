"""The plain facts of the layout: imports go one way, the protocol's keys live in one module, the scaffold is small.

These read the source (AST), so they fail the moment a change breaks the house, not when a
newcomer gets lost in it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ohgw import protocol

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ohgw", "trainables")


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def _imported_modules(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant, f-string pieces included, but not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_ohgw_never_imports_trainables():
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in _sources("ohgw")
                 for m in _imported_modules(_tree(p)) if m == "trainables" or m.startswith("trainables.")]
    assert offenders == []


def test_the_method_core_imports_no_tune_plugin_harness_or_analysis():
    core = [ROOT / "ohgw" / f"{m}.py" for m in ("space", "hypergrad", "update_rules", "warmstart", "cost", "protocol")]
    upper = ("ohgw.tune", "ohgw.pasha", "ohgw.studies", "ohgw.analysis", "ohgw.testing", "ohgw.results")
    offenders = [f"{p.name} imports {m}" for p in core for m in _imported_modules(_tree(p))
                 if any(m == u or m.startswith(u + ".") for u in upper)]
    assert offenders == []


def test_analysis_reads_only_the_results_module():
    allowed = ("ohgw.results", "ohgw.analysis")
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in _sources("ohgw/analysis")
                 for m in _imported_modules(_tree(p)) if m.startswith("ohgw") and not m.startswith(allowed)]
    assert offenders == []


# keys no module but ohgw/protocol.py may spell (unambiguous: they mean nothing else in the code base)
PROTOCOL_ONLY = (protocol.ORIGINAL_KEY, protocol.GRADIENT_KEY)
PROTOCOL_PREFIXES = (protocol.WS_PREFIX, protocol.HP_PREFIX)
# contract keys a trainable must take from the protocol module (the harness' Parquet columns share
# some of these names: the results schema may spell its own columns)
CONTRACT = (protocol.TRIAL_COMPUTE_S, protocol.TRIAL_EPOCH_EQUIV, protocol.WS_COMPUTE_S, protocol.TRIAL_INDEX_KEY)


def test_no_protocol_key_is_spelled_outside_the_protocol_module():
    offenders = []
    for path in _sources(*PACKAGES):
        if path == ROOT / "ohgw" / "protocol.py":
            continue
        rel = path.relative_to(ROOT)
        for line, s in _strings(_tree(path)):
            if s in PROTOCOL_ONLY or s.startswith(PROTOCOL_PREFIXES) or str(rel).startswith(("trainables", "ohgw/tune")) and s in CONTRACT:
                offenders.append(f"{rel}:{line} {s!r}")
    assert offenders == []


def test_the_instruction_key_is_only_read_and_written_through_the_protocol():
    """``config["ohgw"]`` (and ``.get("ohgw")``, ``"ohgw" in config``) appear nowhere but in the protocol."""
    key = protocol.INSTRUCTION_KEY
    offenders = []
    for path in _sources(*PACKAGES):
        if path == ROOT / "ohgw" / "protocol.py":
            continue
        for node in ast.walk(_tree(path)):
            hit = (
                (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == key)
                or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "pop", "setdefault") and node.args
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value == key)
                or (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and node.left.value == key)
            )
            if hit:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_x_prime_is_parsed_in_one_place():
    users = [p.relative_to(ROOT) for p in _sources(*PACKAGES)
             if p.name != "protocol.py" and "X_PRIME_PREFIX" in p.read_text()]
    assert users == []


# every trainable family (a subpackage of trainables/) is found, not listed: a new one is checked too
FAMILIES = sorted(p.parent.name for p in (ROOT / "trainables").glob("*/__init__.py"))


def test_the_known_families_are_found():
    assert {"classification", "lcbench", "linear_byol", "jepa", "ssl"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_families_use_the_shared_scaffold_and_the_scaffold_is_small(family):
    scaffold = ROOT / "trainables" / "scaffold.py"
    assert len(scaffold.read_text().splitlines()) <= 250
    uses = [p for p in (ROOT / "trainables" / family).rglob("*.py")
            if any(m == "trainables.scaffold" for m in _imported_modules(_tree(p)))]
    assert uses, f"trainables/{family} does not use trainables.scaffold"


def _family_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "trainables" and parts[1] in FAMILIES else None


@pytest.mark.parametrize("family", FAMILIES)
def test_no_family_imports_another(family):
    # what two families share lives beside the scaffold (trainables/nets.py, trainables/augment.py, …)
    crossing = []
    for path in sorted((ROOT / "trainables" / family).rglob("*.py")):
        tree = _tree(path)
        modules = set(_imported_modules(tree))
        for node in ast.walk(tree):  # `from trainables import ssl` names the family in the alias
            if isinstance(node, ast.ImportFrom) and node.module == "trainables" and node.level == 0:
                modules |= {f"trainables.{a.name}" for a in node.names}
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:  # from ..other import x
                modules.add(f"trainables.{node.module}")
        crossing += [f"{path.relative_to(ROOT)}: {m}" for m in sorted(modules)
                     if _family_of(m) not in (None, family)]
    assert not crossing, crossing

"""Where the deployment linters are (installed by scripts/ensure_lint_tools.sh); a missing one fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENSURE = "bash scripts/ensure_lint_tools.sh"


def tool(name: str) -> str:
    """The path of ``name``: beside this Python (hadolint), in the tools venv (docker-compose), or on PATH."""
    candidates = [Path(sys.executable).parent / name,
                  Path(os.environ.get("OHGW_TOOLS_DIR", ROOT / ".venv" / "tools")) / "compose" / "bin" / name]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is missing: run `{ENSURE}`")
    return found


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=kw.pop("cwd", ROOT), **kw)

"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

>>> import pathlib, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     p = pathlib.Path(d) / "note.txt"
...     atomic_write(p, lambda tmp: pathlib.Path(tmp).write_text("done"))
...     p.read_text(), sorted(x.name for x in pathlib.Path(d).iterdir())
('done', ['note.txt'])
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then move it onto ``path`` (``os.replace``).

    The temporary name ends with ``path``'s own suffix, so writers that infer a format from the name
    (PIL, pandas) work. The folder is created when missing. Whatever ``write`` raises, the temporary
    file is removed and ``path`` is left as it was. The file gets mode 0644 (``mkstemp`` makes 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""What a person sees: a progress bar and a line per study; Ray's and Tune's output in a log file.

One subprocess runs two tiny experiments through :func:`ohgw.studies.cli.main` (the curve
trainable): the default, then ``--verbose --keep-tune-dirs``. The default prints a few lines
(no carriage-return redraws: the output is a pipe) and no Tune trial table, names its log file
(non-empty, holding Tune's tables) and removes the study's Tune directory; ``--verbose`` prints
Tune's tables too, and ``--keep-tune-dirs`` keeps the directory.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ohgw.studies.runner import StudyProgress

HERE = Path(__file__).parent
MARK = "=== second run ==="
TABLE = re.compile(r"Trial status|Trial name|╭|│")

DRIVER = textwrap.dedent(f"""
    import sys

    from ohgw.space import SearchSpace
    from ohgw.studies.cli import main
    from ohgw.studies.workload import Workload

    from harness_trainables import curve_trainable

    PRESETS = {{"tiny": {{"base_config": {{"epoch_s": 0.01}}, "max_t": 2, "seeds": 1, "budget": 3.0, "tau": 0.5,
                         "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1}}}}

    if __name__ == "__main__":
        w = Workload("curve", trainable=curve_trainable, presets=PRESETS,
                     space=SearchSpace.from_bounds({{"lr": (1e-3, 1.0, "log10")}}))
        common = ["--num-cpus", "2", "--no-report", "--methods", "asha"]
        rc = main("tiny", w, ["asha"], "doc", ["--out", sys.argv[1], *common])
        print({MARK!r}, flush=True)
        rc2 = main("tiny", w, ["asha"], "doc", ["--out", sys.argv[2], "--verbose", "--keep-tune-dirs", *common])
        sys.exit(rc or rc2)
""")


def _lines(text: str) -> list[str]:
    """Console lines as a log viewer shows them: a carriage return starts a line too."""
    return [ln for ln in re.split(r"\r\n|\r|\n", text) if ln.strip()]


def _log_path(text: str) -> Path:
    m = re.search(r"^Ray/Tune log: (.+)$", text, re.M)
    assert m, text
    return Path(m.group(1).strip())


@pytest.mark.ray
def test_default_console_is_short_log_file_has_it_all_verbose_shows_tables(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    quiet_out, verbose_out = tmp_path / "default", tmp_path / "verbose"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(script), str(quiet_out), str(verbose_out)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    default, _, verbose = proc.stdout.partition(MARK)
    assert verbose, proc.stdout[-3000:]

    lines = _lines(default)
    assert len(lines) <= 20, default  # the main job's bound is 80; one study here
    assert not TABLE.search(default), default
    assert re.search(r"^\[1/1, [\d:]+ elapsed, ETA 00:00\] asha/seed=0: best val_acc [\d.]+, \d+ trials, [\d.]+ "
                     r"epoch-eq, \d+ s$", default, re.M), default
    assert "1/1" in lines[-2] and "studies: 1 run, 0 resumed, 0 failed" in lines[-1]
    log = _log_path(default)
    assert log.parent == quiet_out / "logs" and log.stat().st_size > 0
    assert TABLE.search(log.read_text(encoding="utf-8")), "Tune's tables belong in the log file"
    assert (quiet_out / "studies").is_dir() and not (quiet_out / "_tune").exists()  # removed after the export

    assert TABLE.search(verbose), verbose  # --verbose: Tune's trial tables on the console
    assert len(_lines(verbose)) > len(lines)
    assert _log_path(verbose).stat().st_size > 0
    kept = list((verbose_out / "_tune").glob("study-*"))
    assert len(kept) == 1 and any(kept[0].iterdir())


def test_progress_on_a_pipe_is_one_line_per_study():
    stream = io.StringIO()
    p = StudyProgress(total=40, already=2, stream=stream, note="up to 2 at a time")
    for i in range(38):
        p.step(f"study {i} done")
    p.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 38 + 2, text  # the bar at the start and at the end, whole lines
    assert lines[0].startswith("studies") and "2/40" in lines[0] and "up to 2 at a time" in lines[0]
    assert lines[-1].startswith("studies") and "40/40" in lines[-1]
    assert re.fullmatch(r"\[3/40, [\d:]+ elapsed, ETA [\d:?]+\] study 0 done", lines[1]), lines[1]

"""The HTML report renders in headless Chromium: every figure has data, no JS error, a non-blank screenshot;
every figure is written as PDF and PNG (kaleido driving the same Chromium) at its size.

Needs Debian's chromium (``scripts/ensure_chromium.sh`` installs it, or fails loudly when it cannot).
These tests never skip: without chromium they fail, locally and in CI alike, saying to run that script.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import plotly.graph_objects as go
import pytest

from ohgw.analysis import AnalysisWarning, analyze
from ohgw.analysis.report import PNG_SCALE, STATIC_FORMATS, export_static, figures, static_size
from ohgw.testing.synthetic_results import generate

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    generate(root / "results", n_seeds=3, n_trials=9, max_t=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        s = analyze(root / "results", out_html=root / "out" / "report.html", quiet=True)
    return root, s


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.fail("chromium not found (neither on PATH nor /usr/bin/chromium): run scripts/ensure_chromium.sh "
                    "(as root) to install it", pytrace=False)
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=15000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_every_figure_renders_without_console_errors(report):
    root, s = report
    r = _chromium(root, "--enable-logging=stderr", "--v=0", "--dump-dom", Path(s.html_path).as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", r.stdout)
    assert body, "no <body> in the dumped DOM"
    n = len(figures(s))
    assert f'data-figures-ok="{n}/{n}"' in body.group(1), body.group(1)
    assert 'data-js-errors=""' in body.group(1), body.group(1)
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    assert not [ln for ln in console if re.search(r"error|uncaught|plotly", ln, re.I)], console
    for name in figures(s):
        div = re.search(rf'<div id="fig-{name}"[^>]*class="[^"]*js-plotly-plot[^"]*"', r.stdout)
        assert div, f"figure {name} was not rendered by plotly"
    assert r.stdout.count('class="main-svg"') >= n


def test_screenshot_is_not_blank(report):
    from PIL import Image

    root, s = report
    png = root / "shot.png"
    r = _chromium(root, "--window-size=1000,1600", f"--screenshot={png}", Path(s.html_path).as_uri())
    assert r.returncode == 0 and png.exists(), r.stderr[-2000:]
    img = Image.open(png).convert("RGB")
    assert img.size == (1000, 1600)
    small = img.resize((250, 400))
    pixels = list(small.getdata())
    non_white = sum(1 for p in pixels if min(p) < 235) / len(pixels)
    assert non_white > 0.05, f"screenshot is almost blank ({non_white:.1%} non-white pixels)"
    assert len(set(pixels)) > 50


def test_ensure_chromium_fails_loudly_when_it_cannot_install(tmp_path):
    script = ROOT / "scripts" / "ensure_chromium.sh"
    # no chromium at CHROMIUM_BIN and no apt-get on PATH: as root or not, it cannot install
    env = {**os.environ, "PATH": str(tmp_path), "CHROMIUM_BIN": str(tmp_path / "chromium")}
    r = subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ensure_chromium: error: "), r.stderr
    assert str(tmp_path / "chromium") in lines[0]
    if CHROMIUM is not None:
        ok = subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "CHROMIUM_BIN": CHROMIUM})
        assert ok.returncode == 0 and ok.stdout.strip() == f"ensure_chromium: {CHROMIUM} present", ok.stderr


def test_every_figure_is_written_as_pdf_and_png_at_its_size(report):
    root, s = report
    fig_dir = root / "out" / "figures"
    figs = figures(s)
    assert sorted(s.static_figures) == sorted(str(fig_dir / f"{n}.{f}") for n in figs for f in STATIC_FORMATS)
    for name in ("ttt", "survival"):
        w, h = static_size(figs[name])
        pdf = (fig_dir / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-")
        assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf)) == 1, "one page"
        boxes = re.findall(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf)
        assert boxes, "no /MediaBox"
        x0, y0, x1, y1 = map(float, boxes[0])
        assert abs((x1 - x0) - 0.75 * w) < 1 and abs((y1 - y0) - 0.75 * h) < 1, (boxes[0], w, h)  # 72 pt / 96 px
        png = (fig_dir / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
        assert struct.unpack(">II", png[16:24]) == (w * PNG_SCALE, h * PNG_SCALE)


def test_static_export_without_a_browser_logs_one_line_and_does_not_raise(tmp_path, monkeypatch, caplog):
    missing = tmp_path / "no-such-chromium"
    monkeypatch.setenv("BROWSER_PATH", str(missing))
    with caplog.at_level(logging.WARNING, logger="ohgw.analysis.report"):
        written = export_static({"one": go.Figure()}, tmp_path / "figures")
    assert written == []
    records = [r for r in caplog.records if r.name == "ohgw.analysis.report"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert "not written" in records[0].getMessage() and str(missing) in records[0].getMessage()


def test_the_browser_driver_s_own_error_records_are_one_line_off_the_console():
    """choreographer logs a garbled message from Chromium's pipe with a 25-line traceback and goes on (seen once in
    `make run`): it becomes one INFO line of the report's logger (a run's log file; analyze's INFO console shows
    that one line), with no traceback. A fresh interpreter: pytest's own log capture is not in the way."""
    import sys

    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='analyze: %(name)s %(levelname)s %(message)s')\n"
        "from ohgw.analysis import report\n"
        "report._quiet_browser_loggers()\n"
        "try:\n"
        "    raise ValueError('Expecting property name enclosed in double quotes')\n"
        "except ValueError:\n"
        "    logging.getLogger('choreographer.channels.pipe').exception('JSONError decoding message. Ignoring')\n"
        "logging.getLogger('kaleido').info('a tab opened')\n"  # below WARNING: dropped
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stderr.splitlines() == [
        "analyze: ohgw.analysis.report INFO choreographer.channels.pipe: JSONError decoding message. Ignoring"]

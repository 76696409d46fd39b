"""The HTML report renders in headless Chromium: every figure has data, no JS error, a non-blank screenshot.

Needs Debian's chromium (``scripts/ensure_chromium.sh`` installs it, or fails loudly when it cannot).
These tests never skip: without chromium they fail, locally and in CI alike, saying to run that script.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from ohgw.analysis import AnalysisWarning, analyze
from ohgw.analysis.report import figures
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

"""Plotly figures and the self-contained HTML report (plotly.js inline: opens offline).

Figures: best-so-far vs time (median line, IQR band per method, one panel per clock); T@tau per
method (box + every study as a point, lines joining the seeds of each method/vanilla pair,
censored studies as open markers at their budget); T@tau profiles over a range of tau; survival
of configs per rung; |g| vs eventual benefit heatmap; x -> x' shift per psi. Every box plot draws
the points themselves instead of a box when a group has fewer than :data:`~.configs.FEW_POINTS`.

The page carries a tiny self-check: after load it sets ``data-figures-ok="k/n"`` on ``<body>``
(k = figure divs that plotly rendered with data) and ``data-js-errors`` (errors caught by
``window.onerror``), so a headless browser's ``--dump-dom`` shows whether every figure rendered.
Every figure is also written for papers as ``figures/<name>.pdf`` and ``figures/<name>.png`` beside the
HTML (:func:`export_static`: plotly's own static export, kaleido 1.x driving the system Chromium, offline;
one browser for all figures). When that cannot run, one log line says why and the HTML report stands.
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .configs import FEW_POINTS
from .load import CLOCKS
from .text import sections

log = logging.getLogger(__name__)

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f"]


def _colors(methods: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def _rgba(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{a})"


def _clock_titles(s) -> list[str]:
    return ["wall seconds", s.compute_unit, "epoch-equivalents"]


def _none(a) -> list:
    return [None if v is None or not np.isfinite(v) else float(v) for v in a]


def fig_best_so_far(s) -> go.Figure:
    col = _colors(s.methods)
    fig = make_subplots(rows=1, cols=3, subplot_titles=_clock_titles(s))
    for k, c in enumerate(CLOCKS, start=1):
        g = s.curves.get(c)
        if not g:
            continue
        for m in s.methods:
            d = g["methods"][m]
            x = g["grid"]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=_none(d["q75"]) + _none(d["q25"])[::-1], fill="toself",
                                     fillcolor=_rgba(col[m], 0.15), line={"width": 0}, hoverinfo="skip",
                                     legendgroup=m, showlegend=False, name=f"{m} IQR"), row=1, col=k)
            fig.add_trace(go.Scatter(x=x, y=_none(d["median"]), mode="lines", line={"color": col[m]}, name=m,
                                     legendgroup=m, showlegend=k == 1), row=1, col=k)
        fig.add_hline(y=s.tau, line={"dash": "dot", "color": "black"}, row=1, col=k)
    fig.update_layout(title=f"Best-so-far {s.metric} vs time (median, IQR band); dotted: tau", height=420)
    return fig


def fig_ttt(s) -> go.Figure:
    col = _colors(s.methods)
    ps = s.per_study
    fig = make_subplots(rows=1, cols=3, subplot_titles=_clock_titles(s))
    for k, c in enumerate(CLOCKS, start=1):
        for m in s.methods:
            d = ps[ps["method"] == m]
            if len(d) >= FEW_POINTS:  # fewer: only the points below, a box of 2 studies would mislead
                fig.add_trace(go.Box(x=[m] * len(d), y=d[f"T_{c}"].tolist(), name=m, marker_color=col[m],
                                     boxpoints=False, legendgroup=m, showlegend=False), row=1, col=k)
            for reached, sym in ((True, "circle"), (False, "circle-open")):
                e = d[d["reached"] == reached]
                if len(e):
                    fig.add_trace(go.Scatter(x=[m] * len(e), y=e[f"T_{c}"].tolist(), mode="markers",
                                             marker={"symbol": sym, "color": col[m], "size": 6},
                                             text=[f"seed {v}" for v in e["seed"]], showlegend=False,
                                             name=f"{m} {'reached' if reached else 'censored'}"), row=1, col=k)
        for m, v in s.partners.items():
            a = ps[ps["method"] == m].set_index("seed")[f"T_{c}"]
            b = ps[ps["method"] == v].set_index("seed")[f"T_{c}"]
            seeds = sorted(set(a.index) & set(b.index))
            xs, ys = [], []
            for sd in seeds:
                xs += [v, m, None]
                ys += [float(b[sd]), float(a[sd]), None]
            if seeds:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "rgba(90,90,90,0.25)", "width": 1},
                                         hoverinfo="skip", showlegend=False, name=f"pairs {m}"), row=1, col=k)
    fig.update_layout(title="T@tau per study (lines join seeds of each pair; open markers: censored at budget)",
                      height=460)
    return fig


def fig_profiles(s) -> go.Figure:
    col = _colors(s.methods)
    fig = make_subplots(rows=1, cols=4, subplot_titles=[*[f"median T ({t})" for t in _clock_titles(s)],
                                                        "fraction reached"])
    taus = s.profiles.get("tau", [])
    for m, d in s.profiles.get("methods", {}).items():
        for k, c in enumerate(CLOCKS, start=1):
            fig.add_trace(go.Scatter(x=taus, y=_none(d[f"median_{c}"]), mode="lines+markers", name=m,
                                     line={"color": col[m]}, legendgroup=m, showlegend=k == 1), row=1, col=k)
        fig.add_trace(go.Scatter(x=taus, y=d["fraction_reached"], mode="lines+markers", name=m,
                                 line={"color": col[m]}, legendgroup=m, showlegend=False), row=1, col=4)
    for k in range(1, 5):
        fig.add_vline(x=s.tau, line={"dash": "dot", "color": "black"}, row=1, col=k)
        fig.update_xaxes(title_text="tau", row=1, col=k)
    fig.update_layout(title="T@tau profiles over tau (gaps: median not reached within budget)", height=400)
    return fig


def fig_survival(s) -> go.Figure:
    col = _colors(s.methods)
    fig = go.Figure()
    for m in s.methods:
        d = s.survival[m]
        fig.add_trace(go.Scatter(x=d["levels"], y=d["share"], mode="lines+markers", name=m, line={"color": col[m]},
                                 text=[f"{c:.2f} trials/study" for c in d["count"]]))
    fig.update_layout(title="Survival of configs per rung (share of a study's trials reaching the rung)",
                      xaxis={"type": "log", "title": "rung (epochs)"}, yaxis={"title": "share", "range": [0, 1.05]},
                      height=400)
    return fig


def fig_gradient_benefit(s) -> go.Figure:
    gb = s.gradient_benefit
    if not gb:
        fig = go.Figure(go.Heatmap(z=[[0.0]], x=["-"], y=["no hyper-gradients recorded"], showscale=False))
        fig.update_layout(title="|g| vs eventual benefit: no method recorded hyper-gradients", height=250)
        return fig
    fig = make_subplots(rows=len(gb), cols=1, subplot_titles=list(gb))
    for i, (_m, g) in enumerate(gb.items(), start=1):
        fig.add_trace(go.Heatmap(z=[_none(r) for r in g["mean_pct"]], x=g["bins"], y=g["psi"], zmin=0, zmax=1,
                                 colorscale="RdBu", colorbar={"title": "mean pct"}, showscale=i == 1,
                                 text=[[f"n={c}" for c in r] for r in g["count"]]), row=i, col=1)
        fig.update_xaxes(title_text="|g| quintile (q1 smallest)", row=i, col=1)
    fig.update_layout(title="Hyper-gradient magnitude vs eventual benefit (mean final-rank percentile, 1 = best)",
                      height=max(300, 260 * len(gb)))
    return fig


def fig_shift(s) -> go.Figure:
    col = _colors(s.methods)
    psi = sorted({p for per in s.shift.values() for p in per})
    if not psi:
        fig = go.Figure(go.Scatter(x=[0], y=[0], mode="markers"))
        fig.update_layout(title="x -> x' shift: no x' recorded", height=250)
        return fig
    fig = make_subplots(rows=1, cols=len(psi), subplot_titles=psi)
    for k, p in enumerate(psi, start=1):
        for m, per in s.shift.items():
            d = per.get(p)
            if d is None:
                continue
            if "values" in d:  # fewer than FEW_POINTS trials: the values themselves, not a box
                fig.add_trace(go.Scatter(x=[m] * len(d["values"]), y=d["values"], mode="markers", name=m,
                                         marker={"color": col.get(m), "size": 7}, legendgroup=m,
                                         showlegend=k == 1), row=1, col=k)
                continue
            fig.add_trace(go.Box(x=[m], q1=[d["q25"]], median=[d["median"]], q3=[d["q75"]], lowerfence=[d["q05"]],
                                 upperfence=[d["q95"]], mean=[d["mean"]], name=m, marker_color=col.get(m),
                                 legendgroup=m, showlegend=k == 1), row=1, col=k)
    fig.update_layout(title="x -> x' shift per psi in search coordinates (box: IQR, whiskers q05-q95, dashed: mean; "
                            f"under {FEW_POINTS} trials: each trial)",
                      height=420)
    return fig


def fig_sequential(s) -> go.Figure:
    """A --seeds auto run: the statistic at each look against the efficacy and futility boundaries."""
    rec, looks = s.sequential, s.sequential.get("looks", [])
    design = rec["design"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=design["looks"], y=design["boundaries"], mode="lines+markers", name="efficacy",
                             line={"color": "#107010"}))
    fig.add_trace(go.Scatter(x=design["looks"], y=[-c for c in design["boundaries"]], mode="lines+markers",
                             name="efficacy (slower)", line={"color": "#107010", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=[lk["n"] for lk in looks], y=_none([lk.get("futility_z") for lk in looks]),
                             mode="markers", name=f"futility (conditional power {design['futility_power']:.0%})",
                             marker={"color": "#b01010", "symbol": "x", "size": 10}))
    fig.add_trace(go.Scatter(x=[lk["n"] for lk in looks], y=[lk["z"] for lk in looks], mode="lines+markers",
                             name=f"z: {rec['method']} vs {rec['partner']}", line={"color": "black"},
                             marker={"size": 9}))
    fig.update_xaxes(title_text="pairs looked at (first n seeds)", range=[0, design["max_pairs"] + 1])
    fig.update_yaxes(title_text="standardised signed-rank statistic z")
    title = rec["statement"].replace(": ", ":<br>", 1).replace(" (adjusted", "<br>(adjusted")  # 3 short lines
    fig.update_layout(title=title, title_font_size=13, height=460, margin={"t": 110})
    return fig


def _sequential_html(s) -> str:
    rec = s.sequential
    if not rec:
        return ""
    fin = rec.get("final") or {}
    nums = ""
    if fin:
        lo, hi = fin["median_reduction_ci"]
        nums = (f" Adjusted for the looks ({html.escape(fin['method'])}): p = {fin['p_adjusted']:.3g}, median T@tau "
                f"reduction {fin['median_reduction_adjusted']:.1%} (95 % CI {lo:.1%} to {hi:.1%}); naive (fixed n = "
                f"{fin['n']}, ignoring the looks): p = {fin['naive_p']:.3g}, {fin['naive_median_reduction']:.1%}.")
    return f"<h2>Sequential design</h2><p>{html.escape(rec['statement'])}{nums}</p>"


def figures(s) -> dict[str, go.Figure]:
    seq = {"sequential": fig_sequential(s)} if getattr(s, "sequential", None) else {}
    return {
        **seq,
        "best_so_far": fig_best_so_far(s),
        "ttt": fig_ttt(s),
        "ttt_profiles": fig_profiles(s),
        "survival": fig_survival(s),
        "gradient_benefit": fig_gradient_benefit(s),
        "shift": fig_shift(s),
    }


_CHECK_JS = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
window.addEventListener('load', function () {
  setTimeout(function () {
    var divs = document.querySelectorAll('div.plotly-graph-div[id^="fig-"]');
    var ok = 0;
    divs.forEach(function (d) {
      if (d.data && d.data.length > 0 && d._fullLayout && d.querySelector('svg.main-svg')) { ok += 1; }
    });
    document.body.setAttribute('data-figures-ok', ok + '/' + divs.length);
    document.body.setAttribute('data-js-errors', window.__errors.join(' | '));
  }, 100);
});
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: 12px; }
.pass { color: #107010; font-weight: bold; } .fail { color: #b01010; font-weight: bold; }
table.crit { border-collapse: collapse; font-size: 13px; }
table.crit td, table.crit th { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
"""


def _criteria_html(s) -> str:
    if not s.criteria:
        return "<p>No method has a vanilla partner in this experiment: no success criteria to evaluate.</p>"
    rows = []
    for r in s.criteria:
        cls = "pass" if r["result"] == "PASS" else "fail"
        reason = f" ({html.escape(r['reason'])})" if r["reason"] else ""
        rows.append(f"<tr><td>{html.escape(r['method'])} vs {html.escape(r['partner'])}</td>"
                    f"<td>{html.escape(r['criterion'])}</td><td>{html.escape(r['clock'] or '-')}</td>"
                    f"<td>{html.escape(r['measured_text'])}</td><td>{html.escape(r['threshold'])}</td>"
                    f"<td class='{cls}'>{r['result']}{reason}</td></tr>")
    verdicts = "".join(
        f"<li>{html.escape(m)} vs {html.escape(v)}: <span class='{'pass' if s.verdict(m) == 'PASS' else 'fail'}'>"
        f"{s.verdict(m)}</span></li>" for m, v in s.partners.items())
    return ("<table class='crit'><tr><th>pair</th><th>criterion</th><th>clock</th><th>measured</th>"
            "<th>threshold</th><th>result</th></tr>" + "".join(rows) + "</table>"
            f"<p>Verdict on the {s.primary_clock} clock (all rows of that clock and C2, C3):</p><ul>{verdicts}</ul>")


def render_html(s, figs: dict[str, go.Figure]) -> str:
    parts = []
    for name, fig in figs.items():
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f"<div class='figure'>{div}</div>")
    tables = "".join(f"<h3>{html.escape(t)}</h3><pre>{html.escape(x)}</pre>" for t, x in sections(s))
    warn = ("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in s.warnings) + "</ul>"
            if s.warnings else "")
    from .summary import RULES

    rules = "<h2>Rules</h2><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in RULES) + "</ul>"
    title = f"OHGW analysis: {html.escape(s.experiment)}"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_CSS}</style>"
        f"<script>{_CHECK_JS}</script>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{title}</h1><p>{len(s.per_study)} studies; metric {html.escape(s.metric)} ({s.mode}); "
        f"tau = {s.tau:g} (from {s.tau_source}); clocks: wall seconds, {html.escape(s.compute_unit)}, "
        "epoch-equivalents (warm-start included). Studies that never reach tau are censored at their budget.</p>"
        f"{_sequential_html(s)}<h2>Success criteria</h2>{_criteria_html(s)}{warn}<h2>Figures</h2>{''.join(parts)}"
        f"<h2>Tables</h2>{tables}{rules}</body></html>"
    )


# static export: CSS pixels; a PDF page is width x height at 72 dpi / 96 (0.75 pt per px), a PNG is PNG_SCALE x that
STATIC_FORMATS = ("pdf", "png")
# what the one console line says when no browser is found (``make run`` and ``make test`` run the first form)
INSTALL_HINT = ("install Chromium with `sudo apt-get install -y chromium` (in a checkout: `sudo bash "
                "scripts/ensure_chromium.sh`; without root: `kaleido_get_chrome`), then rerun the analysis")
STATIC_WIDTH = 1000
STATIC_HEIGHT = 450  # for a figure whose layout sets no height
PNG_SCALE = 2
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CHATTY_LOGGERS = ("kaleido", "choreographer", "logistro", "browser_proc")


class _OneLine(logging.Handler):
    """The browser driver's own records, as one INFO line each on this module's logger (a log file, when one is open).

    choreographer logs a garbled message from Chromium's pipe with ``logger.exception`` ("JSONError decoding
    message. Ignoring" and a 25-line traceback) and goes on; the export's outcome is reported by
    :func:`export_static` itself, in one line.
    """

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        log.info("%s: %s", record.name, text.splitlines()[0] if text else record.levelname)


_ONE_LINE = _OneLine(logging.WARNING)


def _quiet_browser_loggers() -> None:
    """kaleido's and choreographer's loggers: WARNING and up, one line each (:class:`_OneLine`), unless someone
    chose their levels or gave them handlers. They log every tab and temp file at INFO, some after the export
    (from their cleanup), so this stays in place."""
    for lg in map(logging.getLogger, _CHATTY_LOGGERS):
        if lg.level == logging.NOTSET and not lg.handlers:
            lg.setLevel(logging.WARNING)
            lg.addHandler(_ONE_LINE)
            lg.propagate = False


def static_size(fig: go.Figure) -> tuple[int, int]:
    """The (width, height) in CSS pixels a figure is exported at: its layout's, else the defaults."""
    return int(fig.layout.width or STATIC_WIDTH), int(fig.layout.height or STATIC_HEIGHT)


def browser_path() -> str | None:
    """The Chromium kaleido drives: ``$BROWSER_PATH``, else one on PATH, else Debian's ``/usr/bin/chromium``.

    None lets kaleido search itself (e.g. a Chrome fetched with ``kaleido_get_chrome``); nothing is downloaded.
    """
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    for name in _BROWSERS:
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def export_static(figs: dict[str, go.Figure], fig_dir: Path, formats: tuple[str, ...] = STATIC_FORMATS) -> list[str]:
    """Write every figure as ``fig_dir/<name>.<format>`` with one headless browser; returns the paths written.

    Never raises for a missing kaleido or browser, or a failed render: it logs one warning naming why.
    MathJax is off (no figure uses LaTeX) and plotly.js comes from the installed plotly, so nothing is fetched.
    """
    def skipped(why: str) -> list[str]:
        log.warning("static figures (PDF/PNG) not written: %s; the HTML report has every figure", why)
        return []

    try:
        import kaleido
    except ImportError as e:
        return skipped(f"kaleido is not importable ({e})")
    browser = browser_path()
    if browser is not None and not os.access(browser, os.X_OK):
        return skipped(f"no Chromium at {browser}; {INSTALL_HINT}")
    fig_dir.mkdir(parents=True, exist_ok=True)
    specs, paths = [], []
    for name, fig in figs.items():
        width, height = static_size(fig)
        for fmt in formats:
            path = fig_dir / f"{name}.{fmt}"
            opts = {"format": fmt, "width": width, "height": height, "scale": PNG_SCALE if fmt == "png" else 1}
            specs.append({"fig": fig, "path": path, "opts": opts})
            paths.append(path)
    kopts = {"mathjax": False, **({"path": browser} if browser else {})}
    t0 = time.time()
    _quiet_browser_loggers()
    try:
        errors = kaleido.write_fig_from_object_sync(specs, kopts=kopts)
    except Exception as e:  # noqa: BLE001 - no browser, browser crashed, timeout: the HTML report stands
        if type(e).__name__ == "ChromeNotFoundError":
            return skipped(f"no Chromium found (PATH, /usr/bin/chromium, kaleido's own); {INSTALL_HINT}")
        msg = str(e).strip().splitlines()[0] if str(e).strip() else "no message"
        return skipped(f"{type(e).__name__}: {msg} (browser: {browser or 'kaleido default'})")
    written = [str(p) for p in paths if p.is_file() and p.stat().st_size > 0]
    if errors or len(written) < len(paths):
        first = errors[0] if errors else None
        why = f"{type(first).__name__}: {first}" if first is not None else "files missing after the export"
        log.warning("static figures: %d of %d written to %s; first error: %s", len(written), len(paths), fig_dir,
                    str(why).splitlines()[0])
    else:
        log.info("static figures: %d files (%s) in %s, %.1f s", len(written), "/".join(formats), fig_dir,
                 time.time() - t0)
    return written


def write_report(s, out_html: Path, figs: dict[str, go.Figure] | None = None, static: bool = True) -> list[str]:
    """Write the HTML report, and (``static``) every figure as PDF and PNG in ``figures/`` beside it.

    Returns the static files written (none when the export could not run; the reason is logged).
    """
    figs = figures(s) if figs is None else figs
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(render_html(s, figs), encoding="utf-8")
    if not static:
        return []
    return export_static(figs, out_html.parent / "figures")

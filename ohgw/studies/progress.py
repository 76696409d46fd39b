"""The study-level progress display: one tqdm bar (done/total, elapsed, ETA) and one line per finished study.

>>> import io
>>> out = io.StringIO()  # not a terminal: the bar as whole lines, each study line carries the progress
>>> p = StudyProgress(total=2, already=1, stream=out)
>>> p.step("lr/seed=1: done")
>>> p.close()
>>> out.getvalue().splitlines()[1].startswith("[2/2, ")
True
"""

from __future__ import annotations

import sys

from ohgw.studies.study import ExperimentConfig


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _LineWriter:
    """What a non-terminal gets from tqdm: a bar as one whole line, no carriage returns."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")

    def flush(self) -> None:
        self.stream.flush()


class StudyProgress:
    """The study-level progress bar (tqdm: done/total, elapsed, ETA) and one line per finished study.

    On a terminal the bar redraws in place below the study lines. Elsewhere (CI logs, ``| tee``) the
    bar is printed twice, at the start and at the end, as whole lines; each study line then carries
    the progress itself (``[done/total, elapsed, ETA]``), so a log holds one line per study. ``desc`` and
    ``unit`` name what is counted for other units (trials, cells: :mod:`ohgw.studies.tune_console`).
    """

    def __init__(self, total: int, already: int, stream=sys.stderr, note: str = "", desc: str = "studies",
                 unit: str = "study") -> None:
        from tqdm import tqdm

        self.stream, self.tty = stream, _isatty(stream)
        self.total = total
        common = dict(total=total, initial=already, desc=desc, unit=unit, smoothing=0.0, leave=True,
                      postfix=note or None)
        if self.tty:
            self.bar = tqdm(file=stream, mininterval=0.5, dynamic_ncols=True, **common)
        else:  # never redrawn on an update: the study lines say it
            self.bar = tqdm(file=_LineWriter(stream), ascii=True, ncols=100, miniters=1, mininterval=float("inf"),
                            maxinterval=float("inf"), **common)
        if not self.tty:
            self.bar.set_postfix_str("", refresh=False)  # the note is for the first line

    @property
    def done(self) -> int:
        return self.bar.n

    def note(self, line: str) -> None:
        """A line above the bar."""
        if self.tty:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def step(self, line: str | None = None) -> None:
        """One more study done; ``line`` (if any) says how it went."""
        self.bar.update(1)
        if line:
            self.note(f"[{self._where()}] {line}")

    def _where(self) -> str:
        if self.tty:
            return f"{self.done}/{self.total}"
        d = self.bar.format_dict
        elapsed, ran = d["elapsed"], d["n"] - d["initial"]
        left = self.total - self.done
        eta = "00:00" if not left else self.bar.format_interval(elapsed / ran * left) if ran and elapsed else "?"
        return f"{self.done}/{self.total}, {self.bar.format_interval(elapsed)} elapsed, ETA {eta}"

    def stop_at(self, total: int) -> None:
        """Fewer studies will run than planned (a sequential study stopped): ``total`` in all."""
        self.total = self.bar.total = total
        self.tick()

    def tick(self) -> None:
        """Redraw the elapsed time on a terminal (nothing elsewhere)."""
        if self.tty:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def study_line(cfg: ExperimentConfig, method: str, seed: int, tables: dict) -> str:
    """One line on a finished study: best validation score, trials, epoch-equivalents, wall time."""
    st, tr = tables["studies"].iloc[0], tables["trials"]
    scores = tr["best_val_score"] if "best_val_score" in tr and len(tr) else None
    best = "n/a" if scores is None else f"{(scores.max() if cfg.mode == 'max' else scores.min()):.4g}"
    return (f"{method}/seed={seed}: best {cfg.metric} {best}, {int(st.get('n_trials', len(tr)))} trials, "
            f"{float(st.get('epoch_equiv', float('nan'))):.1f} epoch-eq, {float(st.get('wall_s', 0.0)):.0f} s")


__all__ = ["StudyProgress", "study_line"]

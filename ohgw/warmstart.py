"""The warm-start step ψ ← clip(ψ − Δ) and its bookkeeping.

Step rules, in search coordinates u (see :mod:`ohgw.space`):

- ``raw``: Δu = η_h · g, exactly the original proposal (η_h = 1e-3). Because the
  hyper-gradients of different ψ differ in scale by ~10⁴, this mostly moves
  log-lr, and by ~1e-4: close to a no-op. It is kept for fidelity.
- ``normalized``: let v = (u − u_low)/range be coordinates in which every ψ
  spans [0, 1], and g̃ = g ⊙ range the gradient in v. Then
  Δv = η_h · g̃ / ‖g̃‖∞ and Δu = range ⊙ Δv. The ψ with the largest |g̃| moves by
  exactly η_h of its range (default 0.05); the others move in proportion, so the
  direction in v is the hyper-gradient's own. Unlike a sign step it does not
  amplify dimensions whose gradient is noise-level.

Modes: ``hypergrad`` takes the step above, clipped into the bounds; ``random`` takes a
step of the *same length in v as the hyper-gradient step actually takes from the same
point, after clipping*, in a uniformly random direction (the control for mere
perturbation; it also computes g, so it is charged the same cost). The random step
keeps that length under clipping by drawing its direction again when the step would
leave the box (up to :data:`RANDOM_REDRAWS` draws: the direction stays uniform over the
feasible ones), and near a corner projects the last draw into the box and rescales its
free components back to the length. ``none`` leaves x unchanged at no cost. Both
trials of a pair therefore move x by the same ``step_norm`` (recorded after clipping).

``hyper_steps`` repeats the step on fresh batch pairs (the multi-step ablation);
``lookahead`` is the number of unrolled optimizer steps inside each hyper-gradient.

A non-finite loss or hyper-gradient leaves x unchanged and is recorded in the
record's ``nonfinite`` flag, never raised.

The settings and the step-rule names live in :mod:`ohgw.warmstart_settings` (re-exported here),
and torch is imported only where a hyper-gradient is computed or a GPU timed, so that importing
this module (the wrapper does) costs a study's driver no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ohgw import protocol
from ohgw.cost import Stopwatch
from ohgw.space import SearchSpace
from ohgw.warmstart_settings import DEFAULT_ETA_H, DEFAULT_STEP_RULE, MODES, STEP_RULES, WarmStartSettings

if TYPE_CHECKING:
    from ohgw.hypergrad import HyperGradProblem


@dataclass
class WarmStartRecord:
    """What one warm-start did and cost; ``flat()`` gives scalar metrics for a Tune report."""

    mode: str
    step_rule: str
    eta_h: float
    hyper_steps: int
    lookahead: int
    batch_size: int
    x: dict[str, float]
    x_prime: dict[str, float]
    g: dict[str, float]
    step_norm: float = 0.0  # ‖v(x′) − v(x)‖₂: the displacement actually taken (after clipping), normalized coords
    clipped: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    val_loss_before: float = float("nan")
    wall_s: float = 0.0
    compute_s: float = 0.0
    peak_rss_mib: float = 0.0
    cuda_peak_mib: float = 0.0
    nonfinite: bool = False
    reason: str = ""

    def flat(self) -> dict[str, Any]:
        """The warm-start keys of the trial's first report (:func:`ohgw.protocol.warm_start_result`)."""
        return protocol.warm_start_result(self.to_dict())

    def to_dict(self) -> dict:
        return asdict(self)


BatchSource = Callable[[int], tuple[Any, Any]]


def _as_source(batches) -> BatchSource:
    if callable(batches):
        return batches
    train, val = batches
    return lambda step: (train, val)


RANDOM_REDRAWS = 100  # directions the random control draws before it projects and rescales


def _hypergrad_du(space: SearchSpace, g: np.ndarray, settings: WarmStartSettings) -> np.ndarray:
    """Δu (before clipping) for one hyper-gradient g under the settings' step rule."""
    scale = space.u_range
    if settings.step_rule == "raw":
        return settings.eta * g
    gv = g * scale
    m = float(np.max(np.abs(gv)))
    return np.zeros_like(g) if m == 0 else scale * (settings.eta * gv / m)


def _to_v(space: SearchSpace, u: np.ndarray) -> np.ndarray:
    return (u - space.u_low) / space.u_range


def _project_and_rescale(v: np.ndarray, step: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip v − step into [0, 1]ⁿ and stretch the components that still have room back to ``length``.

    Returns (step taken, mask of components pinned at a bound). Each round pins at least one
    more component, so it ends after at most n rounds, at ``length`` unless no room is left.
    """
    taken = step
    pinned = np.zeros(len(v), dtype=bool)
    for _ in range(len(v) + 1):
        new = np.clip(v - step, 0.0, 1.0)
        taken = v - new
        pinned |= new != v - step
        if np.linalg.norm(taken) >= length * (1 - 1e-12) or pinned.all():
            break
        free = ~pinned
        free_norm = float(np.linalg.norm(taken[free]))
        if free_norm == 0:
            break
        step = taken.copy()
        step[free] *= math.sqrt(max(length**2 - float(np.sum(taken[pinned] ** 2)), 0.0)) / free_norm
    return taken, pinned


def _random_dv(v: np.ndarray, length: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A step of exactly ``length`` (in v) in a uniformly random direction that stays in the box.

    Directions whose step would leave [0, 1]ⁿ are drawn again (up to :data:`RANDOM_REDRAWS`
    times), which keeps the direction uniform over the feasible ones. Near a corner where
    that fails, the last draw is projected and rescaled (:func:`_project_and_rescale`).
    """
    n = len(v)
    step = np.zeros(n)
    for _ in range(RANDOM_REDRAWS):
        d = rng.standard_normal(n)
        step = length * d / np.linalg.norm(d)
        new = v - step
        if np.all((new >= 0.0) & (new <= 1.0)):
            return step, np.zeros(n, dtype=bool)
    return _project_and_rescale(v, step, length)


def _take_step(
    space: SearchSpace, u: np.ndarray, g: np.ndarray, settings: WarmStartSettings, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """(new u, names clipped at a bound) after one step of the settings' mode from u.

    ``hypergrad``: u − Δu(g), clipped into the bounds. ``random``: a step in a random
    direction whose length in normalized coordinates equals the length the hyper-gradient step
    *actually takes* from the same u (after its clipping), so the control moves exactly as far
    as its partner; it stays in the box by redrawing the direction (see :func:`_random_dv`).
    """
    proposed = u - _hypergrad_du(space, g, settings)
    new_u = space.clip_u(proposed)
    clipped = [n for n, a, b in zip(space.names, proposed, new_u) if a != b]
    if settings.mode != "random":
        return new_u, clipped
    v = _to_v(space, u)
    length = float(np.linalg.norm(_to_v(space, new_u) - v))
    dv, pinned = _random_dv(v, length, rng)
    new_u = space.clip_u(space.u_low + (v - dv) * space.u_range)
    return new_u, [n for n, p in zip(space.names, pinned) if p]


GradientFn = Callable[[dict, int], tuple[np.ndarray, float]]


def warm_start_with(
    gradient: GradientFn,
    space: SearchSpace,
    config: Mapping[str, Any],
    settings: WarmStartSettings | None = None,
    device: Any = None,
) -> tuple[dict[str, Any], WarmStartRecord]:
    """Warm-start ``config`` with any hyper-gradient source; returns (x′ as a full config, record).

    ``gradient(current_config, hyper_step)`` returns (g in search coordinates u, in
    ``space.names`` order; the validation loss before the step). The step rules, the random
    control, clipping, cost accounting (:class:`~ohgw.cost.Stopwatch` on ``device``) and the
    record are this module's, so a trainable whose hyper-gradient is not an unrolled torch step
    (e.g. a finite difference through a surrogate) warm-starts exactly like the others. A
    non-finite g or loss leaves x unchanged and sets ``record.nonfinite``.
    """
    settings = settings or WarmStartSettings()
    cont, rest = space.split(config)
    record = WarmStartRecord(
        mode=settings.mode,
        step_rule=settings.step_rule,
        eta_h=settings.eta,
        hyper_steps=settings.hyper_steps,
        lookahead=settings.lookahead,
        batch_size=settings.batch_size,
        x=dict(cont),
        x_prime=dict(cont),
        g={n: 0.0 for n in space.names},
        untouched=sorted(k for k in rest if not protocol.is_protocol_key(k)),
    )
    if settings.mode == "none":
        return dict(config), record
    rng = np.random.default_rng(settings.seed)
    u = u0 = space.to_u(config)
    clipped: set[str] = set()
    with Stopwatch(device) as sw:
        for step in range(settings.hyper_steps):
            g, val_loss = gradient(space.with_values(config, space.to_x(u)), step)
            g = np.asarray(g, dtype=np.float64)
            if step == 0:
                record.g = {n: float(v) for n, v in zip(space.names, g)}
                record.val_loss_before = float(val_loss)
            if not (np.all(np.isfinite(g)) and math.isfinite(val_loss)):
                record.nonfinite = True
                record.reason = f"non-finite loss or hyper-gradient at hyper-step {step}"
                break
            u, hit = _take_step(space, u, g, settings, rng)
            clipped |= set(hit)
    record.wall_s, record.compute_s = sw.cost.wall_s, sw.cost.compute_s
    record.peak_rss_mib, record.cuda_peak_mib = sw.cost.peak_rss_mib, sw.cost.cuda_peak_mib
    if record.nonfinite:
        return dict(config), record
    record.clipped = sorted(clipped)
    record.step_norm = float(np.linalg.norm(_to_v(space, u) - _to_v(space, u0)))
    record.x_prime = space.to_x(u)
    return space.with_values(config, record.x_prime), record


def warm_start(
    problem: HyperGradProblem,
    space: SearchSpace,
    config: Mapping[str, Any],
    batches: BatchSource | tuple[Any, Any],
    settings: WarmStartSettings | None = None,
) -> tuple[dict[str, Any], WarmStartRecord]:
    """Warm-start ``config`` with the unrolled hyper-gradient of ``problem``; returns (x′ as a full config, record).

    ``batches`` is a pair (train_batch, val_batch) or a callable step → pair that
    supplies a fresh pair for each hyper-step. The model is left bit-identical.
    """
    from ohgw.hypergrad import hypergradient  # torch: imported by the trial that warm-starts, not by its planners

    settings = settings or WarmStartSettings()
    if settings.mode != "none":
        problem.check_space(space)
    source = _as_source(batches)

    def gradient(current: dict, step: int) -> tuple[np.ndarray, float]:
        train_batch, val_batch = source(step)
        hg = hypergradient(problem, space, current, [train_batch], val_batch, settings.lookahead)
        return (hg.g, hg.val_loss) if hg.finite else (np.full(len(space), np.nan), float("nan"))

    device = next(problem.model.parameters()).device
    return warm_start_with(gradient, space, config, settings, device)


def instruction(config: Mapping[str, Any]) -> tuple[WarmStartSettings, SearchSpace] | None:
    """The warm-start instruction the wrapper put into ``config`` (None if absent or used up)."""
    spec = protocol.read_instruction(config)
    if spec is None:
        return None
    return WarmStartSettings.from_dict(protocol.instruction_settings(spec)), SearchSpace.from_dict(spec[protocol.SPACE_FIELD])


def make_instruction(space: SearchSpace, settings: WarmStartSettings, trial_index: int = 0) -> dict:
    """The dict the wrapper stores in a trial's config (see :mod:`ohgw.protocol`)."""
    return protocol.make_instruction(settings.to_dict(), space.to_dict(), trial_index)


def maybe_warm_start(
    config: Mapping[str, Any],
    problem: HyperGradProblem,
    batches: BatchSource | tuple[Any, Any],
) -> tuple[dict[str, Any], WarmStartRecord | None]:
    """Warm-start if ``config`` carries an OHGW instruction; else return it unchanged.

    This is the one call a user's trainable makes at the start of training.
    """
    found = instruction(config)
    if found is None:
        return dict(config), None
    settings, space = found
    return warm_start(problem, space, config, batches, settings)


__all__ = [
    "DEFAULT_ETA_H",
    "DEFAULT_STEP_RULE",
    "MODES",
    "RANDOM_REDRAWS",
    "STEP_RULES",
    "BatchSource",
    "GradientFn",
    "WarmStartRecord",
    "WarmStartSettings",
    "instruction",
    "make_instruction",
    "maybe_warm_start",
    "warm_start",
    "warm_start_with",
]

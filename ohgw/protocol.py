"""The protocol between the OHGW wrapper, a trainable and the study harness: every key they exchange.

Nothing outside this module spells these strings; each key has one writer and one
parser here. Three directions:

**Config keys, driver → trainable** (put into ``trial.config`` before the trial starts)

==========================  ====================================================================
``config["ohgw"]``          the warm-start *instruction* (:func:`make_instruction`): the
                            :class:`~ohgw.warmstart.WarmStartSettings` fields, the search space
                            (``"space"``) and the trial's creation index (``"trial_index"``).
                            Consumed once x′ is recorded: ``"mode"`` becomes ``"none"`` and
                            ``"applied"`` keeps the mode that ran (:func:`apply_adjusted`).
``config["trial_index"]``   the trial's index in its study (the harness numbers trials)
``config["seed"]``          the trial's model-init / data-order seed (the harness sets it)
``config["max_t"]``         the trial's maximum length in epochs (the harness sets it)
``config["deterministic"]`` CUDA determinism for the trial's process (bool; absent: true; the
                            harness sets it): twins of a pair stay bit-identical on a GPU too
==========================  ====================================================================

**Result keys, trainable → wrapper and harness** (the *reporting contract*, every report)

``training_iteration`` (Tune's, = epochs done), the tuned metric (e.g. ``val_acc``) and its
``test_`` twin, ``val_loss``, ``train_loss``, and the cost keys :data:`COST_KEYS`:
``trial_compute_s`` (cumulative compute seconds, warm-start included), ``trial_epoch_equiv``
(epochs done + warm-start compute / first-epoch compute), ``ws_compute_s`` (warm-start compute
charged at this report: the first report only), ``epoch_s``, ``samples_per_s``, ``peak_rss_mib``,
plus ``diverged`` / ``collapsed`` (a clean ending), ``node_id``, ``device``, ``deterministic`` and ``hp/<ψ>`` (the
values trained with). The first report of a warm-started trial adds the *warm-start keys*
(:func:`warm_start_result`): ``ohgw/x/<ψ>`` (x), ``ohgw/x_prime/<ψ>`` (x′), ``ohgw/g/<ψ>`` (the
hyper-gradient in search coordinates), the settings actually used (``ohgw/mode``,
``ohgw/step_rule``, ``ohgw/eta_h``, ``ohgw/hyper_steps``, ``ohgw/lookahead``, ``ohgw/batch_size``),
the step taken (``ohgw/step_norm``), and its cost (``ohgw/wall_s``, ``ohgw/compute_s``,
``ohgw/peak_rss_mib``, ``ohgw/cuda_peak_mib``, ``ohgw/share_of_epoch``, ``ohgw/nonfinite``).

**Recorded config keys, wrapper → everyone after** (:func:`apply_adjusted`)

``config[ψ]`` ← x′, ``config["ohgw_x"]`` = x, ``config["ohgw_g"]`` = g. :func:`adjusted_from_result`
is the one parser of x′ (for the wrapper, its callbacks, the searcher feedback and the harness).

>>> instr = make_instruction({"mode": "hypergrad", "seed": 3}, {"params": []}, trial_index=0)
>>> read_instruction({INSTRUCTION_KEY: instr})["trial_index"]
0
>>> config = {"lr": 0.1, INSTRUCTION_KEY: instr}
>>> result = {"ohgw/x/lr": 0.1, "ohgw/x_prime/lr": 0.12, "ohgw/g/lr": -0.5}
>>> adj = adjusted_from_result(result)
>>> new = apply_adjusted(config, adj)
>>> new["lr"], new[ORIGINAL_KEY], new[GRADIENT_KEY], new[INSTRUCTION_KEY]["mode"], new[INSTRUCTION_KEY]["applied"]
(0.12, {'lr': 0.1}, {'lr': -0.5}, 'none', 'hypergrad')
>>> is_recorded(new), is_recorded(config), read_instruction(new) is None
(True, False, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# ---- config keys ------------------------------------------------------------------------------------
INSTRUCTION_KEY = "ohgw"  # the warm-start instruction dict
TRIAL_INDEX_KEY = "trial_index"  # the trial's creation index in its study (also inside the instruction)
SEED_KEY = "seed"  # the trial's model-init / data-order seed
MAX_T_KEY = "max_t"  # the trial's maximum length in epochs (= the top rung); the harness sets it
DETERMINISTIC_KEY = "deterministic"  # bool: deterministic CUDA kernels in the trial's process (absent: True)
ORIGINAL_KEY = "ohgw_x"  # recorded: the sampled x, {ψ: value}
GRADIENT_KEY = "ohgw_g"  # recorded: the hyper-gradient, {ψ: ∂L_val/∂u_ψ}
SPACE_FIELD = "space"  # inside the instruction: SearchSpace.to_dict()
APPLIED_FIELD = "applied"  # inside a consumed instruction: the mode that ran
MODE_FIELD = "mode"

# ---- result keys: the reporting contract --------------------------------------------------------------
ITERATION = "training_iteration"
VAL_LOSS = "val_loss"
TRAIN_LOSS = "train_loss"
TRIAL_COMPUTE_S = "trial_compute_s"
TRIAL_EPOCH_EQUIV = "trial_epoch_equiv"
WS_COMPUTE_S = "ws_compute_s"
EPOCH_S = "epoch_s"
SAMPLES_PER_S = "samples_per_s"
PEAK_RSS_MIB = "peak_rss_mib"
DIVERGED = "diverged"
COLLAPSED = "collapsed"
NODE_ID = "node_id"
DEVICE = "device"
DETERMINISTIC = DETERMINISTIC_KEY  # reported back: the setting the trial ran with
HP_PREFIX = "hp/"
COST_KEYS = (TRIAL_COMPUTE_S, TRIAL_EPOCH_EQUIV, WS_COMPUTE_S, EPOCH_S)
# every report carries these (plus the tuned metric); the harness records them
CONTRACT_KEYS = (VAL_LOSS, TRAIN_LOSS, *COST_KEYS, SAMPLES_PER_S, PEAK_RSS_MIB, DIVERGED, NODE_ID, DEVICE,
                 DETERMINISTIC)

# ---- result keys: the warm-start ----------------------------------------------------------------------
WS_PREFIX = "ohgw/"
X_PREFIX = WS_PREFIX + "x/"
X_PRIME_PREFIX = WS_PREFIX + "x_prime/"
G_PREFIX = WS_PREFIX + "g/"
# scalar warm-start fields reported with the first result (WarmStartRecord's, plus share_of_epoch)
WS_FIELDS = (
    "mode",
    "step_rule",
    "eta_h",
    "hyper_steps",
    "lookahead",
    "batch_size",
    "step_norm",
    "wall_s",
    "compute_s",
    "peak_rss_mib",
    "cuda_peak_mib",
    "nonfinite",
    "share_of_epoch",
)


def test_metric(metric: str) -> str:
    """The held-out twin of a tuned metric: ``val_acc`` → ``test_acc``, ``loss`` → ``test_loss``."""
    return "test_" + metric[4:] if metric.startswith("val_") else "test_" + metric


def hp_key(name: str) -> str:
    """The report key of the value ψ ``name`` was trained with."""
    return HP_PREFIX + name


# ---- the instruction ---------------------------------------------------------------------------------
def make_instruction(settings: Mapping[str, Any], space: Mapping[str, Any], trial_index: int) -> dict:
    """The dict the wrapper stores under ``config["ohgw"]``: settings fields, space dict, trial index."""
    return {**dict(settings), SPACE_FIELD: dict(space), TRIAL_INDEX_KEY: int(trial_index)}


def has_instruction(config: Mapping[str, Any]) -> bool:
    """Whether the wrapper has injected an instruction (used up or not): injection is idempotent."""
    return INSTRUCTION_KEY in config


def read_instruction(config: Mapping[str, Any]) -> dict | None:
    """The instruction to act on, or None when absent or already consumed."""
    spec = config.get(INSTRUCTION_KEY)
    if not isinstance(spec, Mapping) or not spec or spec.get(APPLIED_FIELD):
        return None
    return dict(spec)


def instruction_settings(spec: Mapping[str, Any]) -> dict:
    """The settings fields of an instruction (everything but the space and the trial index)."""
    return {k: v for k, v in spec.items() if k not in (SPACE_FIELD, TRIAL_INDEX_KEY, APPLIED_FIELD)}


def applied_mode(config: Mapping[str, Any]) -> str:
    """The warm-start mode that ran for this trial's config ("none" when none did)."""
    spec = config.get(INSTRUCTION_KEY)
    if isinstance(spec, Mapping):
        return str(spec.get(APPLIED_FIELD) or "none")
    return "none"


def is_protocol_key(key: str) -> bool:
    """True for config keys the protocol adds (not hyper-parameters of the user's search space)."""
    return key in (INSTRUCTION_KEY, ORIGINAL_KEY, GRADIENT_KEY, TRIAL_INDEX_KEY, DETERMINISTIC_KEY)


# ---- the trial's identity in its study ----------------------------------------------------------------
def trial_index(config: Mapping[str, Any]) -> int | None:
    """The trial's index in its study, if the harness (or the wrapper's instruction) set one."""
    if config.get(TRIAL_INDEX_KEY) is not None:
        return int(config[TRIAL_INDEX_KEY])
    spec = config.get(INSTRUCTION_KEY)
    if isinstance(spec, Mapping) and spec.get(TRIAL_INDEX_KEY) is not None:
        return int(spec[TRIAL_INDEX_KEY])
    return None


def with_trial_identity(config: Mapping[str, Any], index: int, seed: int) -> dict:
    """A copy of ``config`` holding the trial's study index and its model-init / data-order seed."""
    return {**config, TRIAL_INDEX_KEY: int(index), SEED_KEY: int(seed)}


# ---- x′: written by the trainable, parsed here only --------------------------------------------------
def warm_start_result(record: Mapping[str, Any], share_of_epoch: float | None = None) -> dict[str, Any]:
    """The warm-start keys of a first report, from ``WarmStartRecord.to_dict()``."""
    out: dict[str, Any] = {WS_PREFIX + f: record[f] for f in WS_FIELDS if f in record}
    if share_of_epoch is not None:
        out[WS_PREFIX + "share_of_epoch"] = float(share_of_epoch)
    g = record.get("g", {})
    for name, x in record["x"].items():
        out[X_PREFIX + name] = x
        out[X_PRIME_PREFIX + name] = record["x_prime"][name]
        out[G_PREFIX + name] = g.get(name, float("nan"))
    return out


def warm_start_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar warm-start fields (mode, eta_h, step_norm, costs, ...) of a result, unprefixed."""
    flat = _flat(result)
    return {f: flat[WS_PREFIX + f] for f in WS_FIELDS if WS_PREFIX + f in flat}


def _flat(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """Tune hands over reports flat (``"ohgw/x/lr"``) or nested (``{"ohgw": {"x": {...}}}``)."""
    if any(isinstance(k, str) and k.startswith(WS_PREFIX) for k in result):
        return result
    out: dict[str, Any] = {}

    def walk(prefix: str, d: Mapping) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                walk(f"{prefix}{k}/", v)
            else:
                out[f"{prefix}{k}"] = v

    walk("", result)
    return out


def _by_prefix(flat: Mapping[str, Any], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: float(v) for k, v in flat.items() if isinstance(k, str) and k.startswith(prefix)}


def adjusted_from_result(result: Mapping[str, Any], names: Iterable[str] | None = None) -> dict | None:
    """``{"x", "x_prime", "g"}`` dicts from a (flat or nested) result, or None if it carries no x′.

    The one parser of x′. With ``names``, only those hyper-parameters are kept. A
    non-finite x′ makes the whole record invalid (None).
    """
    flat = _flat(result)
    x_prime = _by_prefix(flat, X_PRIME_PREFIX)
    if names is not None:
        keep = set(names)
        x_prime = {k: v for k, v in x_prime.items() if k in keep}
    if not x_prime or not all(math.isfinite(v) for v in x_prime.values()):
        return None
    x = _by_prefix(flat, X_PREFIX)
    g = _by_prefix(flat, G_PREFIX)
    return {
        "x": {k: x.get(k, x_prime[k]) for k in x_prime},
        "x_prime": dict(x_prime),
        "g": {k: g.get(k, 0.0) for k in x_prime},
    }


def is_recorded(config: Mapping[str, Any]) -> bool:
    """Whether x′ has already been written into this config (by :func:`apply_adjusted`)."""
    return ORIGINAL_KEY in config


def apply_adjusted(config: Mapping[str, Any], adjusted: Mapping[str, Mapping[str, float]]) -> dict:
    """A copy of ``config`` holding x′, the original x, g, and a consumed instruction."""
    out = dict(config)
    out.update(adjusted["x_prime"])
    out[ORIGINAL_KEY] = dict(adjusted["x"])
    out[GRADIENT_KEY] = dict(adjusted["g"])
    spec = out.get(INSTRUCTION_KEY)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        spec[APPLIED_FIELD] = spec.get(APPLIED_FIELD, spec.get(MODE_FIELD))
        spec[MODE_FIELD] = "none"
        out[INSTRUCTION_KEY] = spec
    return out


def sampled_config(config: Mapping[str, Any]) -> dict:
    """x as the searcher sampled it: a recorded config with its x′ values put back to x."""
    out = {k: v for k, v in config.items() if k not in (ORIGINAL_KEY, GRADIENT_KEY)}
    out.update(config.get(ORIGINAL_KEY) or {})
    return out

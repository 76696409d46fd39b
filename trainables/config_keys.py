"""What to suggest for an unknown config key: by meaning first (an alias table), then by spelling.

A key that a family does not know is an error; the error should name the key the user meant.
Spelling alone suggests badly (``learning_rate`` is closer in spelling to ``teacher_forcing`` than to
``lr``), so :func:`suggestion` first looks the key up in :data:`ALIASES`, the names other libraries
and the seeds use for the same thing, and only then falls back to the closest spelling (difflib,
cutoff 0.6: nothing rather than a far-fetched guess). A dotted key (seed 004's sub-configs,
``vicreg.base_lr``) is looked up by its last part, and the message says that keys are flat here. A
seed's key that has no counterpart here (:data:`NO_COUNTERPART`, seed 004's ``wandb``) says what to
use instead.

>>> known = ("lr", "wd", "teacher_forcing", "max_t", "var_coeff")
>>> suggestion("learning_rate", known)
"; did you mean 'lr'?"
>>> suggestion("vicreg.base_lr", known)
"; keys are flat here (no sub-configs): did you mean 'lr'?"
>>> suggestion("var_cof", known)
"; did you mean 'var_coeff'?"
>>> suggestion("wandb", known)
"; Weights & Biases logging is not built in here: every epoch's metrics are in the run's Parquet file"
>>> suggestion("zzz", known)
''
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# other names for a key → the key (only used where the family knows the key)
ALIASES: dict[str, tuple[str, ...]] = {
    "lr": ("learning_rate", "base_lr", "lr_base", "step_size", "eta"),
    "wd": ("weight_decay", "l2", "decay"),
    "max_t": ("epochs", "num_epochs", "n_epochs", "max_epochs", "training_epochs"),
    "epochs": ("num_epochs", "n_epochs", "max_epochs", "max_t"),
    "batch_size": ("batchsize", "bs", "batch", "minibatch_size"),
    "seed": ("random_seed", "random_state", "rng_seed"),
    "temperature": ("temp", "tau", "softmax_temperature", "nce_temperature"),
    "var_coeff": ("std_coeff", "variance_coeff", "var_weight", "std_weight", "lambda_var"),
    "cov_coeff": ("covariance_coeff", "cov_weight", "lambda_cov"),
    "kl_scale": ("kl_weight", "kl_coeff", "beta", "kl_beta"),
    "embedding_dim": ("emb_dim", "embed_dim", "repr_dim", "representation_dim", "feature_dim", "latent_dim"),
    "momentum": ("beta1", "mom"),
    "grad_clip": ("clip_grad", "max_grad_norm", "clip", "gradient_clip"),
    "pred_horizon": ("horizon", "rollout_horizon", "prediction_horizon"),
    "predictor_hidden": ("hidden_dim", "pred_hidden", "predictor_dim"),
    "dataset_noise": ("noise", "changing_noise"),
    "dataset_static_noise": ("static_noise",),
    "dataset_structured_noise": ("structured_noise",),
    "device": ("gpu", "cuda"),
}
# a seed's key with no counterpart here → what to use instead
NO_COUNTERPART: dict[str, str] = {
    "wandb": "Weights & Biases logging is not built in here: every epoch's metrics are in the run's Parquet file",
}
_BY_ALIAS: dict[str, tuple[str, ...]] = {}
for _key, _names in ALIASES.items():
    for _name in _names:
        _BY_ALIAS[_name] = (*_BY_ALIAS.get(_name, ()), _key)


def meant(key: str, known: Iterable[str]) -> str | None:
    """The known key that ``key`` means: an alias first, then the closest spelling; None if neither."""
    known = list(known)
    norm = key.strip().lower().replace("-", "_")
    if norm in known:
        return norm
    for target in _BY_ALIAS.get(norm, ()):
        if target in known:
            return target
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return match[0] if match else None


def suggestion(key: str, known: Iterable[str]) -> str:
    """``"; did you mean 'lr'?"`` for an unknown ``key`` (empty when nothing fits); see the module docstring."""
    known = list(known)
    if key in NO_COUNTERPART:
        return f"; {NO_COUNTERPART[key]}"
    if "." in key:
        target = meant(key.rsplit(".", 1)[1], known)
        return f"; keys are flat here (no sub-configs): did you mean {target!r}?" if target else \
            "; keys are flat here (no sub-configs)"
    target = meant(key, known)
    return f"; did you mean {target!r}?" if target else ""

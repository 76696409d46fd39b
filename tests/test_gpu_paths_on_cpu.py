"""The bf16 autocast path of the JEPA family, run on the CPU (torch has CPU bf16 autocast): the same code a GPU
runs with ``precision`` auto, checked here without one (``tests/test_gpu.py`` repeats it on CUDA).

- a VICReg JEPA with ``precision: bf16`` trains 2 epochs with finite losses and a finite warm-start record, its
  convolutions really compute in bf16 (their outputs, seen by forward hooks) while the predictor, the
  encoder's output and the losses stay float32, and it tracks the fp32 run of the same config (the
  reference) to bf16's precision without equalling it;
- the RSSM's decoder is under the same autocast; float64 (the hyper-gradient tests' references) never is;
- ``precision`` auto means bf16 on CUDA only; a value outside auto / fp32 / bf16 is a ValueError naming it.

Linear BYOL has no bf16 path on purpose: :mod:`trainables.linear_byol.engine` says why.
"""

from __future__ import annotations

import math

import pytest
import torch

from ohgw import protocol
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables.jepa import resolve_config, search_space
from trainables.jepa.models import RSSM
from trainables.jepa.run import JepaRun, uses_bf16
from trainables.scaffold import Trial

# tiny: one 2-sequence step per epoch (CPU bf16 convolutions have no fast kernel here: ~10x fp32)
TINY = {"model_type": "VICReg", "device": "cpu", "max_t": 2, "dataset_size": 2, "batch_size": 2, "probe_size": 2,
        "val_size": 2, "test_size": 2, "embedding_dim": 8, "predictor_hidden": 8, "eval_rollout": False,
        "probe_ridge": 1.0, "optimizer": "sgd", "lr": 0.05}


def _two_epochs(precision: str) -> tuple[list[dict], dict]:
    """The reports of 2 epochs (with a warm-start of every ψ), and the dtypes the modules produced."""
    config = {**TINY, "precision": precision,
              "ohgw": make_instruction(search_space("VICReg"), WarmStartSettings(mode="hypergrad", batch_size=2))}
    trial = Trial.start(JepaRun, config)
    seen: dict[str, set] = {}
    model = trial.run.model
    for name, module in (("conv", model.encoder.features[0]), ("encoder", model.encoder),
                         ("predictor", model.predictor)):
        module.register_forward_hook(lambda m, i, out, name=name: seen.setdefault(name, set()).add(out.dtype))
    return [trial.step() for _ in range(2)], seen


@pytest.fixture(scope="module")
def runs() -> dict:
    torch.set_num_threads(1)
    return {p: _two_epochs(p) for p in ("bf16", "fp32")}


def test_the_jepa_bf16_path_trains_two_finite_epochs_in_bf16_with_a_finite_warm_start(runs):
    rows, seen = runs["bf16"]
    assert seen == {"conv": {torch.bfloat16}, "encoder": {torch.float32}, "predictor": {torch.float32}}
    assert [r[protocol.ITERATION] for r in rows] == [1, 2]
    assert all(math.isfinite(r[protocol.TRAIN_LOSS]) and not r[protocol.DIVERGED] for r in rows)
    assert all(math.isfinite(r["val_rmse"]) for r in rows)
    record = {k: v for k, v in rows[0].items() if k.startswith((protocol.X_PRIME_PREFIX, protocol.G_PREFIX))}
    assert len(record) == 2 * len(search_space("VICReg").names) and all(map(math.isfinite, record.values())), record
    assert rows[0][protocol.WS_PREFIX + "nonfinite"] is False


def test_the_bf16_run_tracks_the_fp32_run_without_equalling_it(runs):
    (bf16, _), (fp32, seen32) = runs["bf16"], runs["fp32"]
    assert seen32["conv"] == {torch.float32}
    for key in (protocol.TRAIN_LOSS, protocol.G_PREFIX + "lr"):
        a, b = bf16[0][key], fp32[0][key]
        assert a != b and abs(a - b) <= 0.05 * abs(b), (key, a, b)  # bf16 keeps 8 bits of mantissa: ~0.4 % a value


def test_the_rssm_decoder_is_autocast_and_float64_never_is():
    torch.manual_seed(0)
    model = RSSM(8, 1, det_dim=4, stoch_dim=2, hidden=4, bf16=True)
    seen: list = []
    model.decoder.net[1].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    frames, actions = torch.rand(1, 3, 1, 28, 28), torch.rand(1, 2, 2)
    out = model(frames, actions, torch.zeros(1, 3, 2))
    assert seen == [torch.bfloat16] and out["recon"].dtype == torch.float32 and out["kl"].dtype == torch.float32
    out64 = model.double()(frames.double(), actions.double(), torch.zeros(1, 3, 2, dtype=torch.float64))
    assert seen[-1] == torch.float64 and out64["recon"].dtype == torch.float64


def test_precision_auto_is_bf16_on_cuda_only_and_a_bad_value_names_precision():
    cfg = resolve_config({})
    assert cfg["precision"] == "auto"
    assert uses_bf16(cfg, torch.device("cuda")) and not uses_bf16(cfg, torch.device("cpu"))
    assert not uses_bf16({**cfg, "precision": "fp32"}, torch.device("cuda"))
    assert uses_bf16({**cfg, "precision": "bf16"}, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"^precision must be one of \('auto', 'fp32', 'bf16'\), got 'fp16'$"):
        resolve_config({"precision": "fp16"})

"""The deterministic setting and device resolution, on the CPU: what of the GPU path a CPU machine can check.

A GPU machine runs the real thing (``tests/test_gpu.py``, marked ``gpu``). Here: the setting's checks,
the process state :func:`trainables.checks.set_determinism` leaves (in a fresh process, where CUDA is
not initialised, with CUDA's presence faked: it only sets flags and one environment variable), the
order :meth:`trainables.scaffold.Trial.start` applies it in, device resolution with CUDA's presence
faked, the translation that replaced ``grid_sample`` (the same values and hyper-gradient, in float64),
a CUDA checkpoint's extra random stream on a CPU restore, the trials table's column, the report's
"pairs are approximate" warning and the one-line errors of the entry points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ohgw import protocol
from trainables import checks
from trainables.augment import MAX_SHIFT, magnitude_augment, sample_draws
from trainables.scaffold import TrainResult, Trial, run_epochs
from trainables.state_io import load_state, rng_state, save_state, set_rng_state

ROOT = Path(__file__).resolve().parents[1]


def _fake_cuda(monkeypatch, n_devices: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_devices)


# ---- the setting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["true", 1, None, 0.0])
def test_a_non_boolean_setting_is_one_error_naming_it(value):
    with pytest.raises(ValueError, match=f"^deterministic must be True or False, got {value!r}$"):
        checks.deterministic({protocol.DETERMINISTIC_KEY: value})


class _Counter:
    """A tiny run object: x ← x + 1 per epoch, on ``device`` (never touched: a CUDA name needs no GPU)."""

    def __init__(self, config):
        self.device, self.epoch, self.hp = config.get("device", "cpu"), 0, {}
        self.seen = {"algorithms": torch.are_deterministic_algorithms_enabled(),
                     "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
        torch.backends.cudnn.benchmark = True  # as the classification family sets it on CUDA

    finished = property(lambda self: self.epoch >= 3)
    warm_start = save = load = lambda self, *directory: None

    def train_epoch(self):
        self.epoch += 1
        return TrainResult(float(self.epoch), samples=1)

    evaluate_epoch = diverged_metrics = lambda self: {"val_x": float(self.epoch), protocol.VAL_LOSS: 0.0}


def test_every_report_carries_the_setting_and_a_bad_one_fails_before_the_run_is_built():
    assert [r[protocol.DETERMINISTIC] for r in run_epochs(_Counter, {}, 2)] == [True, True]
    rows = run_epochs(_Counter, {protocol.DETERMINISTIC_KEY: False}, 1)
    assert rows[0][protocol.DETERMINISTIC] is False and set(rows[0]) >= set(protocol.CONTRACT_KEYS)
    built = []
    with pytest.raises(ValueError, match="deterministic must be True or False, got 'no'"):
        Trial.start(lambda c: built.append(c), {protocol.DETERMINISTIC_KEY: "no"})
    assert built == []


_IN_A_FRESH_PROCESS = r"""
import json, os, sys
import torch
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
from test_determinism import _Counter
from trainables import checks
from trainables.scaffold import Trial

def state():
    return {"algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "benchmark": torch.backends.cudnn.benchmark, "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "cuda_initialised": torch.cuda.is_initialized()}

out = {"start": state()}
checks.set_determinism(True, "cpu")
out["cpu run"] = state()
torch.cuda.is_available = lambda: True  # a GPU machine, as far as the setting can tell
trial = Trial.start(_Counter, {"device": "cuda"})
out["inside the factory"], out["cuda run"] = trial.run.seen, state()
trial = Trial.start(_Counter, {"device": "cpu"})
out["cpu run on a GPU machine"] = state()
Trial.start(_Counter, {"device": "cuda", "deterministic": False})
out["cuda run, off"] = state()
del os.environ["CUBLAS_WORKSPACE_CONFIG"]
torch.cuda.is_initialized = lambda: True  # CUDA already used in this process without the variable
try:
    checks.set_determinism(True, "cuda")
except RuntimeError as e:
    out["late"] = str(e)
print(json.dumps(out))
"""


def test_the_setting_in_a_fresh_process_before_and_after_the_run_is_built():
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    done = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS, str(ROOT)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    torch_default = {"algorithms": False, "warn_only": False, "benchmark": False, "cublas": None,
                     "cuda_initialised": False}
    assert out["start"] == torch_default
    assert out["cpu run"] == torch_default  # a CPU run changes nothing
    # on CUDA: deterministic kernels (no warn-only fallback) and the cuBLAS workspace before the run is built
    assert out["inside the factory"] == {"algorithms": True, "cublas": checks.CUBLAS_WORKSPACE}
    # ... and no cuDNN benchmark after it, although the run asked for one
    assert out["cuda run"] == {**torch_default, "algorithms": True, "cublas": ":4096:8"}
    assert out["cpu run on a GPU machine"]["algorithms"] is False
    assert out["cuda run, off"]["algorithms"] is False and out["cuda run, off"]["benchmark"] is True
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in out["late"]


# ---- devices -------------------------------------------------------------------------------------------
def test_cuda_cuda0_and_auto_resolve_where_cuda_is_visible(monkeypatch):
    _fake_cuda(monkeypatch)
    assert checks.resolve_device("cuda") == torch.device("cuda")
    assert checks.resolve_device("cuda:0") == torch.device("cuda", 0)
    assert checks.resolve_device("auto") == torch.device("cuda")
    assert checks.resolve_device("cpu") == torch.device("cpu")


def test_a_trial_given_a_fractional_gpu_sees_one_device_as_cuda0(monkeypatch):
    # Ray gives a 0.25-GPU trial CUDA_VISIBLE_DEVICES="3": torch sees that one GPU, as cuda:0
    _fake_cuda(monkeypatch, n_devices=1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert checks.resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=r"^device 'cuda:3' asked for, but 1 CUDA device\(s\) are visible "
                                         r"\(CUDA_VISIBLE_DEVICES=3\)$"):
        checks.resolve_device("cuda:3")


def test_without_cuda_asking_for_it_is_one_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert checks.resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"^device '{name}' asked for, but CUDA is not available here"):
            checks.resolve_device(name)
    for bad in ("gpu", 0):
        with pytest.raises(ValueError, match="^device must be 'auto', 'cpu' or 'cuda"):
            checks.resolve_device(bad)


def test_a_checkpoint_from_cuda_restores_on_the_cpu_without_its_cuda_stream(tmp_path):
    g = torch.Generator().manual_seed(5)
    state = {**rng_state(g, "cpu"), "cuda_rng": torch.zeros(16, dtype=torch.uint8), "w": torch.ones(2)}
    expected = torch.rand(3, generator=g)
    save_state(tmp_path, "s.pt", state)
    loaded = load_state(tmp_path, "s.pt")  # map_location="cpu": a CUDA tensor in it would come back here
    assert loaded["w"].device.type == "cpu"
    g2 = torch.Generator().manual_seed(99)
    set_rng_state(loaded, g2, "cpu")  # the CUDA stream is left alone on a CPU run
    assert torch.equal(torch.rand(3, generator=g2), expected)


# ---- the augmentation the warm-start differentiates ---------------------------------------------------
def _grid_sample_translation(x, m, draws):
    """The translation as it was written before, with ``grid_sample`` (no deterministic CUDA backward)."""
    n = x.shape[0]
    t = draws.shift.to(x.dtype) * (2 * MAX_SHIFT) * m
    theta = torch.cat([torch.eye(2, dtype=x.dtype).expand(n, 2, 2), t.unsqueeze(-1)], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def test_the_translation_equals_grid_sample_in_value_and_hyper_gradient():
    x = torch.randn(8, 3, 12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    draws = sample_draws(8, torch.Generator().manual_seed(1), dtype=torch.float64)
    flat = draws.__class__(shift=draws.shift, brightness=torch.zeros(8, dtype=x.dtype),
                           contrast=torch.zeros(8, dtype=x.dtype))  # translation only
    for value in (0.3, 0.77, 1.0):
        m1, m2 = (torch.tensor(value, dtype=x.dtype, requires_grad=True) for _ in range(2))
        ours, ref = magnitude_augment(x, m1, flat), _grid_sample_translation(x, m2, flat)
        assert (ours - ref).abs().max() < 1e-12
        g1, g2 = torch.autograd.grad((ours * x).sum(), m1)[0], torch.autograd.grad((ref * x).sum(), m2)[0]
        assert abs(g1 - g2) <= 1e-10 * abs(g2) and abs(g2) > 1.0


# ---- the trials table, the report, the entry points ----------------------------------------------------
def _results(root: Path, deterministic: bool, n_gpus: int) -> Path:
    import pandas as pd

    from ohgw.results import write_study
    from ohgw.testing.synthetic_results import study_frames

    reports = pd.DataFrame({"trial_index": [0, 0], "epoch": [1, 2], "val_score": [0.5, 0.9], "wall_s": [1.0, 2.0],
                            "compute_s": [1.0, 2.0], "epoch_equiv": [1.0, 2.0]})
    for method, vanilla in (("asha", ""), ("asha+ohgw", "asha")):
        it, trials, studies = study_frames(reports, tau=0.8, vanilla_method=vanilla, n_gpus=n_gpus)
        trials["deterministic"] = deterministic
        write_study(root, "exp", method, 0, it, trials, studies)
    return root


@pytest.mark.parametrize(("deterministic", "n_gpus", "approximate"), [(False, 1, True), (True, 1, False),
                                                                       (False, 0, False)])
def test_the_report_says_pairs_are_approximate_when_gpu_trials_ran_without_determinism(
        tmp_path, deterministic, n_gpus, approximate):
    import warnings

    from ohgw.analysis import load_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = load_results(_results(tmp_path, deterministic, n_gpus))
    said = [w for w in res.warnings if w.startswith("pairs are approximate")]
    assert said == (["pairs are approximate: 2 trials ran on GPUs with deterministic false, so a trial and its "
                     "twin may differ from the first step, not only after the warm-start"] if approximate else [])


def _ssl_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ssl_asha_vs_ohgw", ROOT / "experiments" / "ssl_asha_vs_ohgw.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_study_script_refuses_a_cuda_preset_and_a_non_boolean_setting_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from ohgw.studies.cli import check_trial_device, main

    workload = _ssl_script().build_workload("byol")
    code = main("ssl_asha_vs_ohgw", workload, ["asha", "asha+ohgw"], "doc", ["--preset", "gpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "'cuda', but CUDA is not available here" in err
    assert list(tmp_path.iterdir()) == []
    check_trial_device({"device": "cuda"}, local=False)  # a cluster's GPU nodes may have it
    with pytest.raises(ValueError, match="^deterministic must be true or false, got 'yes'$"):
        check_trial_device({protocol.DETERMINISTIC_KEY: "yes"}, local=True)
    with pytest.raises(SystemExit) as e:
        main("ssl_asha_vs_ohgw", workload, ["asha"], "doc", ["--deterministic", "maybe"])
    assert e.value.code == 2 and "argument --deterministic: invalid choice: 'maybe'" in capsys.readouterr().err


@pytest.mark.parametrize(("module", "argv", "needle"), [
    ("trainables.ssl.train", ["--deterministic", "maybe"], "invalid true_or_false value: 'maybe'"),
    ("trainables.jepa.train", ["--values", "deterministic=maybe"], "deterministic must be True or False"),
    ("trainables.linear_byol.cli", ["train", "--deterministic", "maybe"], "invalid true_or_false value: 'maybe'"),
])
def test_family_clis_refuse_a_non_boolean_setting_in_one_line(module, argv, needle, tmp_path, monkeypatch, capsys):
    import importlib

    monkeypatch.chdir(tmp_path)
    try:
        code = importlib.import_module(module).main(argv)
    except SystemExit as e:  # argparse's one-line error
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and needle in err
    assert list(tmp_path.iterdir()) == []

"""GPU tests (marker ``gpu``): the CUDA paths of the trainables, run only where CUDA is available.

On a machine without CUDA they are deselected and one summary line counts them (``tests/conftest.py``);
``benchmarks/gpu_check.py`` runs them first on a GPU machine. The CPU-checkable parts of the same logic
(the setting, device resolution with CUDA faked, the CPU side of a checkpoint) are in
``tests/test_determinism.py``. Every test here applies the study's default, deterministic mode, as a
trial's :meth:`trainables.scaffold.Trial.start` does; the fixture restores torch's global flags.

- twins (same config, same seed) are bit-identical on CUDA: a classification trial with a warm-start of
  all five ψ, and an SSL (BYOL) trial;
- the CUDA fp32 hyper-gradient of the classification problem equals the CPU float64 reference for every ψ,
  within ``rtol`` 1e-3 of each component plus ``atol`` 1e-6 of the largest (TF32 off for this comparison;
  the ResNet-20 with SiLU, smooth, as every second-order check in this project);
- the bf16 autocast path of each family that has one (classification, SSL, the JEPA) trains 2 epochs with
  finite losses and a finite warm-start record; linear BYOL, which has no bf16 path (its 100×10 maps are
  written-out matrix products: :mod:`trainables.linear_byol.engine`), likewise in fp32 on CUDA
  (``tests/test_gpu_paths_on_cpu.py`` runs the JEPA's bf16 path on the CPU too);
- a checkpoint written on CUDA restores on the CPU, is written there again and restores on CUDA, and
  the next epoch equals the uninterrupted run's bit for bit;
- ``cuda``, ``cuda:0`` and ``auto`` resolve to the GPU; a trial that Ray gives a fractional GPU sees that
  GPU alone (``CUDA_VISIBLE_DEVICES``, as Ray sets it) as ``cuda:0``; an operation without a deterministic
  CUDA kernel raises instead of falling back.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

if torch.cuda.is_available():  # before this process first uses CUDA (deterministic cuBLAS needs it)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from ohgw import protocol  # noqa: E402
from ohgw.hypergrad import hypergradient  # noqa: E402
from ohgw.space import SearchSpace  # noqa: E402
from ohgw.warmstart import WarmStartSettings, make_instruction  # noqa: E402
from trainables import checks  # noqa: E402
from trainables.augment import AugDraws  # noqa: E402
from trainables.classification import ClassificationRun, data, make_problem  # noqa: E402
from trainables.scaffold import Trial, run_epochs  # noqa: E402

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[1]
EXACT = (protocol.TRAIN_LOSS, protocol.VAL_LOSS, "val_acc", "test_acc")


@pytest.fixture(autouse=True)
def _torch_flags():
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.allow_tf32)
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = saved[1:]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    """One behaviour-video cache for the SSL tests (written on first use)."""
    return str(tmp_path_factory.mktemp("ssl_video"))


def _classification(**extra) -> dict:
    return {"dataset": "digits", "batch_size": 64, "max_t": 2, "device": "cuda", protocol.SEED_KEY: 3, **extra}


def _ohgw(space: SearchSpace) -> dict:
    return make_instruction(space, WarmStartSettings(mode="hypergrad", batch_size=32))


def _exact(rows: list[dict]) -> list:
    """The values twins must share bit for bit: losses, accuracies, x, x′, g and the step taken."""
    ws = (protocol.X_PREFIX, protocol.X_PRIME_PREFIX, protocol.G_PREFIX, protocol.WS_PREFIX + "step_norm")
    return [[r[k] for k in EXACT] + [v for k, v in sorted(r.items()) if k.startswith(ws)] for r in rows]


# ---- twins --------------------------------------------------------------------------------------------------
def test_classification_twins_are_bit_identical_on_cuda():
    config = _classification(ohgw=_ohgw(SearchSpace.default()))
    a, b = run_epochs(ClassificationRun, config, 2), run_epochs(ClassificationRun, config, 2)
    assert a[0][protocol.DEVICE].startswith("cuda") and a[0][protocol.DETERMINISTIC] is True
    assert a[0][protocol.X_PRIME_PREFIX + "lr"] != a[0][protocol.X_PREFIX + "lr"]  # the warm-start ran
    assert _exact(a) == _exact(b)
    va, vb = run_epochs(ClassificationRun, _classification(), 2), run_epochs(ClassificationRun, _classification(), 2)
    assert _exact(va) == _exact(vb)  # vanilla twins too


def test_ssl_twins_are_bit_identical_on_cuda(video):
    from trainables.ssl.run import SSLRun

    config = {"method": "byol", "device": "cuda", "max_t": 2, "steps_per_epoch": 4, "cache_dir": video}
    a, b = run_epochs(SSLRun, config, 2), run_epochs(SSLRun, config, 2)
    keys = (protocol.TRAIN_LOSS, protocol.VAL_LOSS, "val_knn_acc")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


# ---- the hyper-gradient -------------------------------------------------------------------------------------
def test_cuda_fp32_hypergradient_matches_the_cpu_float64_reference_for_every_psi(monkeypatch):
    # the ResNet-20 with SiLU for ReLU: through ReLU's kinks fp32 rounding flips activations and the float64
    # reference differs by up to 13 % (aug_magnitude) on the CPU alone; with SiLU the CPU's fp32 is within 3e-4
    monkeypatch.setattr(F, "relu", F.silu)
    run = ClassificationRun({"max_t": 1, "device": "cpu"})
    (x, y, draws), (xv, yv) = data.warm_start_batches(run.data, 128, seed=0)(0)
    space = SearchSpace.default()
    ref = hypergradient(make_problem(copy.deepcopy(run.model).double(), nesterov=True), space, run.config,
                        [(x.double(), y, draws)], (xv.double(), yv)).g
    checks.set_determinism(True, "cuda")  # as in a study's trial: every op of the lookahead must have a kernel
    torch.backends.cudnn.allow_tf32 = False  # plain fp32 convolutions for this comparison
    dev = torch.device("cuda")
    on_gpu = AugDraws(*(t.to(dev) for t in (draws.shift, draws.brightness, draws.contrast)))
    got = hypergradient(make_problem(copy.deepcopy(run.model).to(dev), nesterov=True), space, run.config,
                        [(x.to(dev), y.to(dev), on_gpu)], (xv.to(dev), yv.to(dev))).g
    ref_t, got_t = torch.as_tensor(ref, dtype=torch.float64), torch.as_tensor(got, dtype=torch.float64)
    tol = 1e-3 * ref_t.abs() + 1e-6 * ref_t.abs().max()
    assert ((got_t - ref_t).abs() <= tol).all(), dict(zip(space.names, zip(got, ref)))


# ---- every family on CUDA, bf16 where it has it ---------------------------------------------------------------
def _families(video: str) -> dict:
    from trainables.jepa import search_space as jepa_space
    from trainables.jepa.run import JepaRun
    from trainables.linear_byol import search_space as linear_space
    from trainables.linear_byol.run import LinearBYOLRun
    from trainables.ssl import search_space as ssl_space
    from trainables.ssl.run import SSLRun

    return {
        "classification": (ClassificationRun, _classification(precision="bf16", ohgw=_ohgw(SearchSpace.default()))),
        "ssl": (SSLRun, {"method": "byol", "device": "cuda", "max_t": 2, "steps_per_epoch": 4, "precision": "bf16",
                         "cache_dir": video, "ohgw": _ohgw(ssl_space("byol"))}),
        "jepa": (JepaRun, {"model_type": "VICReg", "device": "cuda", "max_t": 2, "dataset_size": 128,
                           "precision": "bf16", "ohgw": _ohgw(jepa_space("VICReg"))}),
        "linear_byol": (LinearBYOLRun, {"device": "cuda", "max_t": 2, "ohgw": _ohgw(linear_space())}),
    }


@pytest.mark.parametrize("family", ["classification", "ssl", "jepa", "linear_byol"])
def test_each_family_trains_two_finite_epochs_on_cuda_with_a_finite_warm_start(family, video):
    factory, config = _families(video)[family]
    rows = run_epochs(factory, config, 2)
    assert len(rows) == 2 and all(r[protocol.DEVICE].startswith("cuda") for r in rows)
    assert all(math.isfinite(r[protocol.TRAIN_LOSS]) and not r[protocol.DIVERGED] for r in rows)
    record = {k: v for k, v in rows[0].items() if k.startswith((protocol.X_PRIME_PREFIX, protocol.G_PREFIX))}
    assert record and all(math.isfinite(v) for v in record.values()), record
    assert rows[0][protocol.WS_PREFIX + "nonfinite"] is False


# ---- checkpoints across devices ------------------------------------------------------------------------------
def test_a_checkpoint_moves_cuda_to_cpu_to_cuda_with_the_same_next_epoch(tmp_path):
    straight = run_epochs(ClassificationRun, _classification(), 2)
    run_epochs(ClassificationRun, _classification(), 1, save_to=tmp_path / "cuda")
    on_cpu = Trial.start(ClassificationRun, _classification(device="cpu"))
    on_cpu.restore(tmp_path / "cuda")
    assert all(p.device.type == "cpu" for p in on_cpu.run.model.parameters()) and on_cpu.run.epoch == 1
    on_cpu.save(tmp_path / "cpu")
    (resumed,) = run_epochs(ClassificationRun, _classification(), 1, restore_from=tmp_path / "cpu")
    assert _exact([resumed]) == _exact(straight[1:])


# ---- devices ----------------------------------------------------------------------------------------------
def test_cuda_cuda0_and_auto_resolve_to_the_gpu():
    assert checks.resolve_device("cuda").type == "cuda"
    assert checks.resolve_device("cuda:0") == torch.device("cuda", 0)
    assert checks.resolve_device("auto").type == "cuda"
    (r,) = run_epochs(ClassificationRun, _classification(device="auto", max_t=1), 1)
    assert r[protocol.DEVICE].startswith("cuda")


_FRACTIONAL = """
import sys
from trainables import checks
from trainables.classification import ClassificationRun
from trainables.scaffold import run_epochs
(r,) = run_epochs(ClassificationRun, {"dataset": "digits", "max_t": 1, "device": "cuda:0"}, 1)
print(r["device"], checks.resolve_device("cuda"))
try:
    checks.resolve_device("cuda:1")
except ValueError as e:
    print(e)
"""


def test_a_trial_given_a_fractional_gpu_sees_that_gpu_as_cuda0():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible, "PYTHONPATH": str(ROOT)}  # what Ray sets for 0.25 GPU
    env.pop("CUBLAS_WORKSPACE_CONFIG", None)  # the trial's own process sets it (Trial.start)
    done = subprocess.run([sys.executable, "-c", _FRACTIONAL], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert first.split() == ["cuda:0", "cuda"]
    assert second == f"device 'cuda:1' asked for, but 1 CUDA device(s) are visible (CUDA_VISIBLE_DEVICES={visible})"


def test_an_operation_without_a_deterministic_cuda_kernel_raises():
    checks.set_determinism(True, "cuda")
    x = torch.randn(2, 1, 4, 4, device="cuda")
    grid = torch.zeros(2, 4, 4, 2, device="cuda", requires_grad=True)
    with pytest.raises(RuntimeError, match="deterministic"):
        F.grid_sample(x, grid, align_corners=False).sum().backward()

"""YAHPO Gym's LCBench surrogate: an ONNX network that predicts a learning curve from a config.

The model, its encoding and their licences are in ``data/`` beside this module (``FACTS.md``
there is the fact sheet: origin, encoding rules, output order, reference table, licence). The
caller transforms nothing: inputs are raw values (``x_cont`` in :data:`INPUT_ORDER`, the task
as its integer code in ``x_cat``); all scaling is inside the graph. Outputs are
:data:`OUTPUT_ORDER`; ``val_accuracy`` is in PERCENT, the balanced accuracies are fractions.

The run evaluates each curve alone, as one batch of its 52 epochs (:func:`curve`), so its
values never depend on other configs' (:func:`curves` batches several, for speed). One :class:`onnxruntime.InferenceSession`
per process (one intra-op thread: a trial holds one CPU), made on first use (0.1-0.4 s).

>>> c = curve(3945, DEFAULTS)
>>> c.shape, round(float(c[51, OUTPUT_ORDER.index("val_accuracy")]), 2)
((52, 6), 93.4)
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_FILE = DATA_DIR / "model.onnx"
MAX_EPOCH = 52  # the surrogate's fidelity: integer epochs 1..52
# x_cont's column order (NOT config_space.json's alphabetical one)
INPUT_ORDER = (
    "epoch",
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "num_layers",
    "max_units",
    "max_dropout",
)
OUTPUT_ORDER = (
    "time",
    "val_accuracy",
    "val_cross_entropy",
    "val_balanced_accuracy",
    "test_cross_entropy",
    "test_balanced_accuracy",
)
# config_space.json's ranges of the surrogate's hyper-parameters (epoch excluded)
RANGES: dict[str, tuple[float, float]] = {
    "batch_size": (16, 512),
    "learning_rate": (1e-4, 1e-1),
    "momentum": (0.1, 0.99),
    "weight_decay": (1e-5, 1e-1),
    "num_layers": (1, 5),
    "max_units": (64, 1024),
    "max_dropout": (0.0, 1.0),
}
INTEGER = ("batch_size", "num_layers", "max_units")
# config_space.json's defaults (and its default task, 3945)
DEFAULTS: dict[str, float] = {
    "batch_size": 91,
    "learning_rate": 0.0031622777,
    "momentum": 0.545,
    "weight_decay": 0.050005,
    "num_layers": 3,
    "max_units": 256,
    "max_dropout": 0.5,
}


@functools.cache
def task_codes() -> dict[int, int]:
    """OpenML task id → x_cat code, for the 34 valid tasks (``instances.csv``; codes from ``encoding.json``)."""
    with open(DATA_DIR / "encoding.json") as f:
        codes = json.load(f)["OpenML_task_id"]
    with open(DATA_DIR / "instances.csv", newline="") as f:
        ids = [row["OpenML_task_id"] for row in csv.DictReader(f)]
    return {int(i): int(codes[i]) for i in ids}


@functools.cache
def session():
    """The process's inference session (one thread, CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODEL_FILE), opts, providers=["CPUExecutionProvider"])


def check(task_id: int, hp: Mapping[str, float]) -> None:
    """ValueError for an unknown task or a value outside config_space.json's range."""
    if task_id not in task_codes():
        raise ValueError(f"task_id must be one of LCBench's 34 OpenML task ids {sorted(task_codes())}, got {task_id!r}")
    for name, (lo, hi) in RANGES.items():
        v = hp[name]
        if not (lo <= v <= hi):
            raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {v!r}")
        if name in INTEGER and float(v) != int(v):
            raise ValueError(f"{name} must be an integer, got {v!r}")


def predict(task_id: int, rows: np.ndarray) -> np.ndarray:
    """Raw outputs (N × 6, :data:`OUTPUT_ORDER`, float64) for x_cont ``rows`` (N × 8, :data:`INPUT_ORDER`)."""
    x = np.ascontiguousarray(rows, dtype=np.float32)
    code = np.full((len(x), 1), task_codes()[task_id], dtype=np.int32)
    (out,) = session().run(["output"], {"x_cat": code, "x_cont": x})
    return out.astype(np.float64)


def rows_for(hp_list: list[Mapping[str, float]]) -> np.ndarray:
    """x_cont rows of whole curves: 52 per config, epochs 1..52."""
    epochs = np.arange(1, MAX_EPOCH + 1, dtype=np.float64)
    blocks = []
    for hp in hp_list:
        block = np.empty((MAX_EPOCH, len(INPUT_ORDER)))
        block[:, 0] = epochs
        for j, name in enumerate(INPUT_ORDER[1:], start=1):
            block[:, j] = float(hp[name])
        blocks.append(block)
    return np.concatenate(blocks)


def curves(task_id: int, hp_list: list[Mapping[str, float]]) -> np.ndarray:
    """The whole curves (K × 52 × 6) of K configs of one task: one ONNX call."""
    for hp in hp_list:
        check(task_id, hp)
    return predict(task_id, rows_for(hp_list)).reshape(len(hp_list), MAX_EPOCH, len(OUTPUT_ORDER))


def curve(task_id: int, hp: Mapping[str, float]) -> np.ndarray:
    """One config's curve (52 × 6): row e−1 is epoch e."""
    return curves(task_id, [hp])[0]

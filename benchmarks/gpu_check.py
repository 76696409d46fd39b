"""One prepared device check: GPU tests, P2 epoch time, packing, P3 warm-start cost, SSL steps/s; no Ray.

    python3 benchmarks/gpu_check.py                         # one CUDA GPU: every stage, <= 8 min by design
    python3 benchmarks/gpu_check.py --device cpu --quick    # the same code paths at tiny sizes (the test suite)

It needs only torch and this project's code (no Ray anywhere in its imports), and drives the trainables
through :class:`trainables.scaffold.Trial` / :func:`trainables.scaffold.run_epochs`, as a study's trial
does. Each stage runs in its own process with its own time limit (:data:`STAGES`), so one that hangs or
crashes is reported as such and the others still run (a hung one is killed with every process it started).
On CUDA each stage is a fresh interpreter (a process that has used CUDA cannot be forked, and a hung CUDA
call is only safely ended with its process). On the CPU each stage is forked from the driver, which has
imported torch, ``torch._dynamo`` (the first ``torch.optim`` optimizer imports it), the trainables and
pytest once and has run no torch operation: the quick check then pays those imports once, not once per stage.

1. ``gpu_tests``: ``pytest -m gpu tests/test_gpu.py``, in the stage's process (on a machine without CUDA:
   none run, one line says so);
2. ``p2``: ResNet-20 epoch on a CIFAR-shaped synthetic set (50,000 images of 3×32×32, batch 128; the
   second of two epochs is timed, training only). First a plain PyTorch loop (``DataLoader`` over
   host tensors, per-image crop and flip, fp32, NCHW), then the trainable's own path, one effect at a time:
   GPU-resident data with batched augmentation; + channels_last; + bf16 autocast; each with deterministic
   mode off, then the last one with it on (the study's default), which gives the cost of deterministic mode;
3. ``packing``: N = 1, 2, 4, 8 trial processes at once on the one device (10,000 images each, the study's
   defaults), started together after a warm-up epoch: aggregate images/s over the common window and each
   process's peak GPU memory (CPU: peak RSS);
4. ``p3``: the warm-start of all five ψ of the classification problem (after one untimed warm-start in
   the same process) as a percentage of one measured epoch (training only) of the same trial;
5. ``ssl``: training steps/s of BYOL and temporal SimCLR (the SSL family), the VICReg JEPA and linear BYOL,
   at their defaults for the device, the second of two epochs.

Writes ``gpu_check.json`` (every stage's fields, :data:`FIELDS`) and ``gpu_check.md`` (one table, with the
goals) into ``--out``, and prints the table. ``--device cuda`` where CUDA is not available: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# stage → (time limit in seconds on a GPU, with --quick); the GPU limits add up to 8 minutes. The quick limits
# only guard against a hang: a quick stage takes seconds on an idle CPU, but a shared test machine can be slow
STAGES: dict[str, tuple[int, int]] = {
    "gpu_tests": (110, 180),
    "p2": (110, 180),
    "packing": (110, 180),
    "p3": (60, 180),
    "ssl": (90, 180),
}
# the fields every stage's record holds (besides status, wall_s and limit_s); the test checks them all
FIELDS: dict[str, tuple[str, ...]] = {
    "gpu_tests": ("passed", "failed", "not_run", "summary"),
    "p2": ("images", "batch_size", "loader_workers", "plain_loader_fp32_nchw_s", "device_fp32_nchw_s",
           "device_fp32_cl_s", "device_bf16_cl_s", "device_bf16_cl_deterministic_s", "deterministic_cost_pct"),
    "packing": ("images_per_process", "n", "aggregate_images_per_s", "speedup_vs_1", "peak_mem_mib", "mem_kind"),
    "p3": ("psi", "ws_cold_s", "ws_s", "epoch_train_s", "ws_pct_of_epoch"),
    "ssl": ("byol_steps_per_s", "simclr_temporal_steps_per_s", "jepa_vicreg_steps_per_s",
            "linear_byol_steps_per_s"),
}
# sizes: full (the issue's) and --quick (seconds on a CPU)
# (quick: one training step per epoch, so every measured pass runs the code path once)
SIZES = {
    False: {"p2_images": 50_000, "eval_images": 512, "batch": 128, "workers": 4, "pack_images": 10_000,
            "pack_n": (1, 2, 4, 8), "ssl_steps": 50, "jepa_sequences": 2048},
    True: {"p2_images": 4, "eval_images": 4, "batch": 4, "workers": 0, "pack_images": 4, "pack_n": (1, 2),
           "ssl_steps": 1, "jepa_sequences": 32},
}
GOALS = {"p2_epoch_s": 0.75, "packing_speedup_8": 4.0, "p3_pct": 1.0}


# ---- helpers run inside a stage's process --------------------------------------------------------------------
def _synthetic(images: int, eval_images: int) -> None:
    """The classification family's synthetic set at ``images`` training images (a CIFAR-shaped stand-in)."""
    from trainables.classification import data

    data.SYNTHETIC_SIZES = (images, eval_images, eval_images)
    data.clear_cache()


def _classification_config(device: str, sz: dict, **extra) -> dict:
    return {"dataset": "synthetic", "batch_size": sz["batch"], "max_t": 2, "device": device, "seed": 0, **extra}


def _second_epoch_s(factory, config: dict) -> float:
    """Training seconds of a trial's second epoch (the first, with its evaluation, pays for kernel selection
    and allocation), synchronised on CUDA."""
    from trainables.scaffold import Trial

    trial = Trial.start(factory, config)
    trial.step()
    _sync(trial.run.device)
    t0 = time.perf_counter()
    trial.run.train_pass()
    _sync(trial.run.device)
    return time.perf_counter() - t0


def _plain_epoch_s(device: str, sz: dict) -> float:
    """The plain PyTorch loop: DataLoader over host tensors, per-image crop + flip, fp32, NCHW; 2nd epoch timed."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    from trainables.classification.data import load_dataset
    from trainables.nets import resnet20

    d = load_dataset("synthetic", None, False, 0)

    class CropFlip(Dataset):
        def __init__(self, x, y):
            self.x, self.y = F.pad(x, (4, 4, 4, 4)), y

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            dy, dx = torch.randint(0, 9, (2,)).tolist()
            img = self.x[i, :, dy:dy + 32, dx:dx + 32]
            return (img.flip(-1) if torch.rand(()) < 0.5 else img), self.y[i]

    dev = torch.device(device)
    torch.manual_seed(0)
    model = resnet20(10, 3, 1).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DataLoader(CropFlip(d.train_x, d.train_y), batch_size=sz["batch"], shuffle=True, drop_last=True,
                        num_workers=sz["workers"], pin_memory=dev.type == "cuda")
    seconds = 0.0
    for _ in range(2):
        _sync(dev)
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(dev)
        seconds = time.perf_counter() - t0
    return seconds


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# ---- the stages (each returns its record's fields) ----------------------------------------------------------
def stage_gpu_tests(device: str, quick: bool) -> dict:
    """``pytest -m gpu tests/test_gpu.py`` in this (the stage's own) process; its console text is parsed."""
    import contextlib
    import io
    import re

    import pytest

    args = ["-m", "gpu", "-q", "-o", "addopts=", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
            str(ROOT / "tests" / "test_gpu.py")]
    text = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(text):
            code = int(pytest.main(args))
    finally:
        os.chdir(cwd)
    out = text.getvalue()
    lines = [ln for ln in out.splitlines() if ln.strip()]
    last = lines[-1] if lines else "(no output)"

    def count(word: str) -> int:
        m = re.search(rf"(\d+) {word}", out)
        return int(m.group(1)) if m else 0

    not_run = [ln for ln in lines if "GPU tests not run" in ln]
    if code not in (0, 1, 5):  # 5: no test ran (all deselected, no CUDA)
        raise RuntimeError(f"pytest exit status {code}: {last}")
    return {"passed": count("passed"), "failed": count("failed") + count("error"),
            "not_run": int(not_run[0].split()[0]) if not_run else 0, "summary": "; ".join([*not_run, last])}


def stage_p2(device: str, quick: bool) -> dict:
    from trainables.classification import ClassificationRun

    sz = SIZES[quick]
    _synthetic(sz["p2_images"], sz["eval_images"])
    out = {"images": sz["p2_images"], "batch_size": sz["batch"], "loader_workers": sz["workers"],
           "plain_loader_fp32_nchw_s": _plain_epoch_s(device, sz)}
    chain = {"device_fp32_nchw_s": {"channels_last": False, "precision": "fp32", "deterministic": False},
             "device_fp32_cl_s": {"channels_last": True, "precision": "fp32", "deterministic": False},
             "device_bf16_cl_s": {"channels_last": True, "precision": "bf16", "deterministic": False},
             "device_bf16_cl_deterministic_s": {"channels_last": True, "precision": "bf16", "deterministic": True}}
    for name, extra in chain.items():
        out[name] = _second_epoch_s(ClassificationRun, _classification_config(device, sz, **extra))
    out["deterministic_cost_pct"] = 100 * (out["device_bf16_cl_deterministic_s"] / out["device_bf16_cl_s"] - 1)
    return out


def _pack_worker(device: str, quick: bool, threads: int, barrier, queue) -> None:
    import resource

    import torch

    from trainables.classification import ClassificationRun
    from trainables.scaffold import Trial

    torch.set_num_threads(1 if quick else threads)
    sz = SIZES[quick]
    _synthetic(sz["pack_images"], sz["eval_images"])
    trial = Trial.start(ClassificationRun, _classification_config(device, sz))  # the study's defaults
    trial.step()  # warm-up epoch
    _sync(device)
    barrier.wait()
    t0 = time.time()
    trial.run.train_pass()  # one more training epoch (no evaluation, no report)
    _sync(device)
    t1 = time.time()
    images = len(trial.run.data.train_y) // sz["batch"] * sz["batch"]
    if torch.device(device).type == "cuda":
        mem = torch.cuda.max_memory_reserved(device) / 2**20
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((t0, t1, images, mem))


def stage_packing(device: str, quick: bool) -> dict:
    import multiprocessing as mp

    sz = SIZES[quick]
    if torch_device_type(device) == "cpu":  # this process has imported everything and run no torch operation
        ctx = mp.get_context("fork")
    else:  # CUDA cannot be forked from a process that uses it; the server never does
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "trainables.classification", "trainables.scaffold"])  # imported once
    rates, speedups, mems = [], [], []
    for n in sz["pack_n"]:
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        threads = max(1, (os.cpu_count() or 1) // n)
        procs = [ctx.Process(target=_pack_worker, args=(device, quick, threads, barrier, queue)) for _ in range(n)]
        for p in procs:
            p.start()
        got = [queue.get(timeout=STAGES["packing"][quick]) for _ in range(n)]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"a packed trial process (N = {n}) exited with status {p.exitcode}")
        window = max(g[1] for g in got) - min(g[0] for g in got)
        rates.append(sum(g[2] for g in got) / window)
        speedups.append(rates[-1] / rates[0])
        mems.append(max(g[3] for g in got))
    return {"images_per_process": sz["pack_images"], "n": list(sz["pack_n"]), "aggregate_images_per_s": rates,
            "speedup_vs_1": speedups, "peak_mem_mib": mems,
            "mem_kind": "torch max_memory_reserved per process" if device.startswith("cuda") else "peak RSS per process"}


def stage_p3(device: str, quick: bool) -> dict:
    from ohgw import protocol
    from ohgw.space import SearchSpace
    from ohgw.warmstart import WarmStartSettings, make_instruction
    from trainables.classification import ClassificationRun
    from trainables.scaffold import Trial

    sz = SIZES[quick]
    _synthetic(sz["p2_images"], sz["eval_images"])
    space = SearchSpace.default()
    config = _classification_config(device, sz, ohgw=make_instruction(space, WarmStartSettings(mode="hypergrad")))
    cold = Trial.start(ClassificationRun, config).run.warm_start()  # first use of the lookahead's kernels
    trial = Trial.start(ClassificationRun, config)
    ws = trial.step()[protocol.WS_COMPUTE_S]  # the warm-start, then epoch 1
    _sync(trial.run.device)
    t0 = time.perf_counter()
    trial.run.train_pass()
    _sync(trial.run.device)
    epoch = time.perf_counter() - t0
    return {"psi": list(space.names), "ws_cold_s": float(cold.compute_s), "ws_s": ws, "epoch_train_s": epoch,
            "ws_pct_of_epoch": 100 * ws / epoch}


def _steps_per_s(factory, config: dict) -> float:
    from ohgw import protocol
    from trainables.scaffold import Trial

    trial = Trial.start(factory, config)
    trial.step()
    report = trial.step()
    return report[protocol.SAMPLES_PER_S] / trial.run.config["batch_size"]


def stage_ssl(device: str, quick: bool) -> dict:
    from trainables.jepa.run import JepaRun
    from trainables.linear_byol.run import LinearBYOLRun
    from trainables.ssl.run import SSLRun

    sz = SIZES[quick]
    ssl = {"device": device, "max_t": 2, "steps_per_epoch": sz["ssl_steps"]}
    if quick:  # a small behaviour video (written on first use) and batch
        ssl.update(batch_size=16, video_clips=6, video_frames=40)
    jepa = {"model_type": "VICReg", "device": device, "max_t": 2, "dataset_size": sz["jepa_sequences"]}
    if quick:
        jepa.update(batch_size=8, probe_size=16, val_size=8, test_size=8, embedding_dim=16, predictor_hidden=16)
    linear = {"device": device, "max_t": 2, **({"samples_per_epoch": 256} if quick else {})}
    return {"byol_steps_per_s": _steps_per_s(SSLRun, {**ssl, "method": "byol"}),
            "simclr_temporal_steps_per_s": _steps_per_s(SSLRun, {**ssl, "method": "simclr-temporal"}),
            "jepa_vicreg_steps_per_s": _steps_per_s(JepaRun, jepa),
            "linear_byol_steps_per_s": _steps_per_s(LinearBYOLRun, linear)}


STAGE_FUNCTIONS = {"gpu_tests": stage_gpu_tests, "p2": stage_p2, "packing": stage_packing, "p3": stage_p3,
                   "ssl": stage_ssl}


# ---- the driver ---------------------------------------------------------------------------------------------
def torch_device_type(device: str) -> str:
    """``cpu`` or ``cuda`` of a resolved device name, without touching CUDA (a forked stage must not inherit it)."""
    return device.split(":")[0]


def header(argv: list[str]) -> str:
    """The header every benchmark prints (:func:`benchmarks._machine.run_header`: the exact command line and
    the versions), plus the CUDA that torch was built with."""
    import torch

    from benchmarks._machine import run_header

    return f"{run_header(__file__, argv)}, CUDA {torch.version.cuda or '-'}"


def warm_imports() -> None:
    """What the stages import, imported once in the driver before it forks them (CPU only; no torch operation)."""
    import contextlib

    import torch._dynamo  # noqa: F401  (the first torch.optim optimizer imports it: seconds)

    import ohgw.warmstart  # noqa: F401
    import trainables.classification  # noqa: F401
    import trainables.jepa.run  # noqa: F401
    import trainables.linear_byol.run  # noqa: F401
    import trainables.scaffold  # noqa: F401
    import trainables.ssl.run  # noqa: F401

    with contextlib.suppress(ImportError):  # the gpu_tests stage reports its absence itself
        import pytest  # noqa: F401


def _run_here(name: str, device: str, quick: bool, result: str) -> None:
    """Run one stage in this process and write its fields to ``result`` (JSON)."""
    if quick:
        import torch

        torch.set_num_threads(1)  # tiny sizes: threads only contend
    fields = STAGE_FUNCTIONS[name](device, quick)
    Path(result).write_text(json.dumps(fields))


def _forked_stage(name: str, device: str, quick: bool, result: str, log: str) -> None:
    """A forked stage: a session of its own (so a hang is killed with its children), its output to ``log``."""
    os.setsid()
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (Python's streams onto the log too)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    _run_here(name, device, quick, result)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the stage's session: its packed trials too
    except ProcessLookupError:  # not yet its own group leader
        os.kill(pid, signal.SIGKILL)


def run_stage(name: str, device: str, quick: bool) -> dict:
    """One stage in its own process, under its time limit: its record (status ok / failed / timeout).

    On the CPU the process is forked from this one (:func:`warm_imports` done); on CUDA it is a fresh
    interpreter. Either way it leads a session of its own, and a hung one is killed with all it started.
    """
    limit = STAGES[name][quick]
    with tempfile.TemporaryDirectory() as tmp:
        result, log = Path(tmp) / "stage.json", Path(tmp) / "stage.log"
        t0 = time.perf_counter()
        if torch_device_type(device) == "cpu":
            import multiprocessing as mp

            proc = mp.get_context("fork").Process(target=_forked_stage,
                                                  args=(name, device, quick, str(result), str(log)))
            proc.start()
            proc.join(limit)
            if proc.is_alive():
                _kill_group(proc.pid)
                proc.join()
                return {"status": "timeout", "wall_s": time.perf_counter() - t0, "limit_s": limit}
            code, err = proc.exitcode, log.read_text(errors="replace") if log.is_file() else ""
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--device", device,
                   "--stage-result", str(result), *(["--quick"] if quick else [])]
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            try:
                _, err = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.communicate()
                return {"status": "timeout", "wall_s": time.perf_counter() - t0, "limit_s": limit}
            code = proc.returncode
        wall = time.perf_counter() - t0
        if code != 0 or not result.is_file():
            last = (err.strip().splitlines() or [f"exit status {code}, no output"])[-1]
            return {"status": "failed", "error": last, "wall_s": wall, "limit_s": limit}
        return {"status": "ok", **json.loads(result.read_text()), "wall_s": wall, "limit_s": limit}


def _fmt(v, digits: int = 3) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x, digits) for x in v)
    return str(v)


def table(record: dict) -> str:
    """The markdown table of a check's record: one row per measured field, goals where the issue sets one
    (judged only for a full-size run on a GPU: the goals are for one H100)."""
    judged = not record["quick"] and record["device"].startswith("cuda")

    def _met(value: float, goal: float, at_most: bool) -> str:
        if not judged:
            return "not judged (quick sizes or no GPU)"
        if not isinstance(value, (int, float)) or math.isnan(value):
            return "unmeasured"
        return "met" if (value <= goal if at_most else value >= goal) else "not met"

    rows = ["| stage | field | value | goal |", "|---|---|---|---|"]
    for name in STAGES:
        st = record["stages"][name]
        if st["status"] != "ok":
            rows.append(f"| {name} | status | {st['status']}: {st.get('error', '')} (limit {st['limit_s']} s) | |")
            continue
        for f in FIELDS[name]:
            goal = ""
            if name == "p2" and f == "device_bf16_cl_deterministic_s":
                goal = f"<= {GOALS['p2_epoch_s']} s: {_met(st[f], GOALS['p2_epoch_s'], True)}"
            if name == "p3" and f == "ws_pct_of_epoch":
                goal = f"<= {GOALS['p3_pct']} %: {_met(st[f], GOALS['p3_pct'], True)}"
            if name == "packing" and f == "speedup_vs_1" and 8 in st["n"]:
                goal = f">= {GOALS['packing_speedup_8']}x at N = 8: {_met(st[f][-1], GOALS['packing_speedup_8'], False)}"
            rows.append(f"| {name} | {f} | {_fmt(st[f])} | {goal} |")
        rows.append(f"| {name} | wall_s | {st['wall_s']:.1f} (limit {st['limit_s']}) | |")
    return "\n".join(rows)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: the same code paths in seconds")
    p.add_argument("--out", default="results/gpu_check", help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)  # internal: run one stage here
    p.add_argument("--stage-result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.stage:  # inside a stage's own process (CUDA)
        _run_here(args.stage, args.device, args.quick, args.stage_result)
        return 0
    import torch

    from ohgw.results import atomic_path
    from trainables.checks import resolve_device

    try:
        device = str(resolve_device(args.device))
    except ValueError as e:
        print(f"gpu_check.py: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"gpu_check.py: error: --out {str(out)!r} is a file; give a folder", file=sys.stderr)
        return 2
    head = header(argv)
    print(head, flush=True)
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else ""
    if torch_device_type(device) == "cpu":
        warm_imports()
    record = {"command": head.splitlines()[0][len("# command: "):], "versions": head.splitlines()[1][len("# versions: "):],
              "device": device, "gpu_name": gpu, "quick": args.quick,
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "goals": GOALS, "stages": {}}
    t0 = time.perf_counter()
    for name in STAGES:
        print(f"{name} (limit {STAGES[name][args.quick]} s) ...", flush=True)
        record["stages"][name] = st = run_stage(name, device, args.quick)
        print(f"{name}: {st['status']} in {st['wall_s']:.1f} s" + (f": {st['error']}" if "error" in st else ""),
              flush=True)
    record["total_s"] = time.perf_counter() - t0
    md = (f"GPU check on {gpu or device}, {record['date_utc']} UTC ({'quick sizes' if args.quick else 'full sizes'}; "
          f"{record['total_s']:.0f} s)\n\n{table(record)}\n")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "gpu_check.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    with atomic_path(out / "gpu_check.md") as tmp:
        tmp.write_text(md)
    print(md + f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0 if all(s["status"] == "ok" for s in record["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

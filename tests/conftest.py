"""One local Ray for the test modules that ask for it, shared by them instead of one per module.

Starting and stopping a local Ray costs about 6 s on 2 cores; a Ray per module cost the suite
about 100 s. The modules that request :func:`ray_local` (directly or through a fixture of theirs)
run one after another (:func:`pytest_collection_modifyitems`) and share one Ray; every other
module starts without a Ray, as before (:func:`_no_shared_ray_unless_asked`), so that a test that
starts its own (a runner with a dashboard, a test cluster) gets a fresh one.

``make test`` runs the suite on 2 pytest-xdist workers, a whole module per worker (``--dist loadfile
--no-loadscope-reorder``): each worker is a session of its own, with its own shared Ray, and takes the
next module in the order sorted here as it frees up.
"""

import pytest

_SHARED = {"up": False}  # whether the Ray that is up is the shared one of ray_local
_RAY_MODULES: set[str] = set()  # test files whose tests request ray_local


def _shutdown_shared() -> None:
    if not _SHARED["up"]:
        return  # nothing to shut down: no Ray import either (a GPU machine running -m gpu may have no Ray)
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _SHARED["up"] = False


# The slowest modules (each 30-110 s on 2 cores), started first within their group so that on 2 xdist
# workers no long module starts last while the other worker has nothing left to do. A dispatch order only:
# a stale list costs time, never a result.
LONG_MODULES = ("test_cluster_ns", "test_study_resume", "test_slurm", "test_jepa", "test_classification",
                "test_user_integration", "test_study_harness", "test_studies_console",
                "test_runner_placement", "test_pasha_tune", "test_studies_disk", "test_dyhpo_tune")


def _order(item) -> tuple[bool, int]:
    stem = item.path.stem
    return str(item.path) not in _RAY_MODULES, LONG_MODULES.index(stem) if stem in LONG_MODULES else len(LONG_MODULES)


def pytest_collection_modifyitems(session, config, items):
    """The modules that use the shared Ray first, one after another; within each group, the slow modules of
    :data:`LONG_MODULES` first; the order is otherwise kept (the sort is stable)."""
    _RAY_MODULES.clear()
    _RAY_MODULES.update(str(it.path) for it in items if "ray_local" in getattr(it, "fixturenames", ()))
    items.sort(key=_order)


def pytest_sessionfinish(session, exitstatus):
    _shutdown_shared()


@pytest.fixture(scope="module", autouse=True)
def _no_shared_ray_unless_asked(request):
    if str(request.path) not in _RAY_MODULES:
        _shutdown_shared()
    yield


@pytest.fixture(scope="module")
def ray_local(request):
    """A local Ray (2 CPUs, no dashboard), shared by the modules that ask for it (module doc).

    Ray workers cannot import test modules, so the requesting module's own functions
    (trainables defined in the test) are shipped to them by value.
    """
    import ray

    if not (_SHARED["up"] and ray.is_initialized()):
        if ray.is_initialized():  # a module's own Ray, left up
            ray.shutdown()
        from ohgw.studies.ray_session import start_local_ray  # tried again if a busy machine made it time out

        start_local_ray(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        _SHARED["up"] = True
    ray.cloudpickle.register_pickle_by_value(request.module)
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(request.module)


# ---- GPU tests (marker ``gpu``): they run where CUDA is; elsewhere they are deselected, and one summary line
# says how many did not run (the suite's only tests that do not run everywhere) ----------------------------
class _GpuTests:
    """A plugin of its own (registered in :func:`pytest_configure`), so it can run after ``-m`` has selected.

    Under pytest-xdist (``make test`` runs 2 workers) the workers collect and deselect; each sends its count
    to the controller (``workeroutput``), which prints the line. Every worker collects the same tests, so the
    controller keeps the largest count, not the sum.
    """

    def __init__(self) -> None:
        self.not_run = 0

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        gpu = [it for it in items if it.get_closest_marker("gpu")]
        if not gpu:
            return
        import torch

        if torch.cuda.is_available():
            return
        self.not_run = len(gpu)
        config.hook.pytest_deselected(items=gpu)
        items[:] = [it for it in items if not it.get_closest_marker("gpu")]

    @pytest.hookimpl(tryfirst=True)  # before xdist's worker sends its workeroutput
    def pytest_sessionfinish(self, session):
        workeroutput = getattr(session.config, "workeroutput", None)  # set on an xdist worker only
        if workeroutput is not None:
            workeroutput["ohgw_gpu_not_run"] = self.not_run

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):  # xdist's controller: a worker has finished
        self.not_run = max(self.not_run, getattr(node, "workeroutput", {}).get("ohgw_gpu_not_run", 0))

    def pytest_terminal_summary(self, terminalreporter):
        if self.not_run:
            terminalreporter.write_line(f"{self.not_run} GPU tests not run: CUDA is not available here "
                                        "(on a machine with CUDA: pytest -m gpu)", yellow=True)


def pytest_configure(config):
    config.pluginmanager.register(_GpuTests(), "ohgw_gpu_tests")

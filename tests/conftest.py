"""One local Ray for the test modules that ask for it, shared by them instead of one per module.

Starting and stopping a local Ray costs about 6 s on 2 cores; a Ray per module cost the suite
about 100 s. The modules that request :func:`ray_local` (directly or through a fixture of theirs)
run one after another (:func:`pytest_collection_modifyitems`) and share one Ray; every other
module starts without a Ray, as before (:func:`_no_shared_ray_unless_asked`), so that a test that
starts its own (a runner with a dashboard, a test cluster) gets a fresh one.
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


def pytest_collection_modifyitems(session, config, items):
    """The modules that use the shared Ray first, one after another; the order is otherwise kept."""
    _RAY_MODULES.clear()
    _RAY_MODULES.update(str(it.path) for it in items if "ray_local" in getattr(it, "fixturenames", ()))
    items.sort(key=lambda it: str(it.path) not in _RAY_MODULES)  # stable: each group keeps its order


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
    """A plugin of its own (registered in :func:`pytest_configure`), so it can run after ``-m`` has selected."""

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

    def pytest_terminal_summary(self, terminalreporter):
        if self.not_run:
            terminalreporter.write_line(f"{self.not_run} GPU tests not run: CUDA is not available here "
                                        "(on a machine with CUDA: pytest -m gpu)", yellow=True)


def pytest_configure(config):
    config.pluginmanager.register(_GpuTests(), "ohgw_gpu_tests")

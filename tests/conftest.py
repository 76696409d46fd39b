import pytest


@pytest.fixture(scope="module")
def ray_local(request):
    """One local Ray (2 CPUs, no dashboard) for the tests of one module; shut down after it.

    Ray workers cannot import test modules, so the requesting module's own functions
    (trainables defined in the test) are shipped to them by value.
    """
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.cloudpickle.register_pickle_by_value(request.module)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(request.module)

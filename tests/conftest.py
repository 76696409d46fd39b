import pytest


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray (2 CPUs, no dashboard) for the tests of one module; shut down after it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()

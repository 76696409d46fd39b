"""A local Ray's start-up is tried again where a busy machine made it time out (ohgw.studies.ray_session).

Ray's own ``ray.init`` stands in here for a start that fails the way it does at a load of 20 on 2 cores
(the raylet's fixed wait for its dashboard agent runs out); the retry logic around it is the real one.
"""

from __future__ import annotations

import logging

import pytest
import ray

from ohgw.studies import ray_session

TIMEOUT = "Failed to start the raylet: Timed out waiting for file /tmp/ray/session_x/metrics_agent_port_1\nmore"


def _init_failing(n_failures: int, calls: list):
    def init(**kwargs):
        calls.append(kwargs)
        if len(calls) <= n_failures:
            raise Exception(TIMEOUT)  # noqa: TRY002 - what Ray raises
        return "context"

    return init


def test_a_start_that_times_out_twice_is_tried_again_and_logged_once_per_failure(monkeypatch, caplog):
    calls: list = []
    monkeypatch.setattr(ray, "init", _init_failing(2, calls))
    with caplog.at_level(logging.WARNING, logger="ohgw.studies.ray_session"):
        assert ray_session.start_local_ray(num_cpus=2, include_dashboard=False) == "context"
    assert calls == [{"address": "local", "num_cpus": 2, "include_dashboard": False}] * 3
    assert [r.getMessage() for r in caplog.records] == [
        f"starting a local Ray failed (try {k} of 3: {TIMEOUT.splitlines()[0]}); trying again" for k in (1, 2)]


def test_the_last_failure_is_raised_after_the_bounded_tries(monkeypatch):
    calls: list = []
    monkeypatch.setattr(ray, "init", _init_failing(5, calls))
    with pytest.raises(Exception, match="metrics_agent_port"):
        ray_session.start_local_ray(tries=2)
    assert len(calls) == 2


def test_bad_arguments_are_raised_at_once_and_tries_is_checked(monkeypatch):
    calls: list = []

    def init(**kwargs):
        calls.append(kwargs)
        raise ValueError("num_cpus must be positive")

    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(ValueError, match="num_cpus"):
        ray_session.start_local_ray(num_cpus=-1)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="tries must be >= 1"):
        ray_session.start_local_ray(tries=0)

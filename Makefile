# Fresh machine: `make run` (main job on the embedded digits default) or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test busy-test lint bench

# the suite on 2 pytest-xdist workers, a whole test module per worker, in tests/conftest.py's order (not
# xdist's, which sorts by test count and left the slowest modules for last): most of the suite is process
# start-up (Ray, torch), which left one of 2 cores idle about a third of the time when run serially
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder

$(VENV)/.installed: pyproject.toml constraints-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints-dev.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# the figures' PDF/PNG need Chromium: installed here when possible; without it the job still runs, and its
# analysis prints one line naming the command that installs it
run: install
	-bash scripts/ensure_chromium.sh
	$(PY) experiments/asha_vs_ohgw.py

test: install
	bash scripts/ensure_chromium.sh
	bash scripts/ensure_prometheus.sh
	bash scripts/ensure_slurm.sh
	PYTHON=$(PY) bash scripts/ensure_lint_tools.sh
	PYTHONFAULTHANDLER=1 $(PY) -m pytest -q $(PYTEST_WORKERS)

# the suite while 2 x nproc busy processes run beside it (stopped when it ends); its exit status is the suite's
busy-test:
	bash scripts/busy_test.sh

lint: install
	$(VENV)/bin/ruff check .

# Two commands for a fresh machine:
#   make lab    set everything up and open the course in JupyterLab
#   make test   set everything up and run the whole test suite
# Both create .venv with the pinned versions of constraints.txt the first time,
# and again whenever pyproject.toml or constraints.txt change.
# For instructors, make instructor-lab opens JupyterLab on the repository with nbgrader's tools.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# make test runs the test files on TEST_WORKERS processes (pytest-xdist), each file whole on one of
# them (its module fixtures built once), the longest files first (tests/conftest.py); most of the
# suite waits on subprocesses (pip, kernels, JupyterLab, Chromium, PostgreSQL), so two overlap well
# on two cores. TEST_WORKERS=0 runs everything in one process, as plain `pytest` does.
TEST_WORKERS ?= 2
CHROMIUM ?= /usr/bin/chromium

.PHONY: lab instructor-lab test postgresql bench constraints clean

# JupyterLab without nbgrader's menu, Validate button, Create Assignment sidebar and formgrader,
# which students do not need (grader/student-lab/); the user's Jupyter configuration is left alone.
lab: $(STAMP)
	$(BIN)/python -m grader lab notebooks/

# JupyterLab with nbgrader's tools, on the whole repository (the masters are in grader/course/source/).
instructor-lab: $(STAMP)
	$(BIN)/python -m grader lab --instructor

test: $(STAMP) | $(CHROMIUM) postgresql
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

# The browser test drives Debian's Chromium; install it where this can (Debian, as root).
$(CHROMIUM):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	    echo "note: the browser test needs Chromium at $(CHROMIUM) (Debian: sudo apt-get install chromium)"; \
	fi

# The PostgreSQL test (tests/instructor/test_postgres.py) starts Debian's PostgreSQL server in a
# temporary folder; install it where this can (Debian, as root). Debian keeps initdb and pg_ctl
# in /usr/lib/postgresql/VERSION/bin/, where the test looks too.
postgresql:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	    echo "note: the PostgreSQL test needs PostgreSQL's server (Debian: sudo apt-get install postgresql)"; \
	fi

bench: $(STAMP) | $(CHROMIUM)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

$(STAMP): pyproject.toml constraints.txt tests/ipywidgets7.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	# ipywidgets 7.7, as Google Colab ships it, beside the environment for the widget tests
	rm -rf $(VENV)/ipywidgets7
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	    --target $(VENV)/ipywidgets7 -r tests/ipywidgets7.txt
	touch $(STAMP)

# Re-resolve the pinned environment from pyproject.toml (torch stays at 2.13.0).
constraints:
	rm -rf .venv-resolve
	$(PYTHON) -m venv .venv-resolve
	.venv-resolve/bin/python -m pip install --quiet 'torch==2.13.0' -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .venv-resolve/bin/python -m pip freeze --exclude-editable \
	  | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-resolve

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts

# Two entry points a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.erase-installed

.PHONY: install demo test test-fast bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "erase needs Python 3.11 (torch 2.14.1 wheels)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m erase class --forget 3 --method salun

# Two pytest-xdist workers of one thread each use the two cores better than one process of two threads
# (docs/benchmarks.md, "Test suite"); the longest tests go first (tests/conftest.py), the slowest are listed.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --maxschedchunk 1 --durations=15

test: $(STAMP)
	$(PYTEST)

bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m bench.run
	OMP_NUM_THREADS=1 $(PY) -m bench.auto_steps

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

clean:
	rm -rf runs .pytest_cache

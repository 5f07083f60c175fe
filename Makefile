# Two commands on a fresh machine: `make demo` and `make test` (both install into .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# CPU wheel; a newer or unpinned torch would pull gigabytes of CUDA wheels on a CPU machine
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev,diffusers]" "$(TORCH_PIN)"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/guidetune demo --out out/demo

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) benchmarks/guidance_overhead.py

clean:
	rm -rf $(VENV) out build dist *.egg-info

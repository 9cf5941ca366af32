# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and install into it; constraints.txt keeps torch
# on the CPU build (torch==2.13.0) so no dependency can pull a CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -c constraints.txt

.PHONY: demo demo-quick test docs bench clean

$(VENV)/.core: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[atoms,plot,quantum]'
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.docs: $(VENV)/.core
	$(PIP) -e '.[docs]'
	touch $@

$(VENV)/.bench: $(VENV)/.test
	$(PIP) -e '.[test,bench]'
	touch $@

# The compiled kernels (src/equiscale/_kernels/csrc), built once into ~/.cache/equiscale so that no
# user call pays for it; without a compiler this prints one warning and the PyTorch path runs.
$(VENV)/.kernels: $(VENV)/.core $(wildcard src/equiscale/_kernels/csrc/*.cpp src/equiscale/_kernels/csrc/*.h)
	$(PY) -m equiscale._kernels._build
	touch $@

demo: $(VENV)/.core $(VENV)/.kernels
	$(VENV)/bin/equiscale demo

demo-quick: $(VENV)/.core $(VENV)/.kernels
	$(VENV)/bin/equiscale demo --quick

docs: $(VENV)/.docs
	$(VENV)/bin/mkdocs build --strict -d site

test: $(VENV)/.test $(VENV)/.kernels
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow and not serial"
	$(PY) -m pytest -q -m "serial and not slow"

bench: $(VENV)/.bench
	$(PY) benchmarks/spherical_harmonics.py

clean:
	rm -rf $(VENV)

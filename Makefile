# binderhub-registry: `make demo` runs every notebook on the sandbox, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: help install system-deps demo test notebooks bench lint typecheck docs clean

help:
	@echo "make demo       run every notebook against the sandbox, print a summary"
	@echo "make test       the whole suite: unit, sandbox, papermill scenarios, nbval strict"
	@echo "make notebooks  re-execute the stored notebooks in place against a fresh sandbox"
	@echo "make bench      measure start-up, notebook and verification costs"
	@echo "make lint       ruff on code and notebooks, mypy strict on the lib"
	@echo "make docs       render the executed notebooks to HTML (Sphinx + myst-nb, offline)"

# Debian's docker-registry is the sandbox's real registry; skopeo is the tests' independent pusher;
# chromium is the browser the JupyterLab test drives.
system-deps:
	@missing=""; \
	command -v docker-registry >/dev/null 2>&1 || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null 2>&1 || missing="$$missing skopeo"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing; run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,test,docs]'
	$(BIN)/python tests/tools/quiet_kernel.py
	@touch $(STAMP)

install: system-deps $(STAMP)

demo: install
	$(BIN)/binderhub-registry demo

test: install
	$(BIN)/pytest --nbval

notebooks: install
	$(BIN)/python tests/tools/refresh_notebooks.py

bench: install
	$(BIN)/python tests/tools/bench.py

lint: install
	$(BIN)/ruff check lib tests notebooks conftest.py
	$(BIN)/ruff format --check lib tests notebooks conftest.py
	$(BIN)/mypy

docs: install
	$(BIN)/sphinx-build -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

clean:
	rm -rf build notebooks/build docs/_build

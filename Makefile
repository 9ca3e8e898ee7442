# kubesim-images — the targets a newcomer can guess. Every target sets itself up first.
# The first interpreter that actually runs and is >= 3.11 (pyenv shims may exist but fail).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SCENARIO ?= config/scenarios/serial-vs-parallel.yaml

.PHONY: setup run scenario test lint unit bench soak fuzz demo stress clean
STRESS_RUNS ?= 20
SOAK_SECONDS ?= 600

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is required (none found on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## run: the daemon on the embedded default config (127.0.0.1:10255; Ctrl-C to stop). Port in
## use? `make run PORT=10256`; a second daemon also needs `STATE_DIR=DIR`; more flags: ARGS=...
run: setup
	$(BIN)/kubesim-images --log-format console serve $(if $(PORT),--port $(PORT)) \
		$(if $(STATE_DIR),--state-dir $(STATE_DIR)) $(ARGS)

## scenario: the bundled rollout scenario, variants side by side
scenario: setup
	$(BIN)/kubesim-images scenario run $(SCENARIO)

## test: lint, types, import layers, then the whole test suite
test: lint unit

unit: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check kubesim_images tests bench tools
	$(BIN)/ruff format --check kubesim_images tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: simulation throughput vs a bare-asyncio floor; API throughput vs a bare aiohttp handler;
## real pulls from a local registry vs skopeo, and our peak RSS per image size; image GC over
## 10,000 images against its 50 ms budget; load from one process (pulls/s, bytes/s) vs parallel
## skopeo copies, and the model beside a real run
bench: setup
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/pull.py
	$(BIN)/python bench/gc.py
	$(BIN)/python bench/loadtest.py

## soak: SOAK_SECONDS (600) of 200 API clients, 500 watches and pods cycling against one daemon;
## p99 latency, errors, RSS and fds at start and end in reports/soak/soak.json (not in `make test`)
soak: setup
	$(BIN)/python bench/soak.py --duration $(SOAK_SECONDS)

## fuzz: schemathesis against the daemon's /openapi.json with FUZZ_EXAMPLES (200) examples per
## operation and mode, negative data everywhere (`make test` runs 10, fewer modes); 0 failures
FUZZ_EXAMPLES ?= 200
fuzz: setup
	KUBESIM_FUZZ_FULL=1 KUBESIM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KUBESIM_FUZZ_RANDOM=1 \
	  $(BIN)/pytest tests/integration/test_openapi_schemathesis.py -s --timeout 3600

## demo: every bundled scenario, with plots under reports/
demo: setup
	@for f in config/scenarios/*.yaml; do \
	  echo "== $$f"; $(BIN)/kubesim-images scenario run $$f --report reports/$$(basename $$f .yaml) || exit 1; \
	done

## stress: `make test` STRESS_RUNS times in a fresh clone of HEAD; each run's result and time
stress:
	bash .ci/stress $(STRESS_RUNS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache reports

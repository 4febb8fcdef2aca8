# carebot — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# The suite mostly waits on HTTP round trips and timers: more workers than cores pay off.
TEST_WORKERS ?= 4

.PHONY: demo test venv lint bench clean postgres

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the pinned CPU build; an unpinned torch would pull a CUDA build.
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/carebot demo

test: $(STAMP) postgres
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The storage, workflow and scheduler suites also run on a real PostgreSQL,
# which the tests start themselves on 127.0.0.1 from Debian's binaries.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$CAREBOT_TEST_POSTGRES_URL" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's postgresql for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL not found and cannot install it: its tests will be skipped"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check bot handlers scheduler storage tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/classify_throughput.py
	$(PY) bench/ingest_latency.py

clean:
	rm -rf $(VENV) .pytest_cache carebot.db

# The two set-up commands of the README: `make serve` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test check install clean

# what mypy --strict checks (ruff checks everything, tests and benches too)
# test processes (pytest-xdist): most tests wait on servers they started, so three share two
# cores well; a file's tests stay together (--dist loadfile: module fixtures, order within a file)
TEST_JOBS ?= 3
TYPED := rtdb sdk/rtdb_sdk cli/rtdb_cli

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)
	@# the browser tests (tests/browser) drive Debian's Chromium and the cluster tests put
	@# Debian's nginx in front of the nodes (tests start it themselves, on loopback); CI runs as root
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -z "$$missing" ] || (echo "installing Debian's$$missing for the browser and cluster tests" && \
		apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null) || \
		{ echo "cannot install$$missing (needs root and Debian's packages)"; exit 1; }
	@for d in tests/node tests/differential tests/browser tests/tools; do \
		if [ -f $$d/package-lock.json ]; then (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; fi; \
	done

serve: $(STAMP)
	$(VENV)/bin/rtdb serve

test: install
	$(VENV)/bin/pytest -q -n $(TEST_JOBS) --dist loadfile

check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(TYPED)

clean:
	rm -rf $(VENV) tests/node/node_modules tests/differential/node_modules

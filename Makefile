# The two set-up commands of the README: `make serve` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test install clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)
	@# the browser tests (tests/browser) drive Debian's Chromium; CI runs as root
	@[ -x /usr/bin/chromium ] || (echo "installing Debian's chromium for the browser tests" && \
		apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null) || \
		{ echo "cannot install chromium (needs root and Debian's packages)"; exit 1; }
	@for d in tests/node tests/differential tests/browser tests/tools; do \
		if [ -f $$d/package-lock.json ]; then (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; fi; \
	done

serve: $(STAMP)
	$(VENV)/bin/rtdb serve

test: install
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) tests/node/node_modules tests/differential/node_modules

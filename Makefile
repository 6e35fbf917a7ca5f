# `make run` and `make test` each set up their own virtualenv from the pinned
# requirements; nothing installed by hand is needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: setup browser run test bench triage-report train-triage clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v redis-server >/dev/null || { echo "redis-server is needed (Debian: apt-get install redis-server)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else echo "Chromium is needed for the browser tests: sudo apt-get install chromium"; exit 1; fi; }

run: setup
	./scripts/run-local.sh

# Two processes (pytest-xdist): the suite takes about 4 minutes instead of 6 on 2 cores.
test: setup browser
	$(BIN)/python -m pytest -n 2

triage-report: setup
	$(BIN)/python -m bot.triage_report

# Retrain the triage model from tests/fixtures/triage/corpus.yaml and rewrite
# config/triage-model.json (review the diff, then `make triage-report`).
train-triage: setup
	$(BIN)/python -m bot.triage_train

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache

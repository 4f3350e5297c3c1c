# The two commands of the README:
#   make run    set up and start CareLoop on the embedded default (SQLite, one process)
#   make test   set up and run every test (SQLite and PostgreSQL)
PYTHON ?= python3
VENV := .venv
# `make run PORT=8001` (and `make demo PORT=8001` to play against it)
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: run test lint demo browser

run: $(VENV)/.runtime
	$(BIN)/careloop run --port $(PORT)

demo: $(VENV)/.runtime
	$(BIN)/careloop demo --url http://127.0.0.1:$(PORT)

test: $(VENV)/.test browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Page tests drive Debian's Chromium; install it where we can (root with apt),
# otherwise those tests skip with a message (and fail under CI=true).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: Chromium is not installed; page tests will be skipped"; fi; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

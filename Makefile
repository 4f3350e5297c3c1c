# The two commands of the README:
#   make run    set up and start CareLoop on the embedded default (SQLite, one process)
#   make test   set up and run every test (SQLite and PostgreSQL)
PYTHON ?= python3
VENV := .venv
# `make run PORT=8001` (and `make demo PORT=8001` to play against it)
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: run test lint demo browser catalogs translations

run: $(VENV)/.runtime catalogs
	$(BIN)/careloop run --port $(PORT)

demo: $(VENV)/.runtime
	$(BIN)/careloop demo --url http://127.0.0.1:$(PORT)

test: $(VENV)/.test browser catalogs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The pages' translations: the .po catalogs are the source (committed with
# their compiled .mo, which this recompiles); `make translations` extracts the
# strings again and merges them into each language's catalog.
catalogs: $(VENV)/.runtime
	$(BIN)/pybabel -q compile -d app/translations

translations: $(VENV)/.runtime
	$(BIN)/pybabel -q extract -F babel.cfg -k _ -k gettext -k ngettext:1,2 --no-location \
	  --omit-header -o app/translations/messages.pot .
	$(BIN)/pybabel -q update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching
	$(BIN)/pybabel -q compile -d app/translations

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

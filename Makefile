# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: demo test lint venv browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# Debian's chromium for the browser tests (Playwright's own download is blocked here).
browser:
	@bash scripts/ensure-chromium.sh

lint: venv
	$(BIN)/ruff check .

test: venv browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv
	PORT=$(PORT) bash scripts/demo.sh

clean:
	rm -rf $(VENV) var

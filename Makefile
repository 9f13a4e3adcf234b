# Quick start: `make demo` then `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test demo completions clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# pytest-xdist: one worker per core, at most 4 (tests/conftest.py gives each worker and its subprocesses one
# torch thread); worksteal hands a slow test's queue to an idle worker. `make test TEST_WORKERS=0`: one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)

test: venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

demo: venv
	$(BIN)/python scripts/demo.py

completions: venv
	$(BIN)/python scripts/gen_completions.py

clean:
	rm -rf $(VENV) demo .pytest_cache

# fewshot: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := test,chem,app
OUT    ?= runs/sinusoid

.PHONY: demo test test-slow bench install clean help

help:
	@echo "make demo       create .venv, install, meta-train the sinusoid default, show adapted predictions"
	@echo "make test       create .venv, install, run the test suite (slow tests excluded)"
	@echo "make test-slow  run only the slow tests"
	@echo "make bench      run the benchmark scripts (prints tables)"
	@echo "make clean      remove .venv and runs/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/fewshot run recipes/sinusoid --out $(OUT)

# pytest exits 5 when it collects no test; make treats that as a failure.
test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/sinusoid_throughput.py

clean:
	rm -rf $(VENV) runs

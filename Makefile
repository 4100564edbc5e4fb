# Two commands for a fresh machine (see README.rst):
#   make demo   set up .venv, then train + evaluate a small model on the procedural face data
#   make test   set up .venv (and a numpy-1.23 venv), then run ruff and the test suite
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPAT_VENV ?= .venv-numpy123
COMPAT_STAMP := $(COMPAT_VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast test-compat lint docs bench wheel clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[cpu,all,test,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check gluonfr scripts tests bench examples docs/conf.py setup.py _gluonfr_numpy_hook.py

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

# mxnet 1.9.1 with the oldest supported numpy: gluonfr must import and work there too
$(COMPAT_STAMP): setup.py
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install -q -e ".[cpu,all,test]" "numpy==1.23.5"
	touch $(COMPAT_STAMP)

test-compat: $(COMPAT_STAMP)
	$(COMPAT_VENV)/bin/python -m pytest tests -m compat $(PYTEST_ARGS)

test: lint test-fast test-compat docs

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	$(BIN)/python docs/check_browser.py docs/_build/html model_zoo.html byom.html

bench: $(STAMP)
	$(BIN)/python -m bench

# the wheel users install (tests/test_wheel.py installs one into clean venvs during make test)
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) $(COMPAT_VENV) docs/_build build dist *.egg-info

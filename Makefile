# Two set-up commands: `make local` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv test lint local demo bench clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/cfn-lint templates/*.yaml
	$(BIN)/mypy

test: venv lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

local: venv
	$(BIN)/python bootstrap.py --org o-example0000 --local $(LOCAL_ARGS)

demo: venv
	$(BIN)/python -m ops.demo

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info

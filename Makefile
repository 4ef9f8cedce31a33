# Two set-up commands: `make local` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

# checkov pins heavy dependencies of its own: it gets its own venv so it cannot break moto or
# cfn-lint in .venv. Bump CHECKOV_VERSION deliberately (new checks may fail the build).
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: venv test lint checkov local demo bench clean browser openapi

# GitHub's OpenAPI description (npm @octokit/openapi): the fake GitHub in tests checks every
# request against it (tests/fakes/github_openapi.py). Fetched once into a git-ignored cache.
OPENAPI_VERSION := 23.0.2
OPENAPI_DIR := .cache/octokit-openapi/$(OPENAPI_VERSION)
OPENAPI_STAMP := $(OPENAPI_DIR)/.fetched

$(OPENAPI_STAMP):
	@mkdir -p $(OPENAPI_DIR)
	npm pack --silent --pack-destination $(OPENAPI_DIR) '@octokit/openapi@$(OPENAPI_VERSION)' >/dev/null
	tar -xzf $(OPENAPI_DIR)/octokit-openapi-$(OPENAPI_VERSION).tgz -C $(OPENAPI_DIR) --strip-components=2 \
		package/generated/api.github.com.json
	@rm -f $(OPENAPI_DIR)/octokit-openapi-$(OPENAPI_VERSION).tgz
	@touch $@

openapi: $(OPENAPI_STAMP)

# The report's browser test (tests/test_report_browser.py) uses headless Chromium. On a Debian
# machine where we are root it is installed once; elsewhere the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)) \
	  || echo "notice: no chromium: the report's browser test will skip"; }

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV) || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $(CHECKOV_STAMP)

# Skipped checks and their reasons: .checkov.yaml (docs/deploy.md, "Static checks").
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

lint: venv checkov
	$(BIN)/ruff check .
	$(BIN)/cfn-lint templates/*.yaml
	# One run: strict for gip.domain and gip.store comes from setup.cfg's [mypy-...] section.
	$(BIN)/mypy

# pytest-xdist, a file's tests on one worker (its module-scoped moto server, tables or local
# stack are built once). Files are handed out longest first (tests/conftest.py LONGEST_FIRST;
# --no-loadscope-reorder keeps that order: xdist's own puts the files with most tests first, and
# the long files, which have few, ran alone at the end). Two workers more than cores: the long
# files wait on sleeps and subprocesses, and the others compute meanwhile (2 cores, one run
# each: 249 s as before, 213 s longest first, 174 s longest first on 3 workers; later, from a
# fresh clone, 168 s on 3 workers and 151 s on 4).
# PYTEST_ARGS come last: PYTEST_ARGS="-n 0" runs in one process; XDIST="..." changes the split.
XDIST ?= -n $(shell echo $$(( $$(nproc) + 2 ))) --dist loadfile --no-loadscope-reorder

# lint (~20 s of CPU from a cold mypy cache) runs alongside pytest rather than before it; its
# output follows pytest's, and either failing fails the target (pytest's exit code first).
test: export GITHUB_OPENAPI := $(abspath $(OPENAPI_DIR)/api.github.com.json)
# pytest caches its assertion-rewritten test modules as .pyc files, and Python its compiled
# modules, unless PYTHONDONTWRITEBYTECODE is non-empty (some CI images set it): then each xdist worker
# and every subprocess (local stacks, workers) compiles them again (~5 s of CPU per worker).
test: export PYTHONDONTWRITEBYTECODE :=
test: venv $(CHECKOV_STAMP) openapi browser
	@log=$$(mktemp); $(MAKE) --no-print-directory lint >"$$log" 2>&1 & lint=$$!; \
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); tests=$$?; \
	wait $$lint; linted=$$?; echo "== make lint (ran alongside pytest): exit $$linted"; cat "$$log"; rm -f "$$log"; \
	if [ $$tests -ne 0 ]; then exit $$tests; fi; exit $$linted

local: venv
	$(BIN)/python bootstrap.py --org o-example0000 --local $(LOCAL_ARGS)

demo: venv
	$(BIN)/python -m gip.local.demo

# bench/suite_time.py is left out: it builds two venvs and runs two whole suites (see README).
bench: venv
	@for b in $(filter-out bench/suite_time.py,$(wildcard bench/*.py)); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info

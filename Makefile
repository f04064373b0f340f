# Two entry points: `make serve` and `make test` (see README's Quickstart).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two installs into the same .venv: what serving and export need (`pip install -e .`), and that plus the test
# extra (`pip install -e '.[test]'`). Each has its stamp, so `make test` after `make serve` adds the test extra.
SERVE_STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
MODEL_BASE_PATH ?= $(CURDIR)/models/inception
MODEL_VERSION ?= 1
PORT ?= 8500
REST_API_PORT ?= 8501
SERVE_FLAGS ?= --enable_batching=true --max_batch_size=auto
# imagenet-or-seeded: download Keras' ImageNet weights (or reuse Keras' cache), else seeded random weights;
# imagenet: the download or fail; seeded: seeded random weights; or a path to a Keras .h5 file.
WEIGHTS ?= imagenet-or-seeded
OVERLAY ?= cpu

.PHONY: install install-test serve export test render clean

install: $(SERVE_STAMP)

install-test: $(TEST_STAMP)

# A failed `python -m venv` (on Debian and Ubuntu: no python3-venv package) leaves no half-made .venv behind.
$(PY):
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(not (3, 11) <= v <= (3, 13) and f"Python 3.11 to 3.13 is required; $(PYTHON) is {v[0]}.{v[1]} (set PYTHON=python3.12, for example)")'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "could not create $(VENV): on Debian or Ubuntu, install python3-venv (sudo apt install python3-venv)" >&2; exit 1; }

$(SERVE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

# The test extra includes the main dependencies: the serving stamp is brought up to date too.
$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(SERVE_STAMP)

$(MODEL_BASE_PATH)/$(MODEL_VERSION)/saved_model.pb: | $(SERVE_STAMP)
	$(PY) -m model_export --output $(MODEL_BASE_PATH) --version $(MODEL_VERSION) $(if $(WEIGHTS),--weights $(WEIGHTS))

export: $(MODEL_BASE_PATH)/$(MODEL_VERSION)/saved_model.pb

# tensorflow_model_server: the package's command, TF Serving's name and flags (`python -m service` is the same).
serve: install export
	$(VENV)/bin/tensorflow_model_server --port=$(PORT) --rest_api_port=$(REST_API_PORT) --model_name=inception \
		--model_base_path=$(MODEL_BASE_PATH) $(SERVE_FLAGS)

test: $(TEST_STAMP)
	$(PY) -m pytest

# Print the Kubernetes objects of manifests/overlays/$(OVERLAY) (kubectl comes with the test extra).
render: $(TEST_STAMP)
	$(VENV)/bin/kubectl kustomize manifests/overlays/$(OVERLAY)

clean:
	rm -rf $(VENV) models .pytest_cache

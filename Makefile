# Two entry points: `make serve` and `make test` (see README's Quickstart).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_BASE_PATH ?= $(CURDIR)/models/inception
MODEL_VERSION ?= 1
PORT ?= 8500
REST_API_PORT ?= 8501
SERVE_FLAGS ?= --enable_batching=true --max_batch_size=auto
# imagenet-or-seeded: download Keras' ImageNet weights (or reuse Keras' cache), else seeded random weights;
# imagenet: the download or fail; seeded: seeded random weights; or a path to a Keras .h5 file.
WEIGHTS ?= imagenet-or-seeded
OVERLAY ?= cpu

.PHONY: install serve export test render clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(MODEL_BASE_PATH)/$(MODEL_VERSION)/saved_model.pb: | $(STAMP)
	$(PY) -m model_export --output $(MODEL_BASE_PATH) --version $(MODEL_VERSION) $(if $(WEIGHTS),--weights $(WEIGHTS))

export: $(MODEL_BASE_PATH)/$(MODEL_VERSION)/saved_model.pb

# tensorflow_model_server: the package's command, TF Serving's name and flags (`python -m service` is the same).
serve: install export
	$(VENV)/bin/tensorflow_model_server --port=$(PORT) --rest_api_port=$(REST_API_PORT) --model_name=inception \
		--model_base_path=$(MODEL_BASE_PATH) $(SERVE_FLAGS)

test: install
	$(PY) -m pytest

# Print the Kubernetes objects of manifests/overlays/$(OVERLAY) (kubectl comes with the test extra).
render: install
	$(VENV)/bin/kubectl kustomize manifests/overlays/$(OVERLAY)

clean:
	rm -rf $(VENV) models .pytest_cache

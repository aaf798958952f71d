# Set-up and the two everyday commands. `make demo` and `make test` create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: install demo test test-all clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The official Waymo protos, only to test our schema against; their pins clash with our stack.
	$(PY) -m pip install -q --no-deps waymo-open-dataset-tf-2-12-0==1.6.7
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/streetsynth demo --out demo-out

test: install
	$(VENV)/bin/pytest -q

test-all: install
	$(VENV)/bin/pytest -q --run-slow

clean:
	rm -rf $(VENV) demo-out

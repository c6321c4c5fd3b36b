# ebmkit: `make demo` and `make test` do all the set-up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
RUN     ?= runs/demo

.PHONY: install demo test test-slow clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch and torchvision are pinned (they install from this machine's disk); the rest from pyproject.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job: train CDRL on the 2-D checkerboard, then sample it (pictures land in $(RUN)).
demo: $(STAMP)
	$(BIN)/ebmkit train --preset cdrl-points --run-dir $(RUN) --overwrite
	$(BIN)/ebmkit sample --model $(RUN)/model.safetensors --num 5000 --out $(RUN)/samples.png --seed 0
	$(BIN)/ebmkit eval mmd --model $(RUN)/model.safetensors --num 5000

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs

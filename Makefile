# tcme — the two commands a newcomer needs are `make demo` and `make test`.
# Both create the virtual environment on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tcme-installed
MODELS ?= models
# llama-cpp-python builds from source; skip the multimodal part we do not use.
# GGML_NATIVE=OFF: -march=native compiles Intel AMX tile code on CPUs that
# advertise AMX, and VMs that do not grant AMX state to the process then die
# with a general protection fault (ldtilecfg) on the first multi-token batch.
# A portable AVX2 build is fast enough for the models we run and runs everywhere
# x86-64-v3 does.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

PROTOS := $(wildcard proto/tcme/v1/*.proto)

.PHONY: all venv proto model demo test lint bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "Installing tcme and its dependencies (llama-cpp-python compiles from source the first time: ~12 min on 2 cores; pip caches the wheel afterwards)."
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) proto

# Generated gRPC/protobuf code is produced by the build, never checked in or hand-edited.
proto: $(STAMP)
	$(PY) scripts/gen_proto.py

model: venv
	$(PY) scripts/fetch_model.py --out $(MODELS)

demo: venv model
	bash scripts/demo.sh

# mypy reads its file list and settings from pyproject.toml ([tool.mypy]); it needs the
# generated tcme/v1/*_pb2.pyi, which `venv` makes (proto). Each example's cases.py is
# checked alone: they all are the module `cases`.
MYPY = $(PY) -m mypy && for f in examples/*/cases.py; do $(PY) -m mypy "$$f" || exit 1; done

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check attestation enclave host tcme tests bench scripts examples
	$(MYPY)

test: venv model
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check attestation enclave host tcme tests bench scripts examples
	$(MYPY)
	$(PY) -m pytest -q

# Each benchmark exits non-zero when it cannot run (missing vectors or model), so
# `make bench` fails instead of skipping. Nothing is written to docs/ unless
# BENCH_FLAGS=--write (the Session and Fleet sections of docs/benchmarks.md), which
# every benchmark that writes docs takes (tests/test_bench_flags.py keeps it so).
BENCH_FLAGS ?=

bench: venv model
	$(PY) bench/attestation_snp.py
	$(PY) bench/attestation_tdx.py
	$(PY) bench/gpu.py
	$(PY) bench/attestation_azure.py
	$(PY) bench/model_digest.py
	$(PY) bench/session.py $(BENCH_FLAGS)
	$(PY) bench/accuracy.py
	$(PY) bench/fleet.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache tcme/v1/*_pb2*.py tcme/v1/*_pb2*.pyi

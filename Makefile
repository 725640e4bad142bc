# nopekit build and test entry points. The README's two set-up commands are `make run` and
# `make test`; CI (.ci/run) calls `make test`.
#
# Release and test builds pass -target-cpu so that SIMD FMA and Float16 conversion compile to
# instructions, not library calls (see docs/architecture.md). Override with TARGET_CPU=...

TARGET_CPU ?= haswell
SWIFT_FLAGS := -Xswiftc -target-cpu -Xswiftc $(TARGET_CPU)
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-asan fuzz deps venv release debug fixtures clean

## run: install system packages if missing, build release, run the main job: `nopekit extend` on
## the bundled NoPE model (search → bake → verify at 4× its training length; output in
## .build/extended-organism, replaced on every run).
run: deps release
	rm -rf .build/extended-organism
	.build/release/nopekit extend --out .build/extended-organism

## test: the whole test suite: swift test (unit, golden and oracle tests; the bit-exact trainer
## and λ-gradient tests in a process of their own), then the interop
## checks in which PyPI safetensors, gguf and tokenizers read what nopekit writes (convert's
## GGUF and HF folders included).
# The engine and tokenizer targets are compiled with -O in this debug build (Package.swift).
test: export NOPEKIT_OPTIMIZE_DEBUG = 1
# Remembered source checksums (ChecksumCache) stay inside the build folder, not ~/.cache.
test: export NOPEKIT_CACHE_DIR = $(CURDIR)/.build/checksum-cache
test: deps venv
	swift test $(SWIFT_FLAGS) --skip TrainerTests --skip lambdaOnlyPathAgrees
	# The bit-for-bit checks (exact resume; the λ-only backward against the full one) run in a
	# process of their own, one after the other: a concurrent suite perturbs OpenBLAS's results
	# in the last bits (its thread count is process-wide state the attention switches; under
	# investigation).
	swift test $(SWIFT_FLAGS) --no-parallel --filter 'TrainerTests|lambdaOnlyPathAgrees'
	$(PY) scripts/interop/check_safetensors.py --nopekit .build/debug/nopekit --workdir .build/interop
	$(PY) scripts/interop/check_gguf.py --nopekit .build/debug/nopekit --workdir .build/interop-gguf
	$(PY) scripts/interop/check_pretrain.py --nopekit .build/debug/nopekit --workdir .build/interop-pretrain
	$(PY) scripts/interop/check_bake.py --nopekit .build/debug/nopekit --workdir .build/interop-bake
	$(PY) scripts/interop/check_convert.py --nopekit .build/debug/nopekit --workdir .build/interop-convert

## test-asan: the Swift test suite once more, built with AddressSanitizer (its own build folder,
## .build/asan). An out-of-bounds access, use after free or double free anywhere, in the test
## process or in a nopekit it runs, fails it: ASan exits such a process with status 86, which no
## test expects, and the log is searched for its reports as well. Leak checking is off here (the
## test harness and Open MPI keep memory until exit); the fuzzers check each parser for leaks.
test-asan: export NOPEKIT_OPTIMIZE_DEBUG = 1
test-asan: export NOPEKIT_CACHE_DIR = $(CURDIR)/.build/checksum-cache
test-asan: export NOPEKIT_SANITIZER = address
test-asan: export ASAN_OPTIONS = detect_leaks=0:exitcode=86
test-asan: SHELL = /bin/bash
test-asan: deps
	swift build --build-tests --scratch-path .build/asan -Xswiftc -sanitize=address $(SWIFT_FLAGS)
	set -o pipefail; swift test --skip-build --scratch-path .build/asan -Xswiftc -sanitize=address $(SWIFT_FLAGS) \
		--skip TrainerTests --skip lambdaOnlyPathAgrees 2>&1 | tee .build/asan/test.log
	set -o pipefail; swift test --skip-build --scratch-path .build/asan -Xswiftc -sanitize=address $(SWIFT_FLAGS) \
		--no-parallel --filter 'TrainerTests|lambdaOnlyPathAgrees' 2>&1 | tee -a .build/asan/test.log
	! grep -n "ERROR: AddressSanitizer" .build/asan/test.log

## fuzz: every libFuzzer target (Tests/Fuzz: safetensors, GGUF, PyTorch zip + pickle,
## tokenizer.json, config.json, temperature tables) for FUZZ_SECONDS each, with ASan; a crash,
## sanitizer report, leak, 10 s hang or 2 GB input fails it and keeps the input in Tests/Fuzz/findings.
FUZZ_SECONDS ?= 60
fuzz: deps
	Tests/Fuzz/run $(FUZZ_SECONDS)

## deps: Debian packages (OpenBLAS, zlib, OpenSSL's libcrypto, Open MPI, pkg-config, Python venv, GNU time for the
## resource-limit tests), installed only if missing.
deps:
	@if ! pkg-config --exists openblas zlib libcrypto ompi-c 2>/dev/null || ! command -v mpirun >/dev/null || [ ! -x /usr/bin/time ] || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
		echo "installing system packages: libopenblas-dev zlib1g-dev libssl-dev libopenmpi-dev openmpi-bin pkg-config python3-venv time"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev zlib1g-dev libssl-dev libopenmpi-dev openmpi-bin pkg-config python3-venv time; \
	fi

## venv: the Python oracles (PyPI safetensors, gguf, numpy, ml_dtypes) in .venv.
venv: $(PY)
$(PY): scripts/reference/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r scripts/reference/requirements.txt
	touch $(PY)

release:
	swift build -c release $(SWIFT_FLAGS)

debug:
	swift build $(SWIFT_FLAGS)

## fixtures: regenerate the committed reference fixtures with the PyPI packages.
fixtures: venv
	$(PY) scripts/reference/make_safetensors_fixtures.py
	$(PY) scripts/reference/make_gguf_fixtures.py
	$(PY) scripts/reference/gen_iq_tables.py
	$(PY) scripts/reference/make_bake_fixtures.py

clean:
	rm -rf .build

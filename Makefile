# regmix — make targets. The outputs are the targets, so `make` redoes only what changed.
#   make demo    the pipeline on the embedded default corpus (everything built so far)
#   make test    the test suite (what CI runs)
#   make lint    rustfmt's check and clippy with warnings denied (CI runs it before the tests)
#   make bench   the benchmarks, side by side with their baselines
#   make calibrate CALIBRATE_TARGETS="a.parquet ..."   are my proxies long enough? (docs/calibration.md)
#   make paper   collect, fit and optimize on the paper's published runs (../shared/regmix-paper-data)
#   make check-megatron   megatron-core's own reader on our export (manual: needs torch)
# The long experiments (make experiment, horizon-*, calibration, calibrated-*, vetting) are in
# experiments/*.mk, included at the end.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:

# One target directory shared by every checkout on this machine (CI reuses it).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/regmix/target
BIN := $(CARGO_TARGET_DIR)/release
# Extra cargo flags for the one build (e.g. CARGO_FLAGS=--timings); the tests build in the same
# release profile, so `make test` after `make demo` compiles only the test executables.
CARGO_FLAGS ?=
DATA ?= data
CORPUS := $(DATA)/corpus
SHARDS := $(DATA)/shards
VOCAB ?= 8192
# Long documents (speeches) need more than 1% for every domain to get validation text.
VALID ?= 0.05
MIXTURES ?= 64
SEED ?= 42
VENV := .venv
PY := $(VENV)/bin/python

# The demo's models: micro proxies and a small target, sized for a 2-core CPU in minutes.
PROXY_PRESET ?= micro
PROXY_TOKENS ?= 65536
PROXY_FLAGS ?= --batch-tokens 1024 --lr 3e-3 --eval-windows 16 --eval-every 32
TARGET_PRESET ?= small
TARGET_TOKENS ?= 524288
TARGET_FLAGS ?= --batch-tokens 4096 --lr 2e-3 --min-lr 1e-4 --eval-windows 16
DEMO_TARGET ?= mean(valid_loss.*)
DEMO_REGRESSOR ?= auto
DEMO_SAMPLES ?= 200000
DEMO_TOP_K ?= 64
DEMO_BOOTSTRAP ?= 16
# The availability cap of the optimum: no domain repeated more than this many times in the
# target run (w_d ≤ MAX_EPOCHS · tokens_d / TARGET_TOKENS).
MAX_EPOCHS ?= 4
RUNS := $(DATA)/runs

PAPER ?= ../shared/regmix-paper-data
PAPER_OUT := $(DATA)/paper
TARGET ?= valid_loss.pile_cc

.PHONY: all setup build corpus shards mixtures runs results-table demo test check-megatron lint lint-fmt lint-clippy bench bench-lto clean calibrate paper

all: build

# What each goal needs of the system (scripts/setup.sh --for): the build alone for `make build`;
# the test-only packages (chromium, Slurm, munge) are named and their tests skipped without root.
setup:
	@goals=" $(MAKECMDGOALS) "; g=build; \
	if [[ $$goals == *" test "* ]]; then g+=,venv,test; fi; \
	if [[ $$goals =~ \ (demo|corpus|shards|mixtures|runs|paper|experiment[a-z-]*|horizon-[a-z]*|backtest-[ab])\  ]]; then g+=,venv,demo; fi; \
	if [[ $$goals == *" bench "* || $$goals == *" bench-lto "* ]]; then g+=,venv,demo,bench; fi; \
	bash scripts/setup.sh --for $$g

build: setup
	cargo build --release --workspace $(CARGO_FLAGS)

$(PY): scripts/requirements-test.txt
	@bash scripts/setup.sh
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r scripts/requirements-test.txt
	touch $(PY)

$(CORPUS)/.stamp: scripts/demo-corpus/build.sh scripts/demo-corpus/extract.py
	@bash scripts/setup.sh
	bash scripts/demo-corpus/build.sh $(CORPUS)

corpus: $(CORPUS)/.stamp

$(SHARDS)/manifest.parquet: $(CORPUS)/.stamp | build
	$(BIN)/tokenize-shard --input $(CORPUS) --output $(SHARDS) --train-bpe $(VOCAB) --valid-fraction $(VALID)

shards: $(SHARDS)/manifest.parquet

$(DATA)/mixtures.parquet: $(SHARDS)/manifest.parquet | build
	$(BIN)/sample-mixtures --manifest $(SHARDS)/manifest.parquet --count $(MIXTURES) --seed $(SEED) \
	    --output $@ --write-yaml $(DATA)/mixtures-yaml

mixtures: $(DATA)/mixtures.parquet

# proxy-train skips finished runs and resumes unfinished ones, so this target is cheap to
# rerun after an interruption. RUN_JOBS > 1 starts that many proxy-train processes, each
# training every RUN_JOBS-th mixture (--array-index/--array-count) on one thread.
RUN_JOBS ?= 1
RUN_THREADS = $(if $(filter 1,$(RUN_JOBS)),0,1)
# side_by_side WORDS,COMMAND: COMMAND once for each word of WORDS (the word in $$job), all at
# once; waits for every one (not only up to the first that fails) and fails if one failed; an
# interrupt (Ctrl-C, scancel) stops them all. The one place a recipe starts processes side by
# side: per_core, the RUN_JOBS loops below and the experiments' rounds are made of it.
comma := ,
side_by_side = pids=(); trap 'kill "$${pids[@]}" 2>/dev/null; exit 130' INT TERM; \
    for job in $(1); do { $(2); } & pids+=($$!); done; \
    rc=0; for p in "$${pids[@]}"; do wait $$p || rc=1; done; trap - INT TERM; [ $$rc = 0 ]
# per_core IDS,COMMAND: COMMAND --ids SHARE in one process per core, each taking every n-th id of
# the comma-separated IDS (a share may be empty: nothing runs for it).
per_core = n=$(shell nproc); $(call side_by_side,$$(seq 0 $$((n - 1))),share=$$(echo "$(1)" | tr $(comma) '\n' \
    | awk -v k=$$job -v n=$$n '(NR - 1) % n == k' | paste -sd$(comma)); [ -z "$$share" ] || $(2) --ids $$share)
# RUN_JOBS proxy-train processes (Slurm-array shares of the mixtures), or one of RUN_THREADS.
run_jobs = $(call side_by_side,$$(seq 0 $$(($(RUN_JOBS) - 1))),$(1) --threads $(RUN_THREADS) \
    $$( [ $(RUN_JOBS) = 1 ] || echo --array-index $$job --array-count $(RUN_JOBS)))
PROXY_TRAIN_FLAGS = --preset $(PROXY_PRESET) --tokens $(PROXY_TOKENS) --seed $(SEED) $(PROXY_FLAGS)
$(RUNS)/.stamp: $(DATA)/mixtures.parquet $(SHARDS)/manifest.parquet | build
	$(call run_jobs,$(BIN)/proxy-train --shards $(SHARDS) --mixtures $(DATA)/mixtures.parquet --output $(RUNS) $(PROXY_TRAIN_FLAGS))
	touch $@

runs: $(RUNS)/.stamp

$(DATA)/dataset.parquet: $(RUNS)/.stamp | build
	$(BIN)/collect --runs $(RUNS) --mixtures $(DATA)/mixtures.parquet --output $@

# TARGET_RUNS="a.parquet ...": target-scale runs you have; fit then fits the target law on them
# (docs/calibration.md#the-target-law-fitted-at-the-targets-scale), and STRENGTH=30 searches
# near the prior, where its optimum lies.
TARGET_RUNS ?=
STRENGTH ?= 1
FIT_FLAGS = --target '$(DEMO_TARGET)' --regressor $(DEMO_REGRESSOR) --seed $(SEED)
OPTIMIZE_FLAGS = --samples $(DEMO_SAMPLES) --top-k $(DEMO_TOP_K) --seed $(SEED) --bootstrap $(DEMO_BOOTSTRAP) \
    --target-tokens $(TARGET_TOKENS) --max-epochs $(MAX_EPOCHS)
$(DATA)/fit/model.json: $(DATA)/dataset.parquet $(TARGET_RUNS) | build
	$(BIN)/fit --dataset $< $(FIT_FLAGS) $(foreach f,$(TARGET_RUNS),--target-runs $(f)) --output $(DATA)/fit

$(DATA)/optimum/optimum.parquet: $(DATA)/fit/model.json $(SHARDS)/manifest.parquet | build
	$(BIN)/optimize --fit $(DATA)/fit --manifest $(SHARDS)/manifest.parquet --output $(DATA)/optimum $(OPTIMIZE_FLAGS) \
	    --strength $(STRENGTH)

# The proxies as a committed results table (RESULTS_TABLE, with its curves and settings): what a
# fresh machine fits without training them again. Only the mixtures not yet in the table are
# trained (finished runs in $(RUNS) are reused), in RUN_JOBS processes, and what finishes is
# merged into it; so the table grows across machines until it has every mixture.
results-table: $(DATA)/mixtures.parquet $(SHARDS)/manifest.parquet | $(PY)
	$(PY) scripts/experiments/export-results.py --check $(RESULTS_TABLE) --flags "$(PROXY_TRAIN_FLAGS)" --manifest $(SHARDS)/manifest.parquet
	ids=$$(for i in $$(seq 0 $$(($(MIXTURES) - 1))); do grep -q "^$$i," $(RESULTS_TABLE) 2>/dev/null || echo $$i; done | paste -sd,); \
	if [ -n "$$ids" ]; then \
	    $(call run_jobs,$(BIN)/proxy-train --shards $(SHARDS) --mixtures $(DATA)/mixtures.parquet --output $(RUNS) --ids $$ids $(PROXY_TRAIN_FLAGS)); \
	$(BIN)/collect --runs $(RUNS) --mixtures $(DATA)/mixtures.parquet --output $(DATA)/results-table.parquet; \
	$(PY) scripts/experiments/export-results.py $(DATA)/results-table.parquet $(RESULTS_TABLE) --merge --flags "$(PROXY_TRAIN_FLAGS)"; \
	else echo "results-table: every mixture is in $(RESULTS_TABLE)"; fi

$(DATA)/target/comparison.parquet: $(DATA)/optimum/optimum.parquet | build
	$(BIN)/target-train --shards $(SHARDS) --output $(DATA)/target --preset $(TARGET_PRESET) \
	    --tokens $(TARGET_TOKENS) --seed $(SEED) $(TARGET_FLAGS) \
	    --mixture regmix=$(DATA)/optimum/optimum.parquet --mixture prior=prior --mixture uniform=uniform

$(DATA)/report.html: $(DATA)/target/comparison.parquet $(DATA)/optimum/optimum.parquet $(DATA)/fit/model.json | build
	$(BIN)/report --output $@ --title "RegMix demo: $(MIXTURES) $(PROXY_PRESET) proxies, $(TARGET_PRESET) targets" \
	    --mixtures $(DATA)/mixtures.parquet --dataset $(DATA)/dataset.parquet --fit $(DATA)/fit \
	    --optimum $(DATA)/optimum --comparison $(DATA)/target/comparison.parquet

demo: $(DATA)/report.html | $(PY)
	@echo
	@echo "== demo: what was made =="
	@echo "corpus:     $(CORPUS) ($$(ls $(CORPUS)/*.jsonl | wc -l) domains)"
	@echo "shards:     $(SHARDS)/manifest.parquet"
	@echo "mixtures:   $(DATA)/mixtures.parquet ($(MIXTURES) mixtures), YAML in $(DATA)/mixtures-yaml/"
	@echo "proxy runs: $(RUNS)/<id>/metrics.parquet ($(PROXY_PRESET), $(PROXY_TOKENS) tokens each)"
	@echo "dataset:    $(DATA)/dataset.parquet;  fit: $(DATA)/fit/;  optimum: $(DATA)/optimum/optimum.yaml"
	@echo "targets:    $(DATA)/target/<name>/hf/ (Hugging Face checkpoints), $(DATA)/target/comparison.parquet"
	@$(PY) scripts/show-comparison.py $(DATA)/target/comparison.parquet $(DATA)/optimum/optimum.parquet
	@echo
	@echo "report:     $(abspath $(DATA)/report.html)"

# collect → fit → optimize on the paper's published proxy runs (the golden data).
$(PAPER_OUT)/train.parquet $(PAPER_OUT)/test_1m.parquet $(PAPER_OUT)/test_60m.parquet &: | build
	mkdir -p $(PAPER_OUT)
	$(BIN)/collect --import-regmix-csv $(PAPER)/train_mixture_1m.csv $(PAPER)/train_pile_loss_1m.csv --output $(PAPER_OUT)/train.parquet
	$(BIN)/collect --import-regmix-csv $(PAPER)/test_mixture_1m.csv $(PAPER)/test_pile_loss_1m.csv --output $(PAPER_OUT)/test_1m.parquet
	$(BIN)/collect --import-regmix-csv $(PAPER)/test_mixture_60m.csv $(PAPER)/test_pile_loss_60m.csv --output $(PAPER_OUT)/test_60m.parquet

$(PAPER_OUT)/fit/model.json: $(PAPER_OUT)/train.parquet $(PAPER_OUT)/test_1m.parquet $(PAPER_OUT)/test_60m.parquet | build
	$(BIN)/fit --dataset $(PAPER_OUT)/train.parquet --target $(TARGET) --regressor auto --output $(PAPER_OUT)/fit \
	    --evaluate $(PAPER_OUT)/test_1m.parquet --evaluate $(PAPER_OUT)/test_60m.parquet

$(PAPER_OUT)/optimum/optimum.parquet: $(PAPER_OUT)/fit/model.json scripts/pile-prior.json | build
	$(BIN)/optimize --fit $(PAPER_OUT)/fit --prior scripts/pile-prior.json --output $(PAPER_OUT)/optimum \
	    --samples 1000000 --top-k 128 --bootstrap 8

paper: $(PAPER_OUT)/optimum/optimum.parquet

# The tests run in the release profile (the one `make demo` built), and the shell tests use
# the stage binaries that build made.
test: $(PY) setup
	LD_LIBRARY_PATH=$$(echo $(abspath $(VENV))/lib/python3*/site-packages/nvidia/cu13/lib)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} \
	    REGMIX_REQUIRE_NVRTC=1 REGMIX_PYTHON=$(abspath $(PY)) cargo test --release --workspace $(CARGO_FLAGS)
	REGMIX_BIN=$(BIN) REGMIX_PYTHON=$(abspath $(PY)) bash tests/faults.sh
	REGMIX_BIN=$(BIN) REGMIX_PYTHON=$(abspath $(PY)) STRICT=1 bash tests/integrity.sh
	$(PY) tests/fuzz.py $(BIN)
	$(PY) tests/read-in-duckdb.py $(BIN)
	$(PY) tests/export-results-round-trip.py $(BIN)
	REGMIX_BIN=$(BIN) REGMIX_PYTHON=$(abspath $(PY)) bash scripts/slurm/test-local.sh
	@echo "NOT RUN (a manual check): make check-megatron, megatron-core's own reader on our export; it needs torch and megatron-core (pip install torch megatron-core)"

# megatron-core's IndexedDataset and blend builder on export-megatron's files: a manual check,
# since CI's machine has no torch (it fails, naming what is missing, where they cannot be imported).
check-megatron: $(PY) build
	REGMIX_REQUIRE_MEGATRON=1 $(PY) tests/read-in-megatron.py $(BIN)

# Formatting, and clippy's lints (the workspace's lint table in Cargo.toml allows the few it
# does not follow) in the release profile the tests build.
lint: lint-fmt lint-clippy
lint-fmt:
	cargo fmt --all --check
lint-clippy: setup
	cargo clippy --workspace --release --all-targets $(CARGO_FLAGS) -- -D warnings

bench: build $(CORPUS)/.stamp
	bash scripts/bench/tokenize.sh
	bash scripts/bench/fit-optimize.sh
	bash scripts/bench/train.sh

# Whether thin LTO would pay for the hot binaries (a second profile, built once).
bench-lto: setup
	bash scripts/bench/lto.sh

# Calibration on your own target-scale runs (docs/calibration.md): do proxies of each recipe of
# CALIBRATE_RECIPES rank the mixtures of CALIBRATE_TARGETS (datasets: collect --targets DIR or
# collect --import-table TABLE) as those targets do? Resumable; writes
# $(DATA)/calibration/calibration.parquet and the recommended recipe.
CALIBRATE_RECIPES ?= scripts/calibrate-recipes.tsv
CALIBRATE_TARGETS ?=
calibrate: $(SHARDS)/manifest.parquet | build
	@[ -n "$(CALIBRATE_TARGETS)" ] || { echo "make calibrate: give CALIBRATE_TARGETS=\"targets.parquet ...\" (collect --targets DIR --output targets.parquet)" >&2; exit 2; }
	bash scripts/calibrate.sh --recipes $(CALIBRATE_RECIPES) --shards $(SHARDS) --work $(DATA)/calibration \
	    --targets "$(CALIBRATE_TARGETS)" --bin $(BIN) --jobs $(RUN_JOBS)

clean:
	rm -rf $(DATA)

# The experiments, each in its own file (they use the variables above):
include experiments/horizon.mk
include experiments/calibration.mk
include experiments/calibrated.mk
include experiments/target-law.mk

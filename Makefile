# regmix — make targets. The outputs are the targets, so `make` redoes only what changed.
#   make demo    the pipeline on the embedded default corpus (everything built so far)
#   make test    the test suite (what CI runs)
#   make bench   the benchmarks, side by side with their baselines
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

.PHONY: all setup build corpus shards mixtures runs demo test bench bench-lto clean calibrate paper experiment experiment-runs experiment-shards experiment-gpu backtest-a backtest-b experiment-results results-table horizon-plain horizon-anchors horizon-holdout horizon-optimum horizon-baselines horizon-final horizon-hedge horizon-score horizon-train horizon-verify verify-target verify-proxies

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
# per_core IDS,COMMAND: COMMAND --ids SHARE in one process per core, each taking every n-th id of
# the comma-separated IDS; waits for all of them and fails if one failed.
per_core = n=$(shell nproc); pids=(); for k in $$(seq 0 $$((n - 1))); do \
    share=$$(echo "$(1)" | tr , '\n' | awk -v k=$$k -v n=$$n '(NR - 1) % n == k' | paste -sd,); \
    [ -z "$$share" ] || { $(2) --ids $$share & pids+=($$!); }; \
done; rc=0; for p in "$${pids[@]}"; do wait $$p || rc=1; done; [ $$rc = 0 ]
PROXY_TRAIN_FLAGS = --preset $(PROXY_PRESET) --tokens $(PROXY_TOKENS) --seed $(SEED) $(PROXY_FLAGS)
$(RUNS)/.stamp: $(DATA)/mixtures.parquet $(SHARDS)/manifest.parquet | build
	pids=(); for i in $$(seq 0 $$(($(RUN_JOBS) - 1))); do \
	    $(BIN)/proxy-train --shards $(SHARDS) --mixtures $(DATA)/mixtures.parquet --output $(RUNS) \
	        $(PROXY_TRAIN_FLAGS) \
	        --threads $(RUN_THREADS) $$( [ $(RUN_JOBS) = 1 ] || echo --array-index $$i --array-count $(RUN_JOBS)) & pids+=($$!); \
	done; for p in "$${pids[@]}"; do wait $$p; done
	touch $@

runs: $(RUNS)/.stamp

$(DATA)/dataset.parquet: $(RUNS)/.stamp | build
	$(BIN)/collect --runs $(RUNS) --mixtures $(DATA)/mixtures.parquet --output $@

FIT_FLAGS = --target '$(DEMO_TARGET)' --regressor $(DEMO_REGRESSOR) --seed $(SEED)
OPTIMIZE_FLAGS = --samples $(DEMO_SAMPLES) --top-k $(DEMO_TOP_K) --seed $(SEED) --bootstrap $(DEMO_BOOTSTRAP) \
    --target-tokens $(TARGET_TOKENS) --max-epochs $(MAX_EPOCHS)
$(DATA)/fit/model.json: $(DATA)/dataset.parquet | build
	$(BIN)/fit --dataset $< $(FIT_FLAGS) --output $(DATA)/fit

$(DATA)/optimum/optimum.parquet: $(DATA)/fit/model.json $(SHARDS)/manifest.parquet | build
	$(BIN)/optimize --fit $(DATA)/fit --manifest $(SHARDS)/manifest.parquet --output $(DATA)/optimum $(OPTIMIZE_FLAGS)

# The proxies as a committed results table (RESULTS_TABLE, with its curves and settings): what a
# fresh machine fits without training them again. Only the mixtures not yet in the table are
# trained (finished runs in $(RUNS) are reused), in RUN_JOBS processes, and what finishes is
# merged into it; so the table grows across machines until it has every mixture.
results-table: $(DATA)/mixtures.parquet $(SHARDS)/manifest.parquet | $(PY)
	$(PY) scripts/experiments/export-results.py --check $(RESULTS_TABLE) --flags "$(PROXY_TRAIN_FLAGS)" --manifest $(SHARDS)/manifest.parquet
	ids=$$(for i in $$(seq 0 $$(($(MIXTURES) - 1))); do grep -q "^$$i," $(RESULTS_TABLE) 2>/dev/null || echo $$i; done | paste -sd,); \
	if [ -n "$$ids" ]; then pids=(); for i in $$(seq 0 $$(($(RUN_JOBS) - 1))); do \
	    $(BIN)/proxy-train --shards $(SHARDS) --mixtures $(DATA)/mixtures.parquet --output $(RUNS) --ids $$ids \
	        $(PROXY_TRAIN_FLAGS) --threads $(RUN_THREADS) $$( [ $(RUN_JOBS) = 1 ] || echo --array-index $$i --array-count $(RUN_JOBS)) & pids+=($$!); \
	done; for p in "$${pids[@]}"; do wait $$p; done; \
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

# A larger CPU run of the same pipeline (a few hours on 2 cores): 4× the proxies, 4× their
# tokens, 8× the target's tokens, in data-experiment/ (the corpus is shared with the demo).
# The proxies also evaluate at steps 28-56 (six evaluations after warm-up in their first quarter,
# for the horizon backtest) and keep their checkpoints. One process of one thread per core (a
# run's result depends on neither): measured on 2 cores, about 5.0k tokens/s per process
# (3.4-3.9k on another 2-core machine on 2026-12-02) (10.1k in all) against 10.9k for one process of two threads when nothing else runs, but a
# compile beside them left each single-threaded process about 2k tokens/s where the two-thread
# process fell to 1.5k: its threads wait on each other.
EXPERIMENT := data-experiment
EXPERIMENT_TARGET_TOKENS := 4194304
EXPERIMENT_MIXTURES := 256
EXPERIMENT_VARS := DATA=$(EXPERIMENT) MIXTURES=$(EXPERIMENT_MIXTURES) PROXY_TOKENS=262144 TARGET_TOKENS=$(EXPERIMENT_TARGET_TOKENS) \
    PROXY_FLAGS="$(PROXY_FLAGS) --eval-at 28,40,48,56 --keep-checkpoints" RUN_JOBS=$(shell nproc)
experiment: experiment-runs
	$(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) $(EXPERIMENT)/report.html
	$(PY) scripts/show-comparison.py $(EXPERIMENT)/target/comparison.parquet $(EXPERIMENT)/optimum/optimum.parquet

# The experiment's 256 proxies alone (resumable: finished runs are skipped).
experiment-runs: experiment-shards
	$(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) $(EXPERIMENT)/runs/.stamp

# The experiment's shards alone (what the held-out targets and the baselines train on).
experiment-shards: $(CORPUS)/.stamp | build
	mkdir -p $(EXPERIMENT)
	ln -sfn $(abspath $(CORPUS)) $(EXPERIMENT)/corpus
	$(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) $(EXPERIMENT)/shards/manifest.parquet

# The same pipeline at GPU scale on the demo corpus (14.6M training tokens), for one GPU:
# 512 regmix-1m proxies (the paper's proxy shape, context 2048) of 16M tokens each, and
# regmix-60m targets of 32M tokens (more would break the 4-epoch availability cap on this
# corpus). `--backend auto` (the default) trains on the GPU when CUDA is usable.
EXPERIMENT_GPU := data-gpu
experiment-gpu: $(CORPUS)/.stamp | build
	mkdir -p $(EXPERIMENT_GPU)
	ln -sfn $(abspath $(CORPUS)) $(EXPERIMENT_GPU)/corpus
	$(MAKE) --no-print-directory -o build -o setup DATA=$(EXPERIMENT_GPU) MIXTURES=512 \
	    PROXY_PRESET=regmix-1m PROXY_TOKENS=16777216 \
	    PROXY_FLAGS="--batch-tokens 262144 --lr 4e-4 --eval-windows 16 --eval-every 16" \
	    TARGET_PRESET=regmix-60m TARGET_TOKENS=33554432 \
	    TARGET_FLAGS="--batch-tokens 262144 --lr 6e-4 --min-lr 6e-5 --eval-windows 16" \
	    $(EXPERIMENT_GPU)/report.html
	$(PY) scripts/show-comparison.py $(EXPERIMENT_GPU)/target/comparison.parquet $(EXPERIMENT_GPU)/optimum/optimum.parquet

# The optimum for the target's horizon (fit --at-tokens), judged on the experiment's corpus.
# Every target is resumable: finished runs are skipped, unfinished ones resume.
#   make backtest-a       fit on each proxy's first quarter, predict its end (no new runs)
#   make experiment-results  the 256 proxies as a committed table (results/horizon/proxies-262k.csv):
#                         trains only the mixtures it lacks, reusing finished runs
#   make horizon-plain    plain RegMix's optimum, fitted on that table (no runs needed)
#   make horizon-anchors  32 of the proxies' mixtures, the prior and the plain optimum trained
#                         as the proxies are (warm-up 25 steps, constant rate) to 2M tokens:
#                         their first 262k tokens are the proxies' own, step for step
#   make horizon-holdout  12 small targets × 4M tokens on mixtures of another seed (7) that no
#                         fit reads
#   make horizon-baselines  the prior and uniform as small targets × 4M tokens in each seed of
#                         HORIZON_SEEDS: the final comparison's baselines (the optima join them)
#   make horizon-score    the held-out targets ranked by each fit (reads the committed tables)
#   make horizon-hedge    the horizon optimum pulled toward the prior (λ chosen on the held-out
#                         targets), trained into the final comparison's tables
#   make horizon-verify   trains the first run of each committed table again, to its first
#                         checkpointed evaluation, and checks it equals the table bit for bit
# The targets train in rounds of one single-threaded target-train process per core (measured:
# 4.5k tokens/s in all for two such processes against 4.2k for one of two threads). Their results are committed as CSV tables in
# results/horizon/ (scripts/experiments/export-results.py --merge), which `collect --import-table`
# reads back: a model already in its table is not trained again, so a table grows across
# sessions (on fresh machines) until every model is in it. Each table has its settings beside
# it (<table>.settings.json: the flags below and what collect read from the runs): a merge of
# other settings is refused, and so is skipping a table's models when this Makefile's flags or
# the shards' tokenizer are not the table's (export-results.py --check).
HORIZON := $(EXPERIMENT)/horizon
RESULTS := results/horizon
PROXIES_TABLE := $(RESULTS)/proxies-262k.csv
ANCHOR_TOKENS := 2097152
ANCHOR_FLAGS := --preset micro --tokens $(ANCHOR_TOKENS) --seed $(SEED) --batch-tokens 1024 --lr 3e-3 --eval-windows 16 \
    --warmup-steps 25 --eval-every 256 --eval-at 28,32,40,48,56,64,96,128,192,256,384,512,768,1024,1536
HOLDOUT := $(HORIZON)/holdout
HOLDOUT_COUNT := 12
CHECK_TABLE = $(PY) scripts/experiments/export-results.py --check $(1) --flags "$(2)" --manifest $(EXPERIMENT)/shards/manifest.parquet
backtest-a: experiment-runs | $(PY)
	$(PY) scripts/experiments/horizon-backtest.py $(BIN) $(HORIZON)/backtest-a --runs $(EXPERIMENT)/runs --mixtures $(EXPERIMENT)/mixtures.parquet

experiment-results: experiment-shards | $(PY)
	$(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) RESULTS_TABLE=$(PROXIES_TABLE) results-table

# The proxies read back from their committed table, and plain RegMix's optimum fitted on them
# with `make experiment`'s fit and search: what the anchors and the final comparison train, on
# any machine, whether or not it trained the proxies.
PLAIN := $(HORIZON)/plain
# A committed table (CSV and its .trajectories.csv) read back into collect's contracts.
# require_rows TABLE,N,WHAT,TARGET: stop unless TABLE has all N runs (TARGET trains the rest).
require_rows = n=$$(($$(wc -l < $(1)) - 1)); [ $$n = $(2) ] || \
    { echo "$(1): $$n of the $(2) $(3); \`make $(4)\` trains the rest" >&2; exit 2; }
import_table = $(BIN)/collect --import-table $(1) --import-history $(basename $(1)).trajectories.csv --output $(2)
TABLES := $(HORIZON)/tables
$(TABLES)/%.parquet: $(RESULTS)/%.csv $(RESULTS)/%.trajectories.csv | build
	mkdir -p $(TABLES)
	$(call import_table,$<,$@)

$(HORIZON)/proxies.parquet: $(PROXIES_TABLE) | build
	$(call require_rows,$<,$(EXPERIMENT_MIXTURES),proxies,experiment-results)
	mkdir -p $(HORIZON)
	$(call import_table,$<,$@)

$(PLAIN)/fit/model.json: $(HORIZON)/proxies.parquet | build
	$(BIN)/fit --dataset $< $(FIT_FLAGS) --output $(PLAIN)/fit

$(PLAIN)/optimum/optimum.parquet: TARGET_TOKENS := $(EXPERIMENT_TARGET_TOKENS)
$(PLAIN)/optimum/optimum.parquet: $(PLAIN)/fit/model.json | experiment-shards
	$(BIN)/optimize --fit $(PLAIN)/fit --manifest $(EXPERIMENT)/shards/manifest.parquet --output $(PLAIN)/optimum $(OPTIMIZE_FLAGS)

horizon-plain: $(PLAIN)/optimum/optimum.parquet

# The prior and the plain optimum first (one target-train process each), then the missing ones
# of mixtures 0-31 in rounds of one single-threaded proxy-train process per core; each round's
# runs are merged into the committed table as it ends, so an interrupted session loses at most
# one round (and a rerun resumes it from its last checkpoint).
ANCHOR_NAMED_FLAGS := $(ANCHOR_FLAGS) --min-lr 3e-3
horizon-anchors: $(PLAIN)/optimum/optimum.parquet | $(PY)
	$(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) $(EXPERIMENT)/mixtures.parquet
	$(call CHECK_TABLE,$(RESULTS)/anchors-2m.csv,$(ANCHOR_FLAGS))
	$(call CHECK_TABLE,$(RESULTS)/anchors-named-2m.csv,$(ANCHOR_NAMED_FLAGS))
	todo="$(call pending,prior=prior regmix=$(PLAIN)/optimum/optimum.parquet,$(RESULTS)/anchors-named-2m.csv)"; \
	[ -z "$$todo" ] || $(MAKE) --no-print-directory -o build -o setup horizon-train TRAIN_MODELS="$$todo" \
	    TRAIN_DIR=$(HORIZON)/anchors-named TRAIN_FLAGS="$(ANCHOR_NAMED_FLAGS)" TRAIN_RESULTS=$(RESULTS)/anchors-named-2m.csv
	ids=($$(for i in $$(seq 0 31); do grep -q "^$$i," $(RESULTS)/anchors-2m.csv 2>/dev/null || echo $$i; done)); n=$(shell nproc); \
	for ((k = 0; k < $${#ids[@]}; k += n)); do pids=(); \
	    for i in "$${ids[@]:k:n}"; do \
	        $(BIN)/proxy-train --shards $(EXPERIMENT)/shards --mixtures $(EXPERIMENT)/mixtures.parquet --ids $$i \
	            --output $(HORIZON)/anchors $(ANCHOR_FLAGS) --threads 1 & pids+=($$!); \
	    done; for p in "$${pids[@]}"; do wait $$p; done; \
	    $(BIN)/collect --runs $(HORIZON)/anchors --mixtures $(EXPERIMENT)/mixtures.parquet --output $(HORIZON)/anchors.parquet; \
	    $(PY) scripts/experiments/export-results.py $(HORIZON)/anchors.parquet $(RESULTS)/anchors-2m.csv --merge --flags "$(ANCHOR_FLAGS)"; \
	done

HORIZON_TARGET := --preset $(TARGET_PRESET) --tokens $(EXPERIMENT_TARGET_TOKENS) $(TARGET_FLAGS)

$(HOLDOUT)/mixtures.parquet: | experiment-shards
	mkdir -p $(HOLDOUT)
	$(BIN)/sample-mixtures --manifest $(EXPERIMENT)/shards/manifest.parquet --count $(HOLDOUT_COUNT) --seed 7 --output $@

# The NAME=FILE models of $(1) whose NAME is not yet a run of the committed table $(2).
pending = $$(for m in $(1); do grep -q "^$${m%%=*}," $(2) 2>/dev/null || printf '%s ' $$m; done)

horizon-holdout: $(HOLDOUT)/mixtures.parquet | $(PY)
	$(call CHECK_TABLE,$(RESULTS)/holdout-4m.csv,$(HORIZON_TARGET) --seed $(SEED))
	todo="$(call pending,$$(for i in $$(seq 0 $$(($(HOLDOUT_COUNT) - 1))); do echo m$$i=$(HOLDOUT)/mixtures.parquet#$$i; done),$(RESULTS)/holdout-4m.csv)"; \
	if [ -n "$$todo" ]; then $(MAKE) --no-print-directory -o build -o setup horizon-train TRAIN_MODELS="$$todo" \
	    TRAIN_DIR=$(HOLDOUT)/target TRAIN_SEED=$(SEED) TRAIN_RESULTS=$(RESULTS)/holdout-4m.csv; \
	else echo "horizon-holdout: every model is in $(RESULTS)/holdout-4m.csv"; fi

# Backtest B: the 256 proxies, seen to their end (262k tokens), predict the anchors (the same
# runs continued to 2M) out of fold; the prior and the plain optimum at 2M are shown beside.
# Reads the committed tables only: it scores the anchors committed so far.
BACKTEST_B := $(HORIZON)/backtest-b
backtest-b: $(HORIZON)/proxies.parquet $(TABLES)/anchors-2m.parquet $(TABLES)/anchors-named-2m.parquet | $(PY)
	mkdir -p $(BACKTEST_B)
	$(PY) scripts/experiments/horizon-backtest.py $(BIN) $(BACKTEST_B) --seen $(HORIZON)/proxies.parquet \
	    --truth $(TABLES)/anchors-2m.parquet --named $(TABLES)/anchors-named-2m.parquet

# The horizon-aware optimum: the proxies with the anchors in place of their first 32 runs (the
# same runs continued: extend-runs.py checks it) and the two named anchors, fitted by the law at
# the target's tokens (fit --at-tokens) and searched with the plain optimum's settings. Fixed
# before any target trains it. It needs every anchor.
AT_TARGET := $(HORIZON)/at-target
$(AT_TARGET)/runs.csv: $(PROXIES_TABLE) $(RESULTS)/anchors-2m.csv $(RESULTS)/anchors-named-2m.csv | $(PY)
	$(call require_rows,$(RESULTS)/anchors-2m.csv,32,anchors,horizon-anchors)
	mkdir -p $(AT_TARGET)
	$(PY) scripts/experiments/extend-runs.py $^ --output $@

$(AT_TARGET)/runs.parquet: $(AT_TARGET)/runs.csv | build
	$(call import_table,$<,$@)

$(AT_TARGET)/fit/model.json: $(AT_TARGET)/runs.parquet | build
	$(BIN)/fit --dataset $< $(FIT_FLAGS) --at-tokens $(EXPERIMENT_TARGET_TOKENS) --output $(AT_TARGET)/fit

$(AT_TARGET)/optimum/optimum.parquet: TARGET_TOKENS := $(EXPERIMENT_TARGET_TOKENS)
$(AT_TARGET)/optimum/optimum.parquet: $(AT_TARGET)/fit/model.json | experiment-shards
	$(BIN)/optimize --fit $(AT_TARGET)/fit --manifest $(EXPERIMENT)/shards/manifest.parquet --output $(AT_TARGET)/optimum $(OPTIMIZE_FLAGS)

horizon-optimum: $(AT_TARGET)/optimum/optimum.parquet

# The held-out targets scored (the committed table so far): the horizon optimum's fit, plain
# RegMix's and a plain fit on the anchors alone, each refitted as its optimum was and ranking
# targets no fit read, beside each target's own loss at a quarter of its tokens.
HELDOUT := $(HORIZON)/heldout
horizon-score: $(AT_TARGET)/runs.parquet $(HORIZON)/proxies.parquet $(TABLES)/holdout-4m.parquet $(TABLES)/anchors-2m.parquet | $(PY)
	mkdir -p $(HELDOUT)
	$(PY) scripts/experiments/horizon-heldout.py $(BIN) $(HELDOUT) --heldout $(TABLES)/holdout-4m.parquet \
	    --law $(AT_TARGET)/runs.parquet --proxies $(HORIZON)/proxies.parquet --anchors $(TABLES)/anchors-2m.parquet \
	    --at-tokens $(EXPERIMENT_TARGET_TOKENS) --planned $(HOLDOUT_COUNT) --fit-flags "$(FIT_FLAGS)"

# The hedge: the horizon optimum's search again with a pull toward the prior, λ chosen by
# `optimize --kl-to-prior auto` on the held-out targets (the λ whose objective ranks them best).
# It needs all of them, reads only their measured losses (no fit reads them, so horizon-score
# is untouched by it), and is fixed before horizon-hedge trains it beside the final comparison
# (unless it is the horizon optimum: λ = 0 or a pull too weak to move it).
HEDGED := $(HORIZON)/hedged
$(HEDGED)/optimum/optimum.parquet: TARGET_TOKENS := $(EXPERIMENT_TARGET_TOKENS)
$(HEDGED)/optimum/optimum.parquet: $(AT_TARGET)/fit/model.json $(TABLES)/holdout-4m.parquet | experiment-shards
	$(call require_rows,$(RESULTS)/holdout-4m.csv,$(HOLDOUT_COUNT),held-out targets,horizon-holdout)
	$(BIN)/optimize --fit $(AT_TARGET)/fit --manifest $(EXPERIMENT)/shards/manifest.parquet --output $(HEDGED)/optimum $(OPTIMIZE_FLAGS) \
	    --kl-to-prior auto --holdout $(TABLES)/holdout-4m.parquet

# The final comparison, small targets × 4M tokens in each seed of HORIZON_SEEDS:
# horizon-baselines trains the prior and uniform (they need no fit), horizon-final adds plain
# RegMix's optimum and the horizon-aware one.
HORIZON_SEEDS := 42 43
FINAL := $(HORIZON)/final
FINAL_BASELINES := prior=prior uniform=uniform
FINAL_OPTIMA := horizon=$(AT_TARGET)/optimum/optimum.parquet regmix=$(PLAIN)/optimum/optimum.parquet
define final_models
for s in $(HORIZON_SEEDS); do \
    $(call CHECK_TABLE,$(RESULTS)/final-seed-$$s.csv,$(HORIZON_TARGET) --seed $$s); \
    todo="$(call pending,$(1),$(RESULTS)/final-seed-$$s.csv)"; \
    [ -z "$$todo" ] || $(MAKE) --no-print-directory -o build -o setup horizon-train TRAIN_MODELS="$$todo" \
        TRAIN_DIR=$(FINAL)/seed-$$s TRAIN_SEED=$$s TRAIN_RESULTS=$(RESULTS)/final-seed-$$s.csv || exit 1; \
done
endef
horizon-baselines: experiment-shards | $(PY)
	$(call final_models,$(FINAL_BASELINES))

# Each optimum beside a baseline (horizon prior regmix uniform): the horizon optimum and the
# prior train first in each seed, so that round alone answers whether it beats the prior.
horizon-final: $(PLAIN)/optimum/optimum.parquet $(AT_TARGET)/optimum/optimum.parquet | $(PY)
	$(call final_models,$(foreach i,1 2,$(word $(i),$(FINAL_OPTIMA)) $(word $(i),$(FINAL_BASELINES))))

horizon-hedge: $(HEDGED)/optimum/optimum.parquet | $(PY)
	if cmp -s $(HEDGED)/optimum/optimum.yaml $(AT_TARGET)/optimum/optimum.yaml; then \
	    echo "horizon-hedge: the hedged optimum's weights are the horizon optimum's (optimum.yaml, six decimals): nothing new to train"; \
	else $(call final_models,hedged=$<); fi

# Trains TRAIN_MODELS (NAME=FILE ...) into TRAIN_DIR with TRAIN_FLAGS (the targets' flags and
# TRAIN_SEED unless given) in rounds of one model per core (one thread each); after each round it collects the finished models and merges them into
# the committed table TRAIN_RESULTS (export-results.py --merge: a model already there must have
# the same values and the table's settings), so results land as they finish. A last pass trains
# nothing and writes comparison.parquet over all of TRAIN_MODELS.
TRAIN_FLAGS = $(HORIZON_TARGET) --seed $(TRAIN_SEED)
horizon-train:
	ms=($(TRAIN_MODELS)); n=$(shell nproc); \
	for ((k = 0; k < $${#ms[@]}; k += n)); do pids=(); \
	    for m in "$${ms[@]:k:n}"; do \
	        $(BIN)/target-train --shards $(EXPERIMENT)/shards --output $(TRAIN_DIR) $(TRAIN_FLAGS) \
	            --threads 1 --mixture "$$m" & pids+=($$!); \
	    done; for p in "$${pids[@]}"; do wait $$p; done; \
	    $(BIN)/collect --targets $(TRAIN_DIR) --output $(TRAIN_DIR).parquet; \
	    $(PY) scripts/experiments/export-results.py $(TRAIN_DIR).parquet $(TRAIN_RESULTS) --merge --flags "$(TRAIN_FLAGS)"; \
	done
	$(BIN)/target-train --shards $(EXPERIMENT)/shards --output $(TRAIN_DIR) $(TRAIN_FLAGS) \
	    $$(for m in $(TRAIN_MODELS); do echo --mixture $$m; done)

# Reproduces the committed tables on this machine: the first run of each (m0, the prior, the
# proxies' mixture 0) is trained again into $(VERIFY) to the table's first evaluation of it
# (a target stops there, at its first checkpoint: --stop-after; a proxy, 52 s, runs to the end)
# and compared with the table, bit for bit (export-results.py --verify). A table committed
# before settings were recorded gets them from its probe.
VERIFY := $(HORIZON)/verify
first_step = $$(awk -F, 'NR == 2 { print $$2 }' $(basename $(1)).trajectories.csv)
horizon-verify: $(HOLDOUT)/mixtures.parquet | $(PY)
	rm -rf $(VERIFY)
	[ ! -f $(RESULTS)/holdout-4m.csv ] || $(MAKE) --no-print-directory -o build -o setup verify-target \
	    VERIFY_TABLE=$(RESULTS)/holdout-4m.csv VERIFY_MODEL=m0=$(HOLDOUT)/mixtures.parquet#0 VERIFY_SEED=$(SEED)
	for s in $(HORIZON_SEEDS); do [ ! -f $(RESULTS)/final-seed-$$s.csv ] || $(MAKE) --no-print-directory -o build -o setup \
	    verify-target VERIFY_TABLE=$(RESULTS)/final-seed-$$s.csv VERIFY_MODEL=prior=prior VERIFY_SEED=$$s; done
	[ ! -f $(PROXIES_TABLE) ] || $(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) verify-proxies

verify-target:
	mkdir -p $(VERIFY); d=$(VERIFY)/$(notdir $(basename $(VERIFY_TABLE))); step=$(call first_step,$(VERIFY_TABLE)); \
	$(BIN)/target-train --shards $(EXPERIMENT)/shards --output $$d $(HORIZON_TARGET) --seed $(VERIFY_SEED) --threads 1 \
	    --mixture $(VERIFY_MODEL) --stop-after $$step 2> $$d.log || grep -q "stopped after $$step steps" $$d.log || { cat $$d.log; exit 1; }; \
	$(BIN)/collect --targets $$d --step $$step --output $$d.parquet; \
	$(PY) scripts/experiments/export-results.py --verify $$d.parquet $(VERIFY_TABLE) --flags "$(HORIZON_TARGET) --seed $(VERIFY_SEED)"

verify-proxies: $(DATA)/mixtures.parquet
	mkdir -p $(VERIFY)
	$(BIN)/proxy-train --shards $(SHARDS) --mixtures $(DATA)/mixtures.parquet --output $(VERIFY)/proxies --ids 0 $(PROXY_TRAIN_FLAGS) --threads 1
	$(BIN)/collect --runs $(VERIFY)/proxies --mixtures $(DATA)/mixtures.parquet --output $(VERIFY)/proxies.parquet
	$(PY) scripts/experiments/export-results.py --verify $(VERIFY)/proxies.parquet $(PROXIES_TABLE) --flags "$(PROXY_TRAIN_FLAGS)"

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
	$(PY) tests/read-in-megatron.py $(BIN)
	$(PY) tests/read-in-duckdb.py $(BIN)
	$(PY) tests/export-results-round-trip.py $(BIN)
	REGMIX_BIN=$(BIN) REGMIX_PYTHON=$(abspath $(PY)) bash scripts/slurm/test-local.sh

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

include experiments/calibration.mk
include experiments/calibrated.mk

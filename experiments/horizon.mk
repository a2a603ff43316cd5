# The experiments on the demo corpus at larger scale: `make experiment` (the whole pipeline
# with 256 proxies and 4M-token targets), `make experiment-gpu`, and the horizon study
# (docs/experiments.md): backtests, anchors, held-out targets, the final comparison. Included
# by the Makefile, which defines what they share (BIN, PY, the flags, side_by_side and per_core).
.PHONY: experiment experiment-runs experiment-shards experiment-gpu backtest-a backtest-b experiment-results horizon-plain horizon-anchors horizon-holdout horizon-optimum horizon-baselines horizon-final horizon-hedge horizon-score horizon-train horizon-verify verify-target verify-proxies

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
	for ((k = 0; k < $${#ids[@]}; k += n)); do failed=; \
	    $(call side_by_side,"$${ids[@]:k:n}",$(BIN)/proxy-train --shards $(EXPERIMENT)/shards --mixtures $(EXPERIMENT)/mixtures.parquet \
	        --ids $$job --output $(HORIZON)/anchors $(ANCHOR_FLAGS) --threads 1) || failed=1; \
	    $(BIN)/collect --runs $(HORIZON)/anchors --mixtures $(EXPERIMENT)/mixtures.parquet --output $(HORIZON)/anchors.parquet; \
	    $(PY) scripts/experiments/export-results.py $(HORIZON)/anchors.parquet $(RESULTS)/anchors-2m.csv --merge --flags "$(ANCHOR_FLAGS)"; \
	    [ -z "$$failed" ] || exit 1; \
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
# TRAIN_SEED unless given) in rounds of TRAIN_JOBS models (default: one per core; one thread each); after each round (a failed one too, before it stops) it collects the finished models and merges them into
# the committed table TRAIN_RESULTS (export-results.py --merge: a model already there must have
# the same values and the table's settings), so results land as they finish. A last pass trains
# nothing and writes comparison.parquet over all of TRAIN_MODELS.
TRAIN_FLAGS = $(HORIZON_TARGET) --seed $(TRAIN_SEED)
TRAIN_JOBS ?= $(shell nproc)
horizon-train:
	ms=($(TRAIN_MODELS)); n=$(TRAIN_JOBS); \
	for ((k = 0; k < $${#ms[@]}; k += n)); do \
	    failed=; $(call side_by_side,"$${ms[@]:k:n}",$(BIN)/target-train --shards $(EXPERIMENT)/shards --output $(TRAIN_DIR) $(TRAIN_FLAGS) \
	        --threads 1 --mixture "$$job") || failed=1; \
	    $(BIN)/collect --targets $(TRAIN_DIR) --output $(TRAIN_DIR).parquet; \
	    $(PY) scripts/experiments/export-results.py $(TRAIN_DIR).parquet $(TRAIN_RESULTS) --merge --flags "$(TRAIN_FLAGS)"; \
	    [ -z "$$failed" ] || exit 1; \
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

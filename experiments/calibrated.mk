# RegMix at the calibrated recipe (issue 25, step 4): the calibration (experiments/calibration.mk)
# recommends recipe `lr-3e-4` (micro, 262,144 tokens, constant 3e-4: the default's cost, a 10×
# lower rate). Its proxies on the experiment's first CALIBRATED_COUNT mixtures (the same
# mixtures as results/horizon/proxies-262k.csv), plain RegMix's fit and search on them, and the
# optimum trained as a small × 4M target in seeds 42 and 43 beside the committed prior, uniform
# and earlier optima (results/horizon/final-seed-*.csv). Each step is resumable and lands in
# results/ as it finishes. Included by the Makefile.
#   make calibrated-proxies   train the proxies results/calibrated/ lacks (finished runs reused)
#   make calibrated-optimum   fit and search on the committed table (fixed before any target)
#   make calibrated-heldout   the fit's ranking of the 12 held-out targets (none of them read)
#   make calibrated-final     the optimum as small × 4M targets in seeds 42 and 43 (results/calibrated/final-seed-*.csv)
#   make calibrated-optimum CALIBRATED_BACKEND=cuda    the same on the CUDA-trained sweep
#   make calibrated-spread CALIBRATED_BACKEND=cuda     the prior, the optimum and uniform in more seeds
#   make vetting              would longer lr-3e-4 proxies have ranked the final comparison's mixtures right?
# CALIBRATED_BACKEND=cuda: the same sweep trained by the CUDA backend (256 proxies, recipe
# lr-3e-4-cuda of the calibration; its optimum is the row `calibrated-cuda` of the final tables).
# Training it needs a GPU (experiments/device-job.sh trains it on the lent GPU machine); the
# committed table lets any machine fit, search and train the targets.
CALIBRATED_BACKEND ?= cpu
CALIBRATED_FLAGS := --preset micro --tokens 262144 --seed $(SEED) --batch-tokens 1024 --eval-windows 16 --lr 3e-4 --eval-every 32
ifeq ($(CALIBRATED_BACKEND),cuda)
CALIBRATED_NAME := calibrated-cuda
CALIBRATED_COUNT ?= 256
CALIBRATED_FLAGS += --backend cuda
else
CALIBRATED_NAME := calibrated
CALIBRATED_COUNT ?= 64
endif
CALIBRATED := $(EXPERIMENT)/$(CALIBRATED_NAME)
CALIBRATED_TABLE := results/calibrated/proxies-262k-lr3e-4$(if $(filter cuda,$(CALIBRATED_BACKEND)),-cuda).csv
# The calibration table, when made (make calibration-score): optimize's guardrail reads it.
CALIBRATED_GUARD = $(if $(wildcard $(CALIBRATION)/calibration.parquet),--calibration $(CALIBRATION)/calibration.parquet)

.PHONY: calibrated-proxies calibrated-optimum calibrated-heldout calibrated-final calibrated-spread
calibrated-proxies: experiment-shards | $(PY)
	$(MAKE) --no-print-directory -o build -o setup $(EXPERIMENT_VARS) $(EXPERIMENT)/mixtures.parquet
	mkdir -p $(dir $(CALIBRATED_TABLE))
	[ ! -f $(CALIBRATED_TABLE) ] || $(call CHECK_TABLE,$(CALIBRATED_TABLE),$(CALIBRATED_FLAGS))
	ids=$$(for i in $$(seq 0 $$(($(CALIBRATED_COUNT) - 1))); do grep -q "^$$i," $(CALIBRATED_TABLE) 2>/dev/null || echo $$i; done | paste -sd,); \
	if [ -n "$$ids" ]; then $(call per_core,$$ids,$(BIN)/proxy-train --shards $(EXPERIMENT)/shards --mixtures $(EXPERIMENT)/mixtures.parquet \
	    --output $(CALIBRATED)/runs $(CALIBRATED_FLAGS) --threads 1); fi
	$(BIN)/collect --runs $(CALIBRATED)/runs --mixtures $(EXPERIMENT)/mixtures.parquet --output $(CALIBRATED)/proxies.parquet
	$(PY) scripts/experiments/export-results.py $(CALIBRATED)/proxies.parquet $(CALIBRATED_TABLE) --merge --flags "$(CALIBRATED_FLAGS)"

$(CALIBRATED)/table.parquet: $(CALIBRATED_TABLE) | build
	$(call require_rows,$<,$(CALIBRATED_COUNT),proxies,calibrated-proxies)
	mkdir -p $(CALIBRATED)
	$(call import_table,$<,$@)

$(CALIBRATED)/fit/model.json: $(CALIBRATED)/table.parquet | build
	$(BIN)/fit --dataset $< $(FIT_FLAGS) --output $(CALIBRATED)/fit

$(CALIBRATED)/optimum/optimum.parquet: TARGET_TOKENS := $(EXPERIMENT_TARGET_TOKENS)
$(CALIBRATED)/optimum/optimum.parquet: $(CALIBRATED)/fit/model.json | experiment-shards
	$(BIN)/optimize --fit $(CALIBRATED)/fit --manifest $(EXPERIMENT)/shards/manifest.parquet --output $(CALIBRATED)/optimum $(OPTIMIZE_FLAGS) \
	    $(CALIBRATED_GUARD)

calibrated-optimum: $(CALIBRATED)/optimum/optimum.parquet

# The fit refitted as the optimum's was, scoring the 12 held-out small × 4M targets (no fit
# reads them; fit --evaluate scores them after the final model is fixed).
calibrated-heldout: $(CALIBRATED)/table.parquet $(TABLES)/holdout-4m.parquet | build
	$(BIN)/fit --dataset $< $(FIT_FLAGS) --evaluate $(TABLES)/holdout-4m.parquet --output $(CALIBRATED)/heldout

# The targets go in tables of their own (results/calibrated/final-seed-<s>.csv), beside
# results/horizon/'s baselines (when they were trained, a shard's name still hashed its input's
# absolute path and the two folders recorded different shards identities; results/README.md).
calibrated-final: $(CALIBRATED)/optimum/optimum.parquet | $(PY)
	for s in $(HORIZON_SEEDS); do t=$(dir $(CALIBRATED_TABLE))final-seed-$$s.csv; \
	    [ ! -f $$t ] || $(call CHECK_TABLE,$$t,$(HORIZON_TARGET) --seed $$s); \
	    grep -q "^$(CALIBRATED_NAME)," $$t 2>/dev/null || $(MAKE) --no-print-directory -o build -o setup horizon-train \
	        TRAIN_MODELS="$(CALIBRATED_NAME)=$<" TRAIN_DIR=$(FINAL)/seed-$$s TRAIN_SEED=$$s TRAIN_RESULTS=$$t || exit 1; \
	done

# The seed-to-seed spread of the final comparison. In seeds 42 and 43 the prior's two targets
# differ by 0.05 while every gain the proxies predict near the prior is below 0.01, so the prior,
# the calibrated optimum and uniform train again as small × 4M targets in SPREAD_SEEDS (seeds
# no choice of mixture or method has seen), one seed per core, each seed's models one after
# another in that order, to results/calibrated/final-seed-<s>.csv. Resumable as
# calibrated-final is. The optimum is the committed one (make calibrated-optimum).
SPREAD_SEEDS := 44 45
SPREAD_MODELS = prior=prior $(CALIBRATED_NAME)=$(CALIBRATED)/optimum/optimum.parquet uniform=uniform
calibrated-spread: $(CALIBRATED)/optimum/optimum.parquet | $(PY)
	for s in $(SPREAD_SEEDS); do t=$(dir $(CALIBRATED_TABLE))final-seed-$$s.csv; \
	    [ ! -f $$t ] || $(call CHECK_TABLE,$$t,$(HORIZON_TARGET) --seed $$s); \
	done
	$(call side_by_side,$(SPREAD_SEEDS),t=$(dir $(CALIBRATED_TABLE))final-seed-$$job.csv; todo="$(call pending,$(SPREAD_MODELS),$$t)"; \
	    [ -z "$$todo" ] || $(MAKE) --no-print-directory -o build -o setup horizon-train TRAIN_MODELS="$$todo" TRAIN_JOBS=1 \
	        TRAIN_DIR=$(FINAL)/seed-$$job TRAIN_SEED=$$job TRAIN_RESULTS=$$t)

# Would longer proxies have caught it? The optima of the final comparison lost to the prior at
# 16×; here every mixture trained as a target there (the prior, uniform, the two calibrated
# optima, the horizon and plain optima: 2 to 4 seeds each, a mixture's seeds averaged) calibrates
# the lr-3e-4 recipe at 262k, 512k, 1M and 2M tokens: one 2M-token proxy per mixture, evaluated on
# the way (experiments/vetting-recipes.tsv), through the product's own scripts/calibrate.sh. A
# recipe that orders these six as the targets do could vet an optimum before a target trains it.
# Tables land in results/vetting/ as they finish.
VETTING := $(EXPERIMENT)/vetting
VET_TABLES := $(EXPERIMENT)/calibrated-tables
VET_TARGETS := $(TABLES)/final-seed-42.parquet $(TABLES)/final-seed-43.parquet \
    $(foreach s,42 43 44 45,$(VET_TABLES)/final-seed-$(s).parquet)
$(VET_TABLES)/%.parquet: results/calibrated/%.csv results/calibrated/%.trajectories.csv | build
	mkdir -p $(VET_TABLES)
	$(call import_table,$<,$@)

.PHONY: vetting
vetting: $(VET_TARGETS) experiment-shards | $(PY)
	mkdir -p results/vetting
	bash scripts/calibrate.sh --recipes experiments/vetting-recipes.tsv --shards $(EXPERIMENT)/shards --work $(VETTING) \
	    --targets "$(VET_TARGETS)" --bin $(CAL_BIN) --results results/vetting --python $(abspath $(PY)) --jobs $(shell nproc)

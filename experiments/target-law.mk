# The target law (issue 25, step 5: the multi-fidelity design). Every small × 4M target this
# project trained (the 12 held-out random mixtures, the prior, uniform and four optima, 2 to 6
# seeds each: 32 runs of 18 distinct mixtures) fits each domain's loss as a law of the data that
# helps it, at the target's scale; which domain helps which comes from the 256 CUDA lr-3e-4
# proxies (results/calibrated/proxies-262k-lr3e-4-cuda.csv). fit --target-runs, then optimize's
# search near the prior (--strength 30: the setting whose optimum the law predicts lowest among
# 1, 10, 30, 100 and 300, chosen before any target trained it), and the optimum trained as a
# small × 4M target in TARGET_LAW_SEEDS, one seed per core, to results/target-law/. Resumable:
# a seed whose table has the optimum is skipped. Included by the Makefile.
#   make target-law-optimum   fit and search (seconds)
#   make target-law-final     the optimum as small × 4M targets (about 25 minutes a seed)
#   make target-law-final TARGET_LAW_NAME=target-law-b   the same weights, another data stream
TARGET_LAW := $(EXPERIMENT)/target-law
TARGET_LAW_RUNS := $(TABLES)/holdout-4m.parquet $(TABLES)/final-seed-42.parquet $(TABLES)/final-seed-43.parquet \
    $(foreach s,42 43 44 45,$(VET_TABLES)/final-seed-$(s).parquet)
TARGET_LAW_PROXIES := $(TARGET_LAW)/proxies.parquet
TARGET_LAW_STRENGTH := 30
TARGET_LAW_SEEDS := 42 43
# The name the optimum trains under: another name is another data stream of the same weights
# (target-law-b, as prior-b is the prior's).
TARGET_LAW_NAME := target-law

$(TARGET_LAW_PROXIES): results/calibrated/proxies-262k-lr3e-4-cuda.csv | build
	mkdir -p $(dir $@)
	$(call import_table,$<,$@)

$(TARGET_LAW)/fit/model.json: $(TARGET_LAW_PROXIES) $(TARGET_LAW_RUNS) | build
	$(BIN)/fit --dataset $(TARGET_LAW_PROXIES) --target '$(DEMO_TARGET)' --seed $(SEED) --output $(TARGET_LAW)/fit \
	    $(foreach f,$(TARGET_LAW_RUNS),--target-runs $(f))

$(TARGET_LAW)/optimum/optimum.parquet: $(TARGET_LAW)/fit/model.json | experiment-shards
	$(BIN)/optimize --fit $(TARGET_LAW)/fit --manifest $(EXPERIMENT)/shards/manifest.parquet --output $(TARGET_LAW)/optimum \
	    --samples 1000000 --top-k $(DEMO_TOP_K) --seed $(SEED) --bootstrap $(DEMO_BOOTSTRAP) --strength $(TARGET_LAW_STRENGTH) \
	    --target-tokens $(EXPERIMENT_TARGET_TOKENS) --max-epochs $(MAX_EPOCHS)

.PHONY: target-law-optimum target-law-final
target-law-optimum: $(TARGET_LAW)/optimum/optimum.parquet

target-law-final: $(TARGET_LAW)/optimum/optimum.parquet | $(PY)
	mkdir -p results/target-law
	for s in $(TARGET_LAW_SEEDS); do t=results/target-law/final-seed-$$s.csv; \
	    [ ! -f $$t ] || $(call CHECK_TABLE,$$t,$(HORIZON_TARGET) --seed $$s); \
	done
	$(call side_by_side,$(TARGET_LAW_SEEDS),t=results/target-law/final-seed-$$job.csv; \
	    todo="$(call pending,$(TARGET_LAW_NAME)=$<,$$t)"; \
	    [ -z "$$todo" ] || $(MAKE) --no-print-directory -o build -o setup horizon-train TRAIN_MODELS="$$todo" TRAIN_JOBS=1 \
	        TRAIN_DIR=$(TARGET_LAW)/final/seed-$$job TRAIN_SEED=$$job TRAIN_RESULTS=$$t)

# Calibration of proxy recipes on the target-scale mixtures we own (issue 25): the 12 held-out
# small × 4M targets and the prior, uniform, plain and horizon optima in seeds 42 and 43
# (16 distinct mixtures, their losses from the committed tables in results/horizon/). Each
# recipe of experiments/calibration-recipes.tsv trains one proxy per mixture (one single-threaded
# proxy-train process per core; finished runs skipped, unfinished ones resumed) and lands in
# results/calibration/<recipe>.csv as it finishes, so a fresh machine scores the committed
# recipes without training them again. Included by the Makefile.
#   make calibration             train what results/calibration/ lacks, then score every recipe
#   make calibration-score       score the committed recipes only (no training)
#   make calibration CAL_ONLY="lr-3e-4 small"   train these recipes only
CALIBRATION := $(EXPERIMENT)/calibration
CAL_RESULTS := results/calibration
CAL_RECIPES := experiments/calibration-recipes.tsv
# The binaries that train (a copy of a release build, so that rebuilding the tree while the
# recipes train changes nothing under them).
CAL_BIN ?= $(BIN)
CAL_ONLY ?=
CAL_TARGETS := $(TABLES)/holdout-4m.parquet $(TABLES)/final-seed-42.parquet $(TABLES)/final-seed-43.parquet
CALIBRATE_SH = bash scripts/calibrate.sh --recipes $(CAL_RECIPES) --shards $(EXPERIMENT)/shards --work $(CALIBRATION) \
    --targets "$(CAL_TARGETS)" --bin $(CAL_BIN) --results $(CAL_RESULTS) --python $(abspath $(PY)) --jobs $(shell nproc)

.PHONY: calibration calibration-score
calibration: $(CAL_TARGETS) experiment-shards | $(PY)
	mkdir -p $(CAL_RESULTS)
	$(CALIBRATE_SH) $(if $(CAL_ONLY),--only "$(CAL_ONLY)")

calibration-score: $(CAL_TARGETS) experiment-shards | $(PY)
	$(CALIBRATE_SH) --score-only

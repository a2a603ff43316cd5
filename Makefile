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

PAPER ?= ../shared/regmix-paper-data
PAPER_OUT := $(DATA)/paper
TARGET ?= valid_loss.pile_cc

.PHONY: all setup build corpus shards mixtures demo test bench clean paper

all: build

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --release --workspace

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

demo: mixtures
	@echo
	@echo "== demo: what was made =="
	@echo "corpus:   $(CORPUS) ($$(ls $(CORPUS)/*.jsonl | wc -l) domains)"
	@echo "shards:   $(SHARDS)/manifest.parquet"
	@echo "mixtures: $(DATA)/mixtures.parquet ($(MIXTURES) mixtures), YAML in $(DATA)/mixtures-yaml/"

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

test: $(PY) setup
	REGMIX_PYTHON=$(abspath $(PY)) cargo test --workspace

bench: build $(CORPUS)/.stamp
	bash scripts/bench/tokenize.sh
	bash scripts/bench/fit-optimize.sh

clean:
	rm -rf $(DATA)

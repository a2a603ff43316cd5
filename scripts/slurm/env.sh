# Paths, sizes and the corpus's settings for the Slurm batch scripts, each overridable from the
# environment that submit.sh (or sbatch --export) passes on. The defaults are the Makefile's
# demo. `regmix_cmd STAGE` puts the exact command of a stage in the array CMD: the batch
# scripts run it, and submit.sh writes it beside $DATA before it submits.
: "${REGMIX_ROOT:?set REGMIX_ROOT to the repository (submit.sh does)}"
export REGMIX_BIN=${REGMIX_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release}
export DATA=${DATA:-$REGMIX_ROOT/data}
# The corpus: files or folders, space-separated. Formats by name: .jsonl (optionally .gz or
# .zst), .parquet (a text column), .txt (one document per file); folders are searched.
export CORPUS=${CORPUS:-$DATA/corpus}
export SHARDS=${SHARDS:-$DATA/shards}
export RUNS=${RUNS:-$DATA/runs}
# The tokenizer: an existing Hugging Face tokenizer.json (e.g. GPT-NeoX's), or, when empty, a
# byte-level BPE of VOCAB tokens trained on the corpus.
export TOKENIZER=${TOKENIZER:-}
export VOCAB=${VOCAB:-8192}
# Each document's domain: `prefix` (the file name before its first `-`: arxiv-0.jsonl → arxiv)
# or `field:NAME` (a dotted JSON path, e.g. field:meta.pile_set_name; a column for Parquet).
export DOMAIN_FROM=${DOMAIN_FROM:-prefix}
# The JSON field (or Parquet column) holding the text.
export TEXT_FIELD=${TEXT_FIELD:-text}
export VALID=${VALID:-0.05}
# 1: count and skip bad records (logged, recorded in the manifest); 0: the first one stops.
export SKIP_BAD_RECORDS=${SKIP_BAD_RECORDS:-0}
# Tokenization over a job array of this many tasks (1: one job), each encoding every K-th
# input file; then one job merges their parts into manifest.parquet.
export TOKENIZE_TASKS=${TOKENIZE_TASKS:-1}
# More tokenize-shard flags, e.g. "--max-record-bytes 1073741824 --bpe-max-bytes 2147483648".
export TOKENIZE_FLAGS=${TOKENIZE_FLAGS:-}
export MIXTURES=${MIXTURES:-64}
export SEED=${SEED:-42}
export PROXY_PRESET=${PROXY_PRESET:-micro}
export PROXY_TOKENS=${PROXY_TOKENS:-65536}
export PROXY_FLAGS=${PROXY_FLAGS:---batch-tokens 1024 --lr 3e-3 --eval-windows 16 --eval-every 32}
export TARGET_PRESET=${TARGET_PRESET:-small}
export TARGET_TOKENS=${TARGET_TOKENS:-524288}
export TARGET_FLAGS=${TARGET_FLAGS:---batch-tokens 4096 --lr 2e-3 --min-lr 1e-4 --eval-windows 16}
export FIT_TARGET=${FIT_TARGET:-mean(valid_loss.*)}
export FIT_REGRESSOR=${FIT_REGRESSOR:-auto}
# Target-scale runs you already have (dataset files from collect --targets or --import-table,
# space-separated): fit then fits the target law on them
# (docs/calibration.md#the-target-law-fitted-at-the-targets-scale).
export FIT_TARGET_RUNS=${FIT_TARGET_RUNS:-}
export SAMPLES=${SAMPLES:-200000}
export TOP_K=${TOP_K:-64}
export BOOTSTRAP=${BOOTSTRAP:-16}
# optimize's Dirichlet concentration around the prior (1: the paper's; 30 searches near the
# prior, where a target law's optimum lies).
export STRENGTH=${STRENGTH:-1}
export MAX_EPOCHS=${MAX_EPOCHS:-4}
export BACKEND=${BACKEND:-cpu}
# Threads per training task: what Slurm gave us (tokenize-shard uses every core the job has).
export THREADS=${SLURM_CPUS_PER_TASK:-1}

# The variables above, in order: what submit.sh records as the run's settings.
REGMIX_SETTINGS=(REGMIX_ROOT REGMIX_BIN DATA CORPUS SHARDS RUNS TOKENIZER VOCAB DOMAIN_FROM TEXT_FIELD VALID
    SKIP_BAD_RECORDS TOKENIZE_TASKS TOKENIZE_FLAGS MIXTURES SEED PROXY_PRESET PROXY_TOKENS PROXY_FLAGS TARGET_PRESET
    TARGET_TOKENS TARGET_FLAGS FIT_TARGET FIT_REGRESSOR FIT_TARGET_RUNS SAMPLES TOP_K BOOTSTRAP STRENGTH MAX_EPOCHS BACKEND)

# The tokenizer the encoding steps use: the given one, or the one trained into $SHARDS.
regmix_tokenizer() {
    if [ -n "$TOKENIZER" ]; then echo "$TOKENIZER"; else echo "$SHARDS/tokenizer.json"; fi
}

# regmix_cmd STAGE: the command of STAGE in the array CMD. Stages: tokenize (one process),
# tokenize-train, tokenize-encode and tokenize-merge (the array path), mixtures, proxies,
# collect, fit, optimize, target, report. Array tasks take SLURM_ARRAY_TASK_ID.
regmix_cmd() {
    local corpus tok=()
    # shellcheck disable=SC2206 # CORPUS is a list of paths
    corpus=($CORPUS)
    # shellcheck disable=SC2206 # TOKENIZE_FLAGS is a list of flags
    tok=(--input "${corpus[@]}" --output "$SHARDS" --domain-from "$DOMAIN_FROM" --text-field "$TEXT_FIELD"
         --valid-fraction "$VALID" $TOKENIZE_FLAGS)
    [ "$SKIP_BAD_RECORDS" = 1 ] && tok+=(--skip-bad-records)
    case $1 in
    tokenize)
        if [ -n "$TOKENIZER" ]; then tok+=(--tokenizer "$TOKENIZER"); else tok+=(--train-bpe "$VOCAB"); fi
        CMD=("$REGMIX_BIN/tokenize-shard" "${tok[@]}") ;;
    tokenize-train)
        CMD=("$REGMIX_BIN/tokenize-shard" "${tok[@]}" --train-bpe "$VOCAB" --train-only) ;;
    tokenize-encode)
        CMD=("$REGMIX_BIN/tokenize-shard" "${tok[@]}" --tokenizer "$(regmix_tokenizer)"
             --array-index "${SLURM_ARRAY_TASK_ID:?tokenize-encode runs as an array task}" --array-count "$TOKENIZE_TASKS") ;;
    tokenize-merge)
        CMD=("$REGMIX_BIN/tokenize-shard" "${tok[@]}" --tokenizer "$(regmix_tokenizer)" --merge --array-count "$TOKENIZE_TASKS") ;;
    mixtures)
        CMD=("$REGMIX_BIN/sample-mixtures" --manifest "$SHARDS/manifest.parquet" --count "$MIXTURES" --seed "$SEED"
             --output "$DATA/mixtures.parquet" --write-yaml "$DATA/mixtures-yaml") ;;
    proxies)
        # shellcheck disable=SC2206 # PROXY_FLAGS is a list of flags
        CMD=("$REGMIX_BIN/proxy-train" --shards "$SHARDS" --mixtures "$DATA/mixtures.parquet" --output "$RUNS"
             --preset "$PROXY_PRESET" --tokens "$PROXY_TOKENS" --seed "$SEED" --backend "$BACKEND" --threads "$THREADS"
             --array-index "${SLURM_ARRAY_TASK_ID:-0}" --array-count "${ARRAY_COUNT:-${SLURM_ARRAY_TASK_COUNT:-1}}" $PROXY_FLAGS) ;;
    collect)
        CMD=("$REGMIX_BIN/collect" --runs "$RUNS" --mixtures "$DATA/mixtures.parquet" --output "$DATA/dataset.parquet") ;;
    fit)
        CMD=("$REGMIX_BIN/fit" --dataset "$DATA/dataset.parquet" --target "$FIT_TARGET" --regressor "$FIT_REGRESSOR"
             --seed "$SEED" --output "$DATA/fit")
        for f in $FIT_TARGET_RUNS; do CMD+=(--target-runs "$f"); done ;;
    optimize)
        CMD=("$REGMIX_BIN/optimize" --fit "$DATA/fit" --manifest "$SHARDS/manifest.parquet" --output "$DATA/optimum"
             --samples "$SAMPLES" --top-k "$TOP_K" --seed "$SEED" --bootstrap "$BOOTSTRAP" --strength "$STRENGTH"
             --target-tokens "$TARGET_TOKENS" --max-epochs "$MAX_EPOCHS") ;;
    target)
        # shellcheck disable=SC2206 # TARGET_FLAGS is a list of flags
        CMD=("$REGMIX_BIN/target-train" --shards "$SHARDS" --output "$DATA/target" --preset "$TARGET_PRESET"
             --tokens "$TARGET_TOKENS" --seed "$SEED" --backend "$BACKEND" --threads "$THREADS" $TARGET_FLAGS
             --mixture "regmix=$DATA/optimum/optimum.parquet" --mixture prior=prior --mixture uniform=uniform) ;;
    report)
        CMD=("$REGMIX_BIN/report" --output "$DATA/report.html" --mixtures "$DATA/mixtures.parquet"
             --dataset "$DATA/dataset.parquet" --fit "$DATA/fit" --optimum "$DATA/optimum"
             --comparison "$DATA/target/comparison.parquet") ;;
    *) echo "regmix_cmd: unknown stage $1" >&2; return 2 ;;
    esac
}

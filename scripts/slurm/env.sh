# Paths and sizes for the Slurm batch scripts, each overridable from the environment that
# submit.sh (or sbatch --export) passes on. The defaults are the Makefile's demo.
: "${REGMIX_ROOT:?set REGMIX_ROOT to the repository (submit.sh does)}"
export REGMIX_BIN=${REGMIX_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/regmix/target}/release}
export DATA=${DATA:-$REGMIX_ROOT/data}
export CORPUS=${CORPUS:-$DATA/corpus}
export SHARDS=${SHARDS:-$DATA/shards}
export RUNS=${RUNS:-$DATA/runs}
export VOCAB=${VOCAB:-8192}
export VALID=${VALID:-0.05}
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
export SAMPLES=${SAMPLES:-200000}
export TOP_K=${TOP_K:-64}
export BOOTSTRAP=${BOOTSTRAP:-16}
export MAX_EPOCHS=${MAX_EPOCHS:-4}
export BACKEND=${BACKEND:-cpu}
# Threads per task: what Slurm gave us.
export THREADS=${SLURM_CPUS_PER_TASK:-1}

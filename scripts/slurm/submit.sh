#!/usr/bin/env bash
# Submits the whole pipeline to Slurm as a chain of jobs, each starting when the one before
# succeeded (--dependency=afterok), the proxies as one job array; prints the job ids.
#
#   DATA=/scratch/me/regmix MIXTURES=512 PROXY_TOKENS=1000000000 PROXY_PRESET=regmix-1m \
#   BACKEND=cuda PROXY_SBATCH="--gres=gpu:1 --partition=gpu" scripts/slurm/submit.sh
#
# Sizes and paths: see scripts/slurm/env.sh. Submission options:
#   SBATCH_ARGS     added to every job (e.g. --account=… --partition=…)
#   PROXY_SBATCH    added to the proxy array (e.g. --gres=gpu:1 --time=1:00:00)
#   TARGET_SBATCH   added to the target job
#   ARRAY_TASKS     array size K (default: one task per mixture)
#   ARRAY_PARALLEL  at most P tasks at once (default 8)
#   CPUS            --cpus-per-task of the training jobs (default 1)
#   FROM            the first stage to submit: tokenize, mixtures or proxies (default tokenize)
#   LOGS            where the jobs' logs go (default $DATA/logs)
set -euo pipefail
REGMIX_ROOT=${REGMIX_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export REGMIX_ROOT
source "$REGMIX_ROOT/scripts/slurm/env.sh"
here=$REGMIX_ROOT/scripts/slurm
logs=${LOGS:-$DATA/logs}
mkdir -p "$logs" "$DATA"
K=${ARRAY_TASKS:-$MIXTURES}
P=${ARRAY_PARALLEL:-8}
cpus=${CPUS:-1}
from=${FROM:-tokenize}
# shellcheck disable=SC2206 # word splitting of the user's option lists is intended
common=(--parsable --export=ALL ${SBATCH_ARGS:-})

submit() { # name, dependency (may be empty), extra sbatch args..., script
    local name=$1 dep=$2
    shift 2
    local d=()
    [ -n "$dep" ] && d=(--dependency=afterok:"$dep" --kill-on-invalid-dep=yes)
    sbatch "${common[@]}" "${d[@]}" --job-name="regmix-$name" --output="$logs/%x-%A_%a.out" "$@" | cut -d';' -f1
}

prev=
case $from in
tokenize)
    prev=$(submit tokenize "" "$here/tokenize-shard.sbatch"); echo "tokenize-shard   $prev"
    ;&
mixtures)
    prev=$(submit mixtures "$prev" "$here/sample-mixtures.sbatch"); echo "sample-mixtures  $prev"
    ;&
proxies)
    # shellcheck disable=SC2086
    prev=$(submit proxy "$prev" --array="0-$((K - 1))%$P" --cpus-per-task="$cpus" ${PROXY_SBATCH:-} "$here/proxy-train.sbatch")
    echo "proxy-train      $prev (array 0-$((K - 1)), at most $P at once)"
    ;;
*) echo "submit.sh: FROM must be tokenize, mixtures or proxies" >&2; exit 2 ;;
esac
prev=$(submit collect "$prev" "$here/collect.sbatch"); echo "collect          $prev"
prev=$(submit fit "$prev" --cpus-per-task="$cpus" "$here/fit.sbatch"); echo "fit              $prev"
prev=$(submit optimize "$prev" --cpus-per-task="$cpus" "$here/optimize.sbatch"); echo "optimize         $prev"
# shellcheck disable=SC2086
prev=$(submit target "$prev" --cpus-per-task="$cpus" ${TARGET_SBATCH:-} "$here/target-train.sbatch"); echo "target-train     $prev"
prev=$(submit report "$prev" "$here/report.sbatch"); echo "report           $prev"
echo "logs: $logs; outputs: $DATA"

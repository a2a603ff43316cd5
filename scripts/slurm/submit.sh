#!/usr/bin/env bash
# Submits the whole pipeline to Slurm as a chain of jobs, each starting when the one before
# succeeded (--dependency=afterok), tokenization and the proxies as job arrays; prints the
# job ids. Before it submits anything it writes the resolved settings and the exact command
# of every job beside the outputs, so a run can be read and repeated:
#   $DATA/submit/<time>/settings.env  every variable of env.sh and of this script, resolved
#                                     (`set -a; . settings.env; set +a; submit.sh` repeats it)
#   $DATA/submit/<time>/jobs.sh       each job's sbatch line and the command it runs; run
#                                     with bash, it runs the same commands without Slurm
# (and $DATA/submit/settings.env, jobs.sh: the latest).
#
#   CORPUS=/data/my-corpus TOKENIZER=/models/neox/tokenizer.json DOMAIN_FROM=field:meta.source \
#   DATA=/scratch/me/regmix TOKENIZE_TASKS=32 MIXTURES=512 PROXY_TOKENS=1000000000 \
#   PROXY_PRESET=regmix-1m BACKEND=cuda PROXY_SBATCH="--gres=gpu:1 --partition=gpu" scripts/slurm/submit.sh
#
# Corpus, tokenizer, sizes and paths: see scripts/slurm/env.sh. Submission options:
#   SBATCH_ARGS     added to every job (e.g. --account=… --partition=…)
#   TOKENIZE_SBATCH added to the tokenization jobs (e.g. --cpus-per-task=16 --mem=32G)
#   PROXY_SBATCH    added to the proxy array (e.g. --gres=gpu:1 --time=1:00:00)
#   TARGET_SBATCH   added to the target job
#   ARRAY_TASKS     proxy array size K (default: one task per mixture)
#   ARRAY_PARALLEL  at most P tasks at once, for both arrays (default 8)
#   CPUS            --cpus-per-task of the training jobs (default 1)
#   FROM            the first stage to submit: tokenize, mixtures or proxies (default tokenize)
#   LOGS            where the jobs' logs go (default $DATA/logs)
#   DRY_RUN=1       write settings.env and jobs.sh, submit nothing
set -euo pipefail
REGMIX_ROOT=${REGMIX_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export REGMIX_ROOT
source "$REGMIX_ROOT/scripts/slurm/env.sh"
here=$REGMIX_ROOT/scripts/slurm
logs=${LOGS:-$DATA/logs}
K=${ARRAY_TASKS:-$MIXTURES}
P=${ARRAY_PARALLEL:-8}
cpus=${CPUS:-1}
from=${FROM:-tokenize}
case $from in tokenize | mixtures | proxies) ;; *) echo "submit.sh: FROM must be tokenize, mixtures or proxies" >&2; exit 2 ;; esac
[[ $TOKENIZE_TASKS =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: TOKENIZE_TASKS=$TOKENIZE_TASKS: a number of tasks, 1 or more" >&2; exit 2; }
[[ $K =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: ARRAY_TASKS=$K: a number of tasks, 1 or more" >&2; exit 2; }
case $DOMAIN_FROM in prefix | field:?*) ;; *) echo "submit.sh: DOMAIN_FROM=$DOMAIN_FROM: prefix or field:NAME" >&2; exit 2 ;; esac
if [ "$from" = tokenize ]; then
    # shellcheck disable=SC2086
    for c in $CORPUS; do [ -e "$c" ] || { echo "submit.sh: CORPUS: $c does not exist" >&2; exit 2; }; done
    if [ -n "$TOKENIZER" ] && [ ! -f "$TOKENIZER" ]; then echo "submit.sh: TOKENIZER=$TOKENIZER is not a file" >&2; exit 2; fi
fi
# shellcheck disable=SC2206 # word splitting of the user's option lists is intended
common=(--parsable --export=ALL ${SBATCH_ARGS:-})

# The plan: one entry per job (name, stage, sbatch options), submitted in order, each after
# the one before.
names=() stages=() opts=()
job() { # name, stage, sbatch options...
    names+=("$1") stages+=("$2")
    shift 2
    opts+=("$(printf '%q ' "$@")")
}
# shellcheck disable=SC2206
tok_sbatch=(${TOKENIZE_SBATCH:-})
if [ "$from" = tokenize ]; then
    if [ "$TOKENIZE_TASKS" = 1 ]; then
        job tokenize tokenize "${tok_sbatch[@]}" "$here/tokenize-shard.sbatch"
    else
        [ -n "$TOKENIZER" ] || job tokenize-train tokenize-train --export=ALL,TOKENIZE_STEP=tokenize-train "${tok_sbatch[@]}" "$here/tokenize-shard.sbatch"
        job tokenize-encode tokenize-encode --export=ALL,TOKENIZE_STEP=tokenize-encode --array="0-$((TOKENIZE_TASKS - 1))%$P" \
            "${tok_sbatch[@]}" "$here/tokenize-shard.sbatch"
        job tokenize-merge tokenize-merge --export=ALL,TOKENIZE_STEP=tokenize-merge "${tok_sbatch[@]}" "$here/tokenize-shard.sbatch"
    fi
fi
[ "$from" = proxies ] || job mixtures mixtures "$here/sample-mixtures.sbatch"
# shellcheck disable=SC2086
job proxy proxies --array="0-$((K - 1))%$P" --cpus-per-task="$cpus" ${PROXY_SBATCH:-} "$here/proxy-train.sbatch"
job collect collect "$here/collect.sbatch"
job fit fit --cpus-per-task="$cpus" "$here/fit.sbatch"
job optimize optimize --cpus-per-task="$cpus" "$here/optimize.sbatch"
# shellcheck disable=SC2086
job target target --cpus-per-task="$cpus" ${TARGET_SBATCH:-} "$here/target-train.sbatch"
job report report "$here/report.sbatch"

# The record, written before anything is submitted.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
rec=$DATA/submit/$stamp
mkdir -p "$rec" "$logs"
{
    echo "# regmix Slurm submission of $(date -u '+%Y-%m-%d %H:%M:%S UTC') by ${USER:-$(id -un)} on $(hostname)"
    echo "# repository $REGMIX_ROOT at $(git -C "$REGMIX_ROOT" rev-parse HEAD 2>/dev/null || echo 'unknown commit')$(git -C "$REGMIX_ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    for v in "${REGMIX_SETTINGS[@]}"; do printf '%s=%q\n' "$v" "${!v}"; done
    for v in SBATCH_ARGS TOKENIZE_SBATCH PROXY_SBATCH TARGET_SBATCH; do printf '%s=%q\n' "$v" "${!v:-}"; done
    printf 'ARRAY_TASKS=%q\nARRAY_PARALLEL=%q\nCPUS=%q\nFROM=%q\nLOGS=%q\n' "$K" "$P" "$cpus" "$from" "$logs"
    if [ -n "$TOKENIZER" ] && [ -f "$TOKENIZER" ]; then echo "# TOKENIZER sha256 $(sha256sum "$TOKENIZER" | cut -d' ' -f1)"; fi
} > "$rec/settings.env.tmp"
mv "$rec/settings.env.tmp" "$rec/settings.env"
# A command as text, with the values an array task or the job gets at run time left as
# variables.
render() { # stage
    local SLURM_ARRAY_TASK_ID=@TASK@ ARRAY_COUNT=$K THREADS=@THREADS@
    regmix_cmd "$1"
    printf '%q ' "${CMD[@]}" | sed -e 's/@TASK@/$SLURM_ARRAY_TASK_ID/g' -e 's/@THREADS@/$THREADS/g' -e 's/ $//'
}
{
    echo "#!/usr/bin/env bash"
    echo "# The jobs of the submission of $stamp, in order, each after the one before (afterok)."
    echo "# Each '# sbatch' line is how it was submitted; the command under it is what the job runs."
    echo "# Run with bash, this file runs the same commands here, array tasks one after another."
    echo "set -euo pipefail"
    echo "export THREADS=\${SLURM_CPUS_PER_TASK:-1}"
    for i in "${!names[@]}"; do
        echo
        echo "# ${names[i]}: sbatch ${common[*]}$([ "$i" = 0 ] || echo " --dependency=afterok:<${names[i - 1]}>") --job-name=regmix-${names[i]} --output=$logs/%x-%A_%a.out ${opts[i]}"
        cmd=$(render "${stages[i]}")
        case ${stages[i]} in
        tokenize-encode) echo "for SLURM_ARRAY_TASK_ID in \$(seq 0 $((TOKENIZE_TASKS - 1))); do $cmd; done" ;;
        proxies) echo "for SLURM_ARRAY_TASK_ID in \$(seq 0 $((K - 1))); do $cmd; done" ;;
        *) echo "$cmd" ;;
        esac
    done
} > "$rec/jobs.sh.tmp"
mv "$rec/jobs.sh.tmp" "$rec/jobs.sh"
cp "$rec/settings.env" "$DATA/submit/settings.env.tmp" && mv "$DATA/submit/settings.env.tmp" "$DATA/submit/settings.env"
cp "$rec/jobs.sh" "$DATA/submit/jobs.sh.tmp" && mv "$DATA/submit/jobs.sh.tmp" "$DATA/submit/jobs.sh"
echo "settings and commands: $rec/"
[ -z "${DRY_RUN:-}" ] || { echo "DRY_RUN: nothing submitted"; exit 0; }

prev=
for i in "${!names[@]}"; do
    eval "extra=(${opts[i]})"
    d=()
    [ -n "$prev" ] && d=(--dependency=afterok:"$prev" --kill-on-invalid-dep=yes)
    # shellcheck disable=SC2154 # extra is set by eval
    prev=$(sbatch "${common[@]}" "${d[@]}" --job-name="regmix-${names[i]}" --output="$logs/%x-%A_%a.out" "${extra[@]}" | cut -d';' -f1)
    printf '%-16s %s\n' "${names[i]}" "$prev"
done
echo "logs: $logs; outputs: $DATA"

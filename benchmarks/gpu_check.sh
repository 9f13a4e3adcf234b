#!/usr/bin/env bash
# GPU readiness in one call, under 8 minutes on one CUDA GPU (issue #16, item 7):
#
#   benchmarks/gpu_check.sh [OUTDIR]        (default: $OUT, else gpu-check/)
#
# 1. the `cuda`-marked tests (tests/test_cuda.py: CUDA defaults, σ in fp32, fused attention, SWD on the GPU);
# 2. the train benchmark at 64 px with a batch sweep (benchmarks/train_bench.py);
# 3. two real trainings of the 64-px model on the same synthetic data for the same wall time, one with the
#    CUDA defaults (bf16 autocast, torch.compile), one fp32 eager (--no-amp --no-compile), each stopped by
#    SIGINT as a user's Ctrl-C would (the trainer writes its checkpoint and exits 0);
# 4. SWD and the mirror error of both, at their last step and at the last step both reached.
#
# Everything lands in OUTDIR: summary.json (what each step did, its exit code and seconds, the trainings'
# steps, images/s and scores), train-bench.json, cuda-tests.xml, gpu-check.log (every command's output),
# and one sample grid per training. Knobs for a dry run elsewhere (tests/test_benchmarks.py runs one on
# the CPU): GPU_CHECK_DEVICE (default cuda), GPU_CHECK_SECONDS (per training, default 110),
# GPU_CHECK_IMSIZE (64), GPU_CHECK_COUNT (20000), GPU_CHECK_EVAL_NUM (4096), GPU_CHECK_CKPT_EVERY (250),
# GPU_CHECK_BENCH_TIMEOUT (seconds, 180), GPU_CHECK_BENCH (extra
# train_bench.py arguments; default "--sweep 128,256,512"), PYTHON.
# Exit status: 0 when every step passed, 1 when one failed (the others still ran), 3 when there is no
# such device.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-gpu-check}}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SECONDS_PER_RUN=${GPU_CHECK_SECONDS:-110}
IMSIZE=${GPU_CHECK_IMSIZE:-64}
COUNT=${GPU_CHECK_COUNT:-20000}
EVAL_NUM=${GPU_CHECK_EVAL_NUM:-4096}
CKPT_EVERY=${GPU_CHECK_CKPT_EVERY:-250}
BENCH_TIMEOUT=${GPU_CHECK_BENCH_TIMEOUT:-180}
BENCH=${GPU_CHECK_BENCH:---sweep 128,256,512}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$PYTHON" -c "import sys, torch; d = sys.argv[1]; sys.exit(0 if d == 'cpu' or (d.startswith('cuda') and torch.cuda.is_available()) else 3)" "$DEVICE"; then
    echo "gpu_check: no $DEVICE device here (torch.cuda.is_available() is False); nothing was run" >&2
    exit 3
fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
LOG="$OUTDIR/gpu-check.log"
STEPS="$WORK/steps.jsonl"
: > "$LOG"; : > "$STEPS"
failed=0

# step NAME COMMAND...: run it, its output appended to the log, one line of JSON about it in steps.jsonl
step() {
    local name=$1; shift
    echo "== $name: $*" | tee -a "$LOG"
    local start; start=$(date +%s%N)
    "$@" >> "$LOG" 2>&1
    local rc=$?
    local ms=$(( ($(date +%s%N) - start) / 1000000 ))
    printf '{"step": "%s", "rc": %d, "seconds": %d.%03d}\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) >> "$STEPS"
    echo "   rc $rc, $((ms / 1000)) s" | tee -a "$LOG"
    if [ "$rc" -ne 0 ]; then failed=1; fi
}

sagan() { "$PYTHON" -m sagan_cli "$@"; }

step cuda-tests timeout 150 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider --junitxml "$OUTDIR/cuda-tests.xml" tests/test_cuda.py
# shellcheck disable=SC2086  # BENCH is a list of arguments
step train-bench timeout "$BENCH_TIMEOUT" "$PYTHON" benchmarks/train_bench.py --device "$DEVICE" --imsize "$IMSIZE" $BENCH --json "$OUTDIR/train-bench.json"
step prepare sagan prepare synthetic --imsize "$IMSIZE" --count "$COUNT" --out "$WORK/data"

# train NAME ARGS...: a real run of SECONDS_PER_RUN seconds (a SIGINT ends it: exit 0 with its checkpoint;
# --preserve-status passes the trainer's own exit status on)
train() {
    local name=$1; shift
    timeout --preserve-status -s INT -k 60 "$SECONDS_PER_RUN" "$PYTHON" -m sagan_cli train --imsize "$IMSIZE" --data "$WORK/data" \
        --device "$DEVICE" --runs "$WORK/runs" --name "$name" --steps 1000000 --batch 64 --log-every 50 \
        --ckpt-every "$CKPT_EVERY" --keep-ckpts 1000 --sample-every 1000000 "$@"
}
step train-defaults train defaults
step train-fp32-eager train fp32-eager --no-amp --no-compile

# the scores: each run's latest checkpoint, and both at the last step they both reached
score() {
    local ckpt=$1 out=$2
    sagan evaluate "$ckpt" --data "$WORK/data" --swd --mirror -n "$EVAL_NUM" --num-real "$((2 * EVAL_NUM))" \
        --device "$DEVICE" --json > "$out"
}
for name in defaults fp32-eager; do
    run=$(ls -d "$WORK"/runs/*-"$name" 2>/dev/null | head -1)
    if [ -n "$run" ] && [ -f "$run/checkpoints/latest.pt" ]; then
        step "score-$name" score "$run/checkpoints/latest.pt" "$WORK/score-$name-latest.json"
        step "sample-$name" sagan sample "$run/checkpoints/latest.pt" --seeds 0-63 --device "$DEVICE" \
            --out "$OUTDIR/samples-$name.png"
    fi
done
common=$(comm -12 <(ls "$WORK"/runs/*-defaults/checkpoints/ 2>/dev/null | grep '^step-' | sort) \
                  <(ls "$WORK"/runs/*-fp32-eager/checkpoints/ 2>/dev/null | grep '^step-' | sort) | tail -1)
if [ -n "$common" ]; then
    for name in defaults fp32-eager; do
        step "score-$name-common" score "$(ls -d "$WORK"/runs/*-"$name")/checkpoints/$common" "$WORK/score-$name-common.json"
    done
fi

"$PYTHON" benchmarks/gpu_check_summary.py "$WORK" "$OUTDIR/summary.json" "$DEVICE" "$SECONDS_PER_RUN" >> "$LOG" 2>&1 || failed=1
echo "gpu_check: results in $OUTDIR (summary.json); work files in $WORK"
exit "$failed"

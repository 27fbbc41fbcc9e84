#!/usr/bin/env bash
# Every experiment number and plot in docs/RESULTS.md, from scratch, on 2 CPU cores (~3 h).
# Run from the project root; AUDIO defaults to ../shared/audio (speech/ and noise/, train + test).
# Rerun the same script after an interruption: finished conditions are skipped, training resumes.
set -euo pipefail
AUDIO=${AUDIO:-../shared/audio}
REAL=(--out runs/exp_real --speech-dir "$AUDIO/speech" --noise-dir "$AUDIO/noise"
      --teacher-epochs 30 --test-clips 24 --quiet)
GRID=(table3:0,1,2 step1:0 granularity:0 size:0 norm:0 size:1)
export TF_NUM_INTRAOP_THREADS=1  # two single-thread processes use 2 cores better than one
grid() { python recipes/experiments/run.py "$@"; }

# Real recordings: the teacher first, then the grid in two shards side by side.
grid teacher "${REAL[@]}"
grid "${GRID[@]}" "${REAL[@]}" --shard 0/2 & grid "${GRID[@]}" "${REAL[@]}" --shard 1/2
wait
# Built-in corpus: teacher, Table 3 and the KD reduction (one-step KD, "mean" vs "sum"; its
# baseline and "mean" students are Table 3's).
grid teacher table3:0,1,2 kd_reduction:0,1,2 --out runs/exp_builtin --test-clips 24 --quiet

# Latency of the int8 streaming files (random weights) for the quality-vs-compute plot.
python benchmarks/streaming_latency.py --presets teacher student_240k student student_30k \
    --json docs/results/latency.json
python recipes/experiments/summarize.py runs/exp_real --dest docs/results/real \
    --latency docs/results/latency.json --title "Real recordings (../shared/audio)"
python recipes/experiments/summarize.py runs/exp_builtin --dest docs/results/builtin \
    --title "Built-in corpus"

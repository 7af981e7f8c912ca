#!/usr/bin/env bash
# Every benchmark and both comparisons, at 1 and 2 threads, in one run on this
# machine; then the tables of benches/README.md from the results.
#
#   benches/compare/run.sh            # default matrix backend and, when Debian's
#                                     # libopenblas-dev is installed, the blas feature
#
# Needs scripts/setup.sh (ONNX Runtime) and, for the comparisons, Python with
# torch, onnxruntime and numpy (pip install -r benches/compare/requirements.txt;
# PYTHON=/path/to/venv/bin/python3 picks the interpreter).
# It starts from empty results (removes target/bench-results and
# target/criterion). Run it on an otherwise idle machine: it takes 35-45
# minutes on 2 cores.
# HEAD_REPS (default 3) and EXTRACT_REPS (default 5) set how many processes of
# each side of the two comparisons run.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-python3}
out=target/bench-results
# A previous run's repetitions would otherwise join this run's medians.
rm -rf "$out" target/criterion
mkdir -p "$out"
export CRITERION_HOME="$PWD/target/criterion"
criterion=(--warm-up-time 2 --measurement-time 5 --noplot)

for t in 1 2; do
    export MATMUL_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t RAYON_NUM_THREADS=$t BENCH_THREADS=$t
    cargo bench --bench head --bench learner -- "${criterion[@]}" --save-baseline "threads$t"
    if [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || grep -q 'libopenblas\.so ' < <(ldconfig -p); then
        CARGO_TARGET_DIR=target/blas cargo bench --features blas --bench head -- "${criterion[@]}" --save-baseline "blas-threads$t"
    fi
done

# The comparisons: continual and the Python side in turns, each in a process of
# its own. With two threads the rate of one process differs from the next by up
# to a quarter on this virtual machine (for all three programs), so one process
# each would compare the machine's moods rather than the programs. The report
# takes the median over the repetitions.
for t in 1 2; do
    export MATMUL_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t RAYON_NUM_THREADS=$t BENCH_THREADS=$t
    for i in $(seq "${HEAD_REPS:-3}"); do
        cargo bench --bench head -- head_train_step "${criterion[@]}" --save-baseline "threads$t-rep$i"
        "$python" benches/compare/torch_head.py --threads "$t" > "$out/torch-threads$t-rep$i.json"
    done
    for i in $(seq "${EXTRACT_REPS:-5}"); do
        cargo bench --bench extract -- "${criterion[@]}" --save-baseline "threads$t-rep$i"
        "$python" benches/compare/ort_extract.py --threads "$t" > "$out/ort-threads$t-rep$i.json"
    done
done
unset MATMUL_NUM_THREADS OPENBLAS_NUM_THREADS RAYON_NUM_THREADS BENCH_THREADS
cargo bench --bench stats -- "${criterion[@]}" --save-baseline default

"$python" benches/compare/report.py "$out" "$CRITERION_HOME" | tee "$out/report.md"

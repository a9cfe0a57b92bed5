#!/usr/bin/env bash
# The test suite under every OpenBLAS kernel this CPU can run and 1 or 2 threads: the
# tolerances must hold whatever the BLAS (issue "a test suite that passes on any machine").
#   bash scripts/test-matrix.sh [--kernels "Prescott Haswell Zen"] [--threads "1 2"] [--builds "float32 float64"]
#                               [--skip PATTERN]   (swift test --skip, e.g. LaunchTests)
# Builds both configurations once, then runs `swift test` for each combination with
# OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set (cnn-train keeps a kernel
# the user names), and prints one line per combination. Logs go to $TMPDIR/test-matrix-*.
set -euo pipefail
cd "$(dirname "$0")/.."
kernels="Prescott Haswell Zen" threads="1 2" builds="float32 float64" skip=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kernels) kernels="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --builds) builds="$2"; shift 2 ;;
        --skip) skip=(--skip "$2"); shift 2 ;;
        -h|--help) sed -n 2,8p "$0"; exit 0 ;;
        *) echo "test-matrix.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
bash scripts/install-deps.sh >/dev/null
logs=$(mktemp -d "${TMPDIR:-/tmp}/test-matrix-XXXXXX")
for build in $builds; do
    if [ "$build" = float64 ]; then
        CNN_TRAIN_FLOAT64=1 swift build -c release --build-tests --scratch-path .build-float64 >/dev/null
    else
        swift build -c release --build-tests >/dev/null
    fi
done
status=0
for kernel in $kernels; do
    for t in $threads; do
        for build in $builds; do
            log="$logs/$build-$kernel-$t.txt"
            extra=()
            [ "$build" = float64 ] && extra=(--scratch-path .build-float64)
            env OPENBLAS_CORETYPE="$kernel" OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
                $([ "$build" = float64 ] && echo CNN_TRAIN_FLOAT64=1) \
                swift test -c release --skip-build "${extra[@]}" "${skip[@]}" > "$log" 2>&1 || status=1
            summary=$(grep -aE "Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$log" | tail -1 | sed -E 's/^[[:space:]]+//' || true)
            echo "$build $kernel ${t} thread(s): ${summary:-no summary (see $log)}"
        done
    done
done
echo "logs: $logs"
exit $status

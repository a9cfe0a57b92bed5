#!/usr/bin/env bash
# The whole test suite, twice: the float32 build everyone runs, and a float64 build of the
# same code, where whole-model gradients are compared with PyTorch's golden values
# (see Tests/GoldenTests/ModelGoldenTests.swift). Release builds: the model cases are heavy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

log=$(mktemp -d)
status=0
echo "== float32 build =="
swift build -c release --build-tests
swift test -c release --skip-build 2>&1 | tee "$log/float32.txt" || status=1
echo "== float64 build (CNN_TRAIN_FLOAT64=1) =="
CNN_TRAIN_FLOAT64=1 swift build -c release --build-tests --scratch-path .build-float64
CNN_TRAIN_FLOAT64=1 swift test -c release --skip-build --scratch-path .build-float64 2>&1 | tee "$log/float64.txt" || status=1

# One closing line over both runs, from XCTest's per-run totals.
python3 - "$log/float32.txt" "$log/float64.txt" <<'PY'
import re, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    name = path.rsplit('/', 1)[-1]
    text = open(path, errors="replace").read()
    runs = re.findall(r"Test Suite 'All tests' (?:passed|failed).*\n\s*Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?(\d+) failures?", text)
    # Name what failed at the end, where a truncated CI log still shows it.
    for line in text.splitlines():
        if ": error: " in line or re.search(r"Test Case '.*' failed \(", line):
            print(f"{name}: {line[:400]}")
    if not runs:
        failed += 1  # a run that printed no summary did not complete: show how it ended
        print("\n".join(f"{name}: {line}" for line in text.splitlines()[-5:]))
        continue
    total, skip, fail = runs[-1]
    total, skip, fail = int(total), int(skip or 0), int(fail)
    passed += total - skip - fail
    failed += fail
    skipped += skip
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status

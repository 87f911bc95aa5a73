#!/usr/bin/env bash
# The GPU check (issue 18, "GPU"): on a CUDA machine with no network, install what is missing from a folder of
# wheels, run the `gpu` tests on CUDA (tests/test_gpu.py), then a short benchmark (scripts/gpu_bench.py:
# synthesized frames per second and peak GPU memory at 1280x720, 1920x1080 and 3840x2160 for each model and
# quality setting), and print one summary. Each part is time-boxed (about 5 minutes in all); what was skipped is
# printed. It downloads nothing.
#
# Prepare, once, on a machine with network, in the checkout's root (.whl/ is git-ignored):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl av==18.1.0 platformdirs==4.14.9
#   make weights clips        # weights/rife46.pkl + weights/flownet.pkl (46 MB), assets/clips/*.mp4 (2 MB)
#
# The CUDA machine needs python3 with a CUDA build of torch, numpy, typer, rich and pytest (the lent H200 image
# has them; it lacks av and platformdirs, which the wheels bring; av is 36 MB). Run, in the checkout's root:
#
#   bash scripts/gpu_check.sh [--tests-only | --bench-only] [WHEEL_DIR (default .whl)]
#
# Environment: PYTHON (python3), OUT (folder for the logs, the bench's gpu_bench.md/.json and gpu_tests.xml;
# default /tmp/retime-gpu-check), GPU_CHECK_TESTS_S (140), GPU_CHECK_BENCH_S (90: the benchmark's budget; it
# gets 40 s more to load the models and finish its row). Exit status: 0 when every part that ran passed, 1 when
# the tests failed or timed out or the benchmark failed, 2 when PyTorch sees no CUDA device, 3 when the install
# failed. GPU_CHECK_DEVICE=cpu is a dry run of this script on a CPU (the tests on small crops, the benchmark
# --quick), to check the script itself where there is no GPU. How to run it on the workplace's lent GPU machine (weights and av together exceed what one call
# carries): docs/performance.md, "GPU".

set -u -o pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
OUTDIR=${OUT:-/tmp/retime-gpu-check}
TESTS_S=${GPU_CHECK_TESTS_S:-140}
BENCH_S=${GPU_CHECK_BENCH_S:-90}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
[ "$DEVICE" = cpu ] && QUICK=(--quick) MARK=(-m "not slow") || QUICK=() MARK=()
WHEELS=.whl
RUN_TESTS=1
RUN_BENCH=1
for arg in "$@"; do
    case "$arg" in
        --tests-only) RUN_BENCH=0 ;;
        --bench-only) RUN_TESTS=0 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) WHEELS=$arg ;;
    esac
done
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
started=$SECONDS
skipped=()
status=0
tests_line="not run"
bench_line="not run"

echo "== retime GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 \
    || skipped+=("nvidia-smi: not available")

# --- 1. install what is missing, from the wheels (no index, no network) -----------------------------------------
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "== installing $(ls "$WHEELS"/*.whl | xargs -n1 basename | tr '\n' ' ')into /tmp/retime-site"
    if ! timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/retime-site "$WHEELS"/*.whl; then
        echo "gpu_check: installing the wheels from $WHEELS failed"
        exit 3
    fi
    export PYTHONPATH="/tmp/retime-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    skipped+=("install: no wheels in $WHEELS/")
fi

# --- 2. what this machine has -----------------------------------------------------------------------------------
GPU_CHECK_DEVICE=$DEVICE "$PY" - <<'EOF'
import importlib.util, os, pathlib, sys
import torch
cuda = torch.cuda.is_available()
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"cuda available: {cuda}" + (f", {torch.cuda.get_device_name(0)}" if cuda else ""))
for name in ("numpy", "av", "platformdirs", "typer", "rich", "pytest", "cv2", "skimage"):
    spec = importlib.util.find_spec(name)
    print(f"  {name:<13} {'present' if spec else 'MISSING'}")
for path in ("weights/rife46.pkl", "weights/flownet.pkl", "assets/clips/bigbuckbunny.mp4"):
    p = pathlib.Path(path)
    print(f"  {path:<31} {f'{p.stat().st_size / 1e6:.1f} MB' if p.is_file() else 'MISSING'}")
sys.exit(0 if cuda or os.environ["GPU_CHECK_DEVICE"] == "cpu" else 2)
EOF
if [ $? -ne 0 ]; then
    echo "gpu_check: PyTorch sees no CUDA device here: nothing to check (RETIME_TEST_DEVICE=cuda would skip all)"
    exit 2
fi

# --- 3. the gpu tests on CUDA -----------------------------------------------------------------------------------
if [ $RUN_TESTS -eq 1 ]; then
    echo "== tests: RETIME_TEST_DEVICE=$DEVICE pytest tests/test_gpu.py ${MARK[*]} (at most ${TESTS_S} s)"
    RETIME_TEST_DEVICE=$DEVICE timeout "$TESTS_S" "$PY" -m pytest tests/test_gpu.py "${MARK[@]}" -q -rs -p no:cacheprovider \
        --junitxml="$OUTDIR/gpu_tests.xml" 2>&1 | tee "$OUTDIR/gpu_tests.log"
    rc=${PIPESTATUS[0]}
    tests_line=$(grep -E '[0-9]+ (passed|failed|error|skipped)' "$OUTDIR/gpu_tests.log" | tail -1)
    if [ "$rc" -eq 124 ]; then
        tests_line="TIMED OUT after ${TESTS_S} s (${tests_line:-no summary})"; status=1
    elif [ "$rc" -ne 0 ]; then
        tests_line="FAILED (exit $rc): ${tests_line:-no summary}"; status=1
    fi
else
    skipped+=("tests: --bench-only")
fi

# --- 4. the benchmark -------------------------------------------------------------------------------------------
if [ $RUN_BENCH -eq 1 ]; then
    echo "== benchmark: scripts/gpu_bench.py --device $DEVICE ${QUICK[*]} --budget ${BENCH_S}"
    timeout $((BENCH_S + 40)) "$PY" scripts/gpu_bench.py --device "$DEVICE" "${QUICK[@]}" --budget "$BENCH_S" \
        --markdown "$OUTDIR/gpu_bench.md" --json "$OUTDIR/gpu_bench.json" 2>&1 | tee "$OUTDIR/gpu_bench.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then
        bench_line="done ($OUTDIR/gpu_bench.md)"
    elif [ "$rc" -eq 124 ]; then
        bench_line="TIMED OUT after $((BENCH_S + 40)) s"; status=1
    else
        bench_line="FAILED (exit $rc)"; status=1
    fi
else
    skipped+=("benchmark: --tests-only")
fi

# --- 5. one summary ---------------------------------------------------------------------------------------------
echo
echo "================================ retime GPU check: summary ================================"
"$PY" -c "import torch; c = torch.cuda.is_available(); print('device:', torch.cuda.get_device_name(0) if c else 'cpu (dry run)', '| torch', torch.__version__)"
echo "tests:     $tests_line"
grep -E '^SKIPPED' "$OUTDIR/gpu_tests.log" 2>/dev/null | sed 's/^/  /'
echo "benchmark: $bench_line"
[ -f "$OUTDIR/gpu_bench.md" ] && [ $RUN_BENCH -eq 1 ] && cat "$OUTDIR/gpu_bench.md"
if [ ${#skipped[@]} -gt 0 ]; then
    printf 'skipped:   %s\n' "${skipped[@]}"
fi
echo "total:     $((SECONDS - started)) s, exit $status"
exit $status

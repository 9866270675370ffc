#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one call of about 8 minutes, results under $OUT.
#
# Prepare (on the development machine, once; nothing here is committed):
#   mkdir -p .devdata && cp ../shared/data/official_weights/enhancement_model.pth \
#       ../shared/data/backlit/110_51093502029_o.jpg .devdata/
#   rm -rf .devdata/shared && mkdir -p .devdata/shared && cp -r ../shared/data .devdata/shared/
#   (and wheels of open_clip_torch, ftfy, wcwidth in .whl/ for the trainer benchmark)
# Run with the device tool:
#   command: bash tools/gpu_check.sh    carry: [".devdata", ".whl"]    timeout_s: 560
# Steps, most important first, each under its own time limit and all within GPU_CHECK_BUDGET
# (550 s): a step starts only with 15 s left, and never runs past the budget:
#   1. benchmarks/bench_inference.py --device cuda  (issue 5 goals 1 and 2: the GPU table),
#      judged by benchmarks/gpu_verdict.py (met or not, and the settings to make the default)
#   2. float16 vs float32 photo by photo (bench_dtype_fidelity.py), then the GPU tests (CUDA
#      parity / bounded memory tests run instead of skipping)
#   3. benchmarks/bench_train_step.py               (trainer step, ours vs the authors')
#   4. benchmarks/bench_folder_throughput.py --device cuda --stages  (a folder of photos, whole
#      process: the pipelined run against --jobs 1, --fast and exact; then, in-process, I/O alone,
#      the network alone and the run end to end), judged by gpu_verdict.py --folder (issue 13:
#      end to end within 1.15x of the slower stage alone)
#   5. benchmarks/bench_video.py --device cuda     (frames/s of a clip, exact and --fast, against
#      decoding + encoding alone)
# GPU_CHECK_DRY_RUN=1 bash tools/gpu_check.sh runs the same steps on the CPU at tiny sizes
# (checks this script, not the GPU).
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T0=$SECONDS
BUDGET=${GPU_CHECK_BUDGET:-550}  # seconds for all steps: under the device command's limit (560 s above)
step() {  # step LIMIT NAME CMD...: run with a time limit, log to $OUT/NAME.log, show its tail
    local limit=$1 name=$2
    shift 2
    local left=$((BUDGET - (SECONDS - T0)))
    if [ "$left" -lt 15 ]; then
        echo "=== $name: skipped, $left s of the $BUDGET s budget left"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left  # a step never runs past the budget: later ones are skipped, not cut
    echo "=== $name: start at $((SECONDS - T0)) s, limit $limit s"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name: rc $rc, done at $((SECONDS - T0)) s"
    tail -n "${TAIL:-40}" "$OUT/$name.log"
}
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
if [ -n "${GPU_CHECK_DRY_RUN:-}" ]; then
    BENCH=(--gpu-dry-run --no-profile --sizes 0.05 --mem-sizes 0.05 --mem-tiles 128 --mem-tiles-fp32 128 --rounds 1 --compile-timeout 0)
    TRAIN=(--device cpu --image-size 64 --batch 2 --iters 1 --warmup 0)
    FOLDER=(--device cpu --photos 2 --megapixels 0.05 --modes fast --stages)
    VIDEO=(--device cpu --size 64x48 --frames 4)
else
    BENCH=(--device cuda --no-profile --compile-timeout 90)
    TRAIN=(--iters 3 --warmup 1)
    FOLDER=(--device cuda --photos 12 --megapixels 3 --modes fast,exact --stages)
    VIDEO=(--device cuda --size 1280x720 --frames 48)
    python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
fi
if ! python -c "import open_clip" 2>/dev/null && ls .whl/*.whl > /dev/null 2>&1; then
    pip install -q --no-deps --target .gpu_site .whl/*.whl && export PYTHONPATH="$PWD/.gpu_site"
fi
[ -d .devdata/shared/data ] && export CLIPLIT_SHARED_DATA="$PWD/.devdata/shared/data"

TAIL=80 step 330 bench_inference python -m benchmarks.bench_inference "${BENCH[@]}" --json "$OUT/gpu.json"
TAIL=30 step 20 verdict python -m benchmarks.gpu_verdict "$OUT/gpu.json"
if [ -z "${GPU_CHECK_DRY_RUN:-}" ] && [ -d .devdata/shared/data/backlit ]; then
    TAIL=12 step 60 fp16_photos python -m benchmarks.bench_dtype_fidelity --dtype float16 --device cuda \
        --photos .devdata/shared/data/backlit --weights .devdata/enhancement_model.pth --tile 1024
fi
if python -c "import pytest" 2>/dev/null; then
    step 120 tests python -m pytest -q -x -p no:cacheprovider tests/engine/test_parity.py tests/light/test_speed_paths.py \
        tests/light/test_tiling.py tests/nodes/test_nodes_enhance.py
fi
step 90 bench_train_step python -m benchmarks.bench_train_step "${TRAIN[@]}" --json "$OUT/train_step.json"
rm -f "$OUT/folder.json"  # the verdict judges this run's figures or none
TAIL=20 step 180 bench_folder python -m benchmarks.bench_folder_throughput "${FOLDER[@]}" --json "$OUT/folder.json"
TAIL=10 step 20 folder_verdict python -m benchmarks.gpu_verdict --folder "$OUT/folder.json"
TAIL=10 step 60 bench_video python -m benchmarks.bench_video "${VIDEO[@]}" --json "$OUT/video.json"
echo "=== all done at $((SECONDS - T0)) s"

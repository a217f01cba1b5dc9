#!/usr/bin/env bash
# The GPU checks in one run (one H200, under 8 minutes): every section prints its heading and
# its figures, a section that cannot run here prints why, and the run goes on.
#
#   1. training throughput of ResNet-110 on random CIFAR-shaped data: fp32, bf16 autocast,
#      channels-last (fp32 and bf16), images per second after warm-up;
#   2. certification throughput: Smooth.certify_many against the bare forward pass of the same
#      noisy rows, at batch 1000 and 4000;
#   3. fixed-n against sequential CERTIFY, 20 inputs, n = n_max = 100,000 (random-initialised
#      ResNet-110: the machinery, not a trained model's savings);
#   4. the kNN sigma precompute at CIFAR-10 scale (50,000 x 3072 database, 10,000 queries,
#      k = 20): mean_knn_distance with the torch backend on the GPU and with faiss-gpu where
#      importable, against the GEMM floor (the 10,000 x 50,000 x 3072 fp32 product);
#   5. a 1-epoch DDP run on the single GPU through train.py (Fashion-MNIST where its files are
#      here, in data/FashionMNIST/raw or /usr/share/datasets/fashion-mnist; else digits).
#
# The Python sections live in bench/_gpu_check.py, one process each, each under a time limit.
# --dry-run: the same code paths on the CPU at a tiny size (ResNet-20 on 3x8x8 inputs, DDP over
# gloo), one CPU thread, about a minute.
# Exit status 0 when every section that could run succeeded.
# Usage: bash bench/gpu_check.sh [--dry-run]
set -u

DRY=""
case "${1:-}" in
    --dry-run) DRY="--dry-run" ;;
    "") ;;
    *) echo "usage: bash bench/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1
unset IDRS_RUN_DIR
SCRATCH="$(mktemp -d -t idrs-gpu-check.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT

# Time limits per section (seconds): they sum to 7.5 minutes. The dry run uses one CPU thread
# (on a small shared CPU, two torch threads ran these tiny models over 10x slower than one).
if [ -n "$DRY" ]; then
    export OMP_NUM_THREADS=1
    LIMIT_TRAIN=60 LIMIT_CERTIFY=60 LIMIT_SEQUENTIAL=60 LIMIT_KNN=60 LIMIT_DDP=90
else
    LIMIT_TRAIN=60 LIMIT_CERTIFY=60 LIMIT_SEQUENTIAL=150 LIMIT_KNN=90 LIMIT_DDP=90
fi

SUMMARY=()
FAILED=0
START_ALL=$(date +%s)

# run_section NAME LIMIT COMMAND...: the command under a time limit; 3 means "cannot run here".
run_section() {
    local name="$1" limit="$2"
    shift 2
    local start rc
    start=$(date +%s)
    if declare -F "$1" >/dev/null; then  # a shell function applies the limit itself
        SECTION_LIMIT="$limit" "$@"
    else
        timeout --kill-after=10 "$limit" "$@"
    fi
    rc=$?
    local elapsed=$(( $(date +%s) - start ))
    case $rc in
        0) SUMMARY+=("$name: ok (${elapsed} s)") ;;
        3) SUMMARY+=("$name: skipped, could not run here (${elapsed} s)") ;;
        124 | 137) SUMMARY+=("$name: FAILED, over its ${limit} s limit"); FAILED=1 ;;
        *) SUMMARY+=("$name: FAILED (exit status $rc, ${elapsed} s)"); FAILED=1 ;;
    esac
    echo "  -- $name: exit status $rc, ${elapsed} s"
}

python_section() {  # python_section NAME LIMIT SECTION
    run_section "$1" "$2" "$PY" bench/_gpu_check.py "$3" $DRY
}

ddp_section() {
    local data=() accelerator=gpu limits=() dataset
    if [ -n "$DRY" ]; then
        accelerator=cpu
        limits=(--trainer.limit_train_batches=2 --trainer.limit_val_batches=2)
    fi
    if [ -z "$DRY" ] && { [ -d data/FashionMNIST/raw ] || [ -d /usr/share/datasets/fashion-mnist ]; }; then
        dataset="Fashion-MNIST (the default config: LeNet, sigma 0.25)"
    else
        if [ -n "$DRY" ]; then
            dataset="digits, LeNet (dry run)"
        else
            dataset="digits, LeNet (no Fashion-MNIST files in data/FashionMNIST/raw or /usr/share/datasets/fashion-mnist)"
        fi
        data=(--data.dataset=digits --model.network=lenet --data.root="$SCRATCH/data")
    fi
    local needs="lightning jsonargparse torchmetrics wandb scipy"
    [ ${#data[@]} -eq 0 ] && needs="$needs torchvision"
    local missing
    missing=$("$PY" -c "
import importlib.util, sys
print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))" $needs)
    if [ -n "$missing" ]; then
        echo "  cannot run: train.py needs $missing (not installed here); skipped"
        return 3
    fi
    local backend=nccl
    [ "$accelerator" = cpu ] && backend=gloo
    echo "  1 epoch of $dataset with --trainer.strategy=ddp --trainer.devices=1" \
        "--trainer.accelerator=$accelerator (expected backend: $backend)${DRY:+, 2 batches}"
    local log="$SCRATCH/ddp.log" start rc
    start=$(date +%s.%N)
    timeout --kill-after=10 "$SECTION_LIMIT" "$PY" train.py fit --run_name=gpu-check-ddp --runs_dir="$SCRATCH/runs" \
        --trainer.enable_progress_bar=false --trainer.strategy=ddp --trainer.devices=1 \
        --trainer.accelerator="$accelerator" --trainer.max_epochs=1 \
        --data.cache_dir="$SCRATCH/knn-cache" "${limits[@]}" "${data[@]}" >"$log" 2>&1
    rc=$?
    local seconds
    seconds=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
        "$start" "$(date +%s.%N)")
    grep -E "Initializing distributed|distributed_backend|processes registered|max_epochs" "$log" \
        | sed 's/^/  /'
    if [ $rc -ne 0 ]; then
        echo "  train.py failed (exit status $rc); the end of its output:"
        tail -n 30 "$log" | sed 's/^/    /'
        return $(( rc == 124 || rc == 137 ? 124 : 1 ))
    fi
    if ! grep -q "distributed_backend=$backend" "$log"; then
        echo "  train.py ran, but not over DDP with $backend; the end of its output:"
        tail -n 30 "$log" | sed 's/^/    /'
        return 1
    fi
    local checkpoints
    checkpoints=$(ls "$SCRATCH/runs/gpu-check-ddp/checkpoints" 2>/dev/null | tr '\n' ' ')
    echo "  wall time ${seconds} s (start-up, kNN sigma, training, validation, checkpoints)"
    echo "  checkpoints: ${checkpoints:-none}"
    [ -n "$checkpoints" ]
}

echo "== environment =="
"$PY" - <<'EOF'
import importlib, platform, torch
print(f"  python {platform.python_version()}, torch {torch.__version__}")
for name in ("lightning", "torchmetrics", "numpy", "scipy", "jsonargparse", "wandb", "faiss"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as error:  # absent or broken: the sections that need it say so
        print(f"  {name}: not importable ({type(error).__name__})")
if torch.cuda.is_available():
    print(f"  CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s): "
          f"{torch.cuda.get_device_name(0)}, cuDNN {torch.backends.cudnn.version()}")
else:
    print("  no CUDA device")
print(f"  {torch.get_num_threads()} CPU threads for torch")
EOF
echo "  mode: ${DRY:-full run}"

echo
echo "== training throughput: ResNet-110, fp32 / bf16 autocast / channels-last =="
python_section "training throughput" "$LIMIT_TRAIN" train
echo
echo "== certification throughput: Smooth.certify_many vs bare forward =="
python_section "certification throughput" "$LIMIT_CERTIFY" certify
echo
echo "== fixed-n vs sequential certification: 20 inputs =="
python_section "fixed-n vs sequential" "$LIMIT_SEQUENTIAL" sequential
echo
echo "== kNN sigma precompute: CIFAR-10 scale vs GEMM floor =="
python_section "kNN sigma precompute" "$LIMIT_KNN" knn
echo
echo "== DDP: 1 epoch through train.py on one device =="
run_section "DDP through train.py" "$LIMIT_DDP" ddp_section

echo
echo "== summary =="
for line in "${SUMMARY[@]}"; do
    echo "  $line"
done
echo "  total $(( $(date +%s) - START_ALL )) s; exit status $FAILED"
exit $FAILED

#!/usr/bin/env bash
# GPU check, about 8 minutes on one H100/H200: speed of the GPU path, then the paper's claim in miniature.
#
#   bash benchmarks/gpu_check.sh            (from the repository root, medviz's dependencies installed)
#
# 1. Training-step throughput of t-SimCNE with ResNet18 at 28 px (batch 1024) and at 96 px (ImageNet stem,
#    batch 512), as trained by default on a GPU (compiled augmentations; then also a compiled backbone):
#    images/s, full step vs bare model step (= the augmentations' share), GPU memory, and the projected
#    time of the full 1000+50+450-epoch schedule on 18k images.
# 2. Augmentation throughput on the GPU vs torchvision's per-image PIL pipeline on the CPU.
# 3. The paper's full schedule [1000, 50, 450] on $IMAGES synthblood images with aug=default, then
#    aug=randrot: each map's kNN accuracy and silhouette beside pixel t-SNE's, and map snapshots.
#    Each run is stopped (checkpoints kept) if it would overrun $BUDGET_S.
# Logs go to $CHECK_DIR (default gpu_check/); each part runs even if an earlier one fails.
set -u
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
PY=${PYTHON:-python3}
CHECK_DIR=${CHECK_DIR:-gpu_check}
IMAGES=${IMAGES:-2048}
BUDGET_S=${BUDGET_S:-480}
mkdir -p "$CHECK_DIR"
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
part() { echo; echo "=== $1 (at $(elapsed) s) ==="; }
step() { $PY -m benchmarks.train_step "$@" 2>&1 | grep -v "^W[0-9]"; }

part "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0))"

part "training step, 28 px, compiled augmentations (the GPU default for them)"
step --backbone resnet18 --size 28 --batch 1024 --aug randrot --steps 30 --compile-augment | tee "$CHECK_DIR/step28.log"
part "training step, 28 px, compiled augmentations and backbone (speed.compile=auto on a GPU)"
step --backbone resnet18 --size 28 --batch 1024 --aug randrot --steps 30 --compile-augment --compile \
    | tee "$CHECK_DIR/step28_compiled.log"
part "training step, 96 px, compiled augmentations"
step --backbone resnet18_imagenet --size 96 --batch 512 --aug randrot --steps 20 --compile-augment \
    --project-images 262144 | tee "$CHECK_DIR/step96.log"

part "augmentations on the GPU (eager) vs torchvision per image (CPU)"
$PY -m benchmarks.augment_throughput --images 2048 2>&1 | tee "$CHECK_DIR/augment.log"

part "paper schedule 1000+50+450 on $IMAGES synthblood images"
for aug in default randrot; do
    left=$((BUDGET_S - $(elapsed) - 10))
    if [ "$left" -lt 60 ]; then echo "aug=$aug skipped: $(elapsed) s used of $BUDGET_S"; continue; fi
    pixels=$([ "$aug" = default ] && echo true || echo false)
    timeout "$left" $PY train.py dataset.source.n_images="$IMAGES" aug="$aug" eval.pixel_tsne="$pixels" \
        checkpoint_every=250 eval.snapshot_every=50 trainer.enable_progress_bar=false \
        hydra.run.dir="$CHECK_DIR/$aug" > "$CHECK_DIR/$aug.log" 2>&1
    echo "--- aug=$aug (exit code $?, at $(elapsed) s)"
    grep -E "map kNN|pixel t-SNE|training took|entering|Error|error" "$CHECK_DIR/$aug.log" || tail -5 "$CHECK_DIR/$aug.log"
    $PY - "$CHECK_DIR/$aug/logs/metrics.csv" <<'PYEOF' || true
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("map/knn_accuracy")]
for r in rows[:: max(1, len(rows) // 8)] + rows[-1:]:
    print(f"  epoch {r['epoch']:>5}  kNN {float(r['map/knn_accuracy']):.3f}  silhouette {float(r['map/silhouette']):.3f}"
          f"  {float(r['time/train_minutes']):.2f} min")
PYEOF
done
part "done"

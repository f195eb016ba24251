#!/usr/bin/env bash
# GPU check, about 8 minutes on one H100/H200: speed of the GPU path, then the paper's claim in miniature.
#
#   bash benchmarks/gpu_check.sh            (from the repository root, medviz's dependencies installed)
#
# 1. Training-step throughput of t-SimCNE at 28 px (ResNet18, batch 1024) and 96 px (ImageNet-stem
#    ResNet18, batch 512): images/s, full step vs bare model step, augmentation share, GPU memory, and
#    the projected time of the full 1000+50+450-epoch schedule on 18k images.
# 2. Augmentation throughput on the GPU vs torchvision's per-image PIL pipeline on the CPU.
# 3. The paper's full schedule [1000, 50, 450] on 4,096 synthblood images, aug=default and aug=randrot
#    (the two runs share the GPU), each map's kNN accuracy and silhouette beside pixel t-SNE's.
# 4. If time is left: the 28 px step with torch.compile.
# Logs go to $CHECK_DIR (default gpu_check/); each part runs even if an earlier one fails.
set -u
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
PY=${PYTHON:-python3}
CHECK_DIR=${CHECK_DIR:-gpu_check}
IMAGES=${IMAGES:-4096}
BUDGET_S=${BUDGET_S:-480}
mkdir -p "$CHECK_DIR"
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
part() { echo; echo "=== $1 (at $(elapsed) s) ==="; }

part "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0))"

part "training step, 28 px"
$PY -m benchmarks.train_step --backbone resnet18 --size 28 --batch 1024 --aug randrot --steps 30 2>&1 \
    | tee "$CHECK_DIR/step28.log" | grep -v "^W[0-9]"
part "training step, 96 px"
$PY -m benchmarks.train_step --backbone resnet18_imagenet --size 96 --batch 512 --aug randrot --steps 20 \
    --project-images 262144 2>&1 | tee "$CHECK_DIR/step96.log" | grep -v "^W[0-9]"

part "augmentations on the GPU vs torchvision per image (CPU)"
$PY -m benchmarks.augment_throughput --images 2048 2>&1 | tee "$CHECK_DIR/augment.log"

part "paper schedule 1000+50+450 on $IMAGES synthblood images, default and randrot side by side"
common=(dataset.source.n_images="$IMAGES" checkpoint_every=250 trainer.enable_progress_bar=false
        eval.snapshot_every=50 eval.table_size=0)
$PY train.py "${common[@]}" aug=default eval.pixel_tsne=true hydra.run.dir="$CHECK_DIR/default" \
    > "$CHECK_DIR/default.log" 2>&1 &
pid_default=$!
$PY train.py "${common[@]}" aug=randrot hydra.run.dir="$CHECK_DIR/randrot" > "$CHECK_DIR/randrot.log" 2>&1 &
pid_randrot=$!
wait $pid_default; echo "default run exit code $?"
wait $pid_randrot; echo "randrot run exit code $?"
for aug in default randrot; do
    echo "--- aug=$aug"
    grep -E "map kNN|pixel t-SNE|training took|Error|error" "$CHECK_DIR/$aug.log" || tail -20 "$CHECK_DIR/$aug.log"
done

if [ "$(elapsed)" -lt $((BUDGET_S - 150)) ]; then
    part "training step, 28 px, torch.compile"
    $PY -m benchmarks.train_step --backbone resnet18 --size 28 --batch 1024 --aug randrot --steps 30 --compile 2>&1 \
        | tee "$CHECK_DIR/step28_compile.log" | grep -v "^W[0-9]"
else
    part "torch.compile step skipped: $(elapsed) s used of $BUDGET_S"
fi
part "done"

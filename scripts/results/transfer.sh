#!/usr/bin/env bash
# The transfer experiments of docs/transfer.md.
# Usage: JIZEN_DATA=../shared/data scripts/results/transfer.sh [fashion|dae ...]
#   fashion: supervised transfer on Fashion-MNIST, classes 0-4 -> classes 5-9 (the CNN).
#   dae:     denoising-autoencoder pre-training on the 60,000 MNIST training images (labels
#            unused), then fine-tuning with 10 and 100 labels per class (the MLP).
#   fashion-b, dae30: the second recipe of each (after fashion / on its own).
#   fashion-c: the third recipe of (a), frozen convolutions (after fashion).
#   sdae:    a stacked denoising autoencoder trained greedily, layer by layer, then fine-tuned.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p jizen-cli
jizen=target/release/jizen
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(fashion dae)
for run in "${runs[@]}"; do
  case "$run" in
    fashion)
      "$jizen" pretrain --model cnn --data fashion-mnist --classes 0-4 --epochs 3 --val 0 --quiet \
        --out runs/transfer/fashion04
      "$jizen" compare --from runs/transfer/fashion04/final.safetensors --data fashion-mnist --classes 5-9 \
        --labels 10,100 --seeds 3 --steps 300 --eval-every 25 --batch-size 32 --quiet \
        --out runs/transfer/fashion59 ;;
    dae)
      "$jizen" pretrain --objective denoising --noise 0.3 --model mlp --data mnist --epochs 10 \
        --batch-size 128 --val 0 --quiet --out runs/transfer/dae
      "$jizen" compare --from runs/transfer/dae/final.safetensors --data mnist \
        --labels 10,100 --seeds 3 --steps 500 --eval-every 50 --batch-size 32 --quiet \
        --out runs/transfer/dae-mnist ;;
    fashion-b)
      "$jizen" compare --from runs/transfer/fashion04/final.safetensors --data fashion-mnist --classes 5-9 \
        --labels 10,100 --seeds 3 --steps 300 --eval-every 25 --batch-size 32 --reinit '11.*' \
        --lr-mult '0.*=0.3' --lr-mult '4.*=0.3' --lr-mult '9.*=0.3' --quiet --out runs/transfer/fashion59-b ;;
    fashion-c)
      "$jizen" compare --from runs/transfer/fashion04/final.safetensors --data fashion-mnist --classes 5-9 \
        --labels 10,100 --seeds 3 --steps 300 --eval-every 25 --batch-size 32 --reinit '11.*' \
        --freeze '0.*' --freeze '1.*' --freeze '4.*' --freeze '5.*' --quiet --out runs/transfer/fashion59-c ;;
    dae30)
      "$jizen" pretrain --objective denoising --noise 0.5 --model mlp --data mnist --epochs 30 \
        --batch-size 128 --val 0 --quiet --out runs/transfer/dae30
      "$jizen" compare --from runs/transfer/dae30/final.safetensors --data mnist \
        --labels 10,100 --seeds 3 --steps 500 --eval-every 50 --batch-size 32 \
        --lr-mult '1.*=0.1' --lr-mult '3.*=0.1' --quiet --out runs/transfer/dae30-mnist ;;
    sdae)
      "$jizen" pretrain --objective denoising --noise 0.6 --greedy-epochs 50 --model mlp --data mnist \
        --epochs 10 --batch-size 128 --val 0 --quiet --out runs/transfer/sdae
      "$jizen" compare --from runs/transfer/sdae/final.safetensors --data mnist \
        --labels 10,100 --seeds 3 --steps 500 --eval-every 50 --batch-size 32 \
        --lr-mult '1.*=0.1' --lr-mult '3.*=0.1' --quiet --out runs/transfer/sdae-mnist ;;
    *) echo "unknown experiment $run (fashion, dae, fashion-b, fashion-c, dae30, sdae)" >&2; exit 2 ;;
  esac
done

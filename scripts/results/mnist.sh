#!/usr/bin/env bash
# The accuracy runs of docs/results.md: MNIST MLP, MNIST CNN, Fashion-MNIST CNN.
# Usage: JIZEN_DATA=../shared/data scripts/results/mnist.sh [mlp|cnn|fashion ...]
# Each run writes runs/<name>/ (metrics, curves, checkpoints, test.json) and its log.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p jizen-cli
jizen=target/release/jizen
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(mlp cnn fashion)
for run in "${runs[@]}"; do
  case "$run" in
    mlp) args=(--model mlp --data mnist --epochs 20 --batch-size 128 --optimizer sgd --lr 0.05 --momentum 0.9
               --nesterov --weight-decay 5e-4 --schedule cosine --augment-crop 2 --out runs/mnist-mlp) ;;
    cnn) args=(--model cnn --data mnist --epochs 10 --batch-size 64 --optimizer adamw --lr 3e-3
               --schedule onecycle --augment-crop 2 --label-smoothing 0.05 --out runs/mnist-cnn) ;;
    fashion) args=(--model cnn --data fashion-mnist --epochs 15 --batch-size 64 --optimizer adamw --lr 3e-3
               --schedule onecycle --augment-crop 2 --augment-flip --label-smoothing 0.1 --out runs/fashion-cnn) ;;
    *) echo "unknown run $run (mlp, cnn, fashion)" >&2; exit 2 ;;
  esac
  echo "== $run: jizen train ${args[*]}"
  "$jizen" train "${args[@]}" --quiet
done

#!/usr/bin/env bash
# Prepares, on this (GPU-less) machine, what bench/gpu_check.sh runs on the
# lent GPU machine, whose image has nvcc, CMake, ninja and PyTorch but none of
# brisk's Debian dependencies (Catch2, Google Benchmark, toml++, ...), and no
# way to install them. So: build here for sm_90, and bundle the programs with
# the shared libraries they need that the GPU image lacks, into .gpu/
# (git-ignored; name it in the device tool's carry list):
#   bash bench/gpu_bundle.sh
#   run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=560)
# cuBLAS, cuBLASLt, cuDNN and NCCL are too big to carry (the 64 MiB limit); the GPU
# image has them (PyTorch's nvidia-* wheels), and gpu_check.sh finds them.
set -euo pipefail
cd "$(dirname "$0")/.."
# OpenBLAS off: its library alone (36 MB) would not fit the carry limit.
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRISK_CUDA=ON -DBRISK_OPENBLAS=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" > /dev/null
cmake --build build-gpu --target brisk_tests brisk_cli brisk_bench_cuda
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib
cp build-gpu/tests/brisk_tests build-gpu/brisk build-gpu/bench/brisk_bench_cuda .gpu/bin/
# Libraries outside glibc/libstdc++ (the GPU image has newer ones of those)
# and outside the CUDA libraries the GPU image provides.
for b in .gpu/bin/brisk_tests .gpu/bin/brisk .gpu/bin/brisk_bench_cuda; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | grep -vE '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux)[.-]' |
  grep -vE '/(libcuda|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl)\.so' | while read -r lib; do
  cp -L "$lib" .gpu/lib/
done
# Fashion-MNIST (30 MB), for the 3-epoch cnn run on the card; the GPU image
# has no Debian packages.
if [ -d /usr/share/datasets/fashion-mnist ]; then
  mkdir -p .gpu/data && cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .gpu/data/
fi
strip .gpu/bin/brisk_tests .gpu/bin/brisk .gpu/bin/brisk_bench_cuda 2>/dev/null || true
# The programs and libraries travel gzipped (about 65 MB -> 12 MB with the
# data alongside, under the carry limit); gpu_check.sh unpacks them there.
tar -C .gpu -cf - bin lib | gzip -9 > .gpu/programs.tar.gz
rm -rf .gpu/bin .gpu/lib
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
du -sh .gpu; ls -l .gpu .gpu/data 2>/dev/null

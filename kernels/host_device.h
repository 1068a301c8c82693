// BRISK_HD marks arithmetic written once for the CPU kernels and the CUDA
// kernels (__host__ __device__ under nvcc, nothing under g++).
#pragma once
#ifdef __CUDACC__
#define BRISK_HD __host__ __device__
#else
#define BRISK_HD
#endif

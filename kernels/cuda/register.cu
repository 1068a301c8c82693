// Registers the hand-written CUDA kernels (backend "cuda") and the vendor
// backends (cuBLAS always, cuDNN when compiled in) once, at init_kernels().
// Registration needs no device: on a machine without a GPU the table has
// entries that no tensor can reach (no cuda tensor can be made).
namespace brisk {
namespace kern::cuda {
void register_elementwise();
void register_reduce();
void register_norm();
void register_image();
void register_optim();
void register_gemm();
void register_cublas();
void register_cudnn();
}  // namespace kern::cuda

void register_cuda_kernels() {
  kern::cuda::register_elementwise();
  kern::cuda::register_reduce();
  kern::cuda::register_norm();
  kern::cuda::register_image();
  kern::cuda::register_optim();
  kern::cuda::register_gemm();
  kern::cuda::register_cublas();
#ifdef BRISK_HAS_CUDNN
  kern::cuda::register_cudnn();
#endif
}
}  // namespace brisk

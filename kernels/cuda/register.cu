// Registers the hand-written CUDA kernels (backend "cuda", one stem each) and
// the vendor backends (cuBLAS always, cuDNN when compiled in) once, at
// init_kernels(). Registration needs no device: on a machine without a GPU the
// table has entries that no tensor can reach (no cuda tensor can be made).
namespace brisk {
namespace kern::cuda {
void register_elementwise();
void register_reduce();
void register_softmax();
void register_cross_entropy();
void register_batch_norm();
void register_layer_norm();
void register_attention();
void register_bias_gelu();
void register_im2col();
void register_pool2d();
void register_bias_relu();
void register_bf16_round();
void register_sgd_step();
void register_adamw_step();
void register_index();
void register_gemm();
void register_cublas();
void register_cudnn_conv2d();
void register_cudnn_batch_norm();
}  // namespace kern::cuda

void register_cuda_kernels() {
  kern::cuda::register_elementwise();
  kern::cuda::register_reduce();
  kern::cuda::register_softmax();
  kern::cuda::register_cross_entropy();
  kern::cuda::register_batch_norm();
  kern::cuda::register_layer_norm();
  kern::cuda::register_attention();
  kern::cuda::register_bias_gelu();
  kern::cuda::register_im2col();
  kern::cuda::register_pool2d();
  kern::cuda::register_bias_relu();
  kern::cuda::register_bf16_round();
  kern::cuda::register_sgd_step();
  kern::cuda::register_adamw_step();
  kern::cuda::register_index();
  kern::cuda::register_gemm();
  kern::cuda::register_cublas();
#ifdef BRISK_HAS_CUDNN
  kern::cuda::register_cudnn_conv2d();
  kern::cuda::register_cudnn_batch_norm();
#endif
}
}  // namespace brisk

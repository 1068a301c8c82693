// Registers every reference kernel (the fallback for every CPU op), one stem each.
namespace brisk {
namespace kern::ref {
void register_elementwise();
void register_reduce();
void register_softmax();
void register_gemm();
void register_int8_gemm();
void register_im2col();
void register_pool2d();
void register_conv2d();
void register_bias_relu();
void register_cross_entropy();
void register_sgd_step();
void register_adamw_step();
void register_index();
void register_batch_norm();
void register_layer_norm();
void register_attention();
void register_bias_gelu();
void register_csr_linear();
void register_bf16_round();
void register_stochastic_round();
void register_fp8();
void register_int8_quantize();
}  // namespace kern::ref

void register_ref_kernels() {
  kern::ref::register_elementwise();
  kern::ref::register_reduce();
  kern::ref::register_softmax();
  kern::ref::register_gemm();
  kern::ref::register_int8_gemm();
  kern::ref::register_im2col();
  kern::ref::register_pool2d();
  kern::ref::register_conv2d();
  kern::ref::register_bias_relu();
  kern::ref::register_cross_entropy();
  kern::ref::register_sgd_step();
  kern::ref::register_adamw_step();
  kern::ref::register_index();
  kern::ref::register_batch_norm();
  kern::ref::register_layer_norm();
  kern::ref::register_attention();
  kern::ref::register_bias_gelu();
  kern::ref::register_csr_linear();
  kern::ref::register_bf16_round();
  kern::ref::register_stochastic_round();
  kern::ref::register_fp8();
  kern::ref::register_int8_quantize();
}
}  // namespace brisk

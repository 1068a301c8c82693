// Registers the optimized CPU kernels (backend "cpu"), one stem each.
namespace brisk {
namespace kern::cpu {
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
void register_batch_norm();
void register_layer_norm();
void register_attention();
void register_index();
void register_bias_gelu();
void register_csr_linear();
void register_bf16_round();
void register_fp8();
void register_int8_quantize();
}  // namespace kern::cpu

void register_cpu_kernels() {
  kern::cpu::register_elementwise();
  kern::cpu::register_reduce();
  kern::cpu::register_softmax();
  kern::cpu::register_gemm();
  kern::cpu::register_int8_gemm();
  kern::cpu::register_im2col();
  kern::cpu::register_pool2d();
  kern::cpu::register_conv2d();
  kern::cpu::register_bias_relu();
  kern::cpu::register_cross_entropy();
  kern::cpu::register_sgd_step();
  kern::cpu::register_adamw_step();
  kern::cpu::register_batch_norm();
  kern::cpu::register_layer_norm();
  kern::cpu::register_attention();
  kern::cpu::register_index();
  kern::cpu::register_bias_gelu();
  kern::cpu::register_csr_linear();
  kern::cpu::register_bf16_round();
  kern::cpu::register_fp8();
  kern::cpu::register_int8_quantize();
}
}  // namespace brisk

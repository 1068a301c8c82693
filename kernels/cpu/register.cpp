// Registers the optimized CPU kernels (backend "cpu").
namespace brisk {
namespace kern::cpu {
void register_elementwise();
void register_reduce();
void register_gemm();
void register_image();
void register_norm();
void register_sparse();
void register_pool();
void register_conv();
void register_fused();
}  // namespace kern::cpu

void register_cpu_kernels() {
  kern::cpu::register_elementwise();
  kern::cpu::register_reduce();
  kern::cpu::register_gemm();
  kern::cpu::register_image();
  kern::cpu::register_norm();
  kern::cpu::register_sparse();
  kern::cpu::register_pool();
  kern::cpu::register_conv();
  kern::cpu::register_fused();
}
}  // namespace brisk

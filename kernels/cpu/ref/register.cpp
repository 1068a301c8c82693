// Registers every reference kernel (the fallback for every CPU op).
namespace brisk {
namespace kern::ref {
void register_elementwise();
void register_reduce();
void register_gemm();
void register_image();
void register_norm();
void register_sparse();
void register_index();
void register_conv();
void register_fused();
}  // namespace kern::ref

void register_ref_kernels() {
  kern::ref::register_elementwise();
  kern::ref::register_reduce();
  kern::ref::register_gemm();
  kern::ref::register_image();
  kern::ref::register_norm();
  kern::ref::register_sparse();
  kern::ref::register_index();
  kern::ref::register_conv();
  kern::ref::register_fused();
}
}  // namespace brisk

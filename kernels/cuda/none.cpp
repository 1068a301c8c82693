// Built when BRISK_CUDA is off or nvcc is missing.
namespace brisk {
int cuda_device_count() { return 0; }
bool cuda_compiled() { return false; }
void register_cuda_kernels() {}
}  // namespace brisk

// Built when no vendor library is compiled in (BRISK_OPENBLAS=OFF).
namespace brisk {
void register_vendor_kernels() {}
void vendor_set_num_threads(int) {}
}  // namespace brisk

// Tensor metadata, views sharing storage, factories, casts, item and printing.
#include <sstream>

#include "tests/helpers.h"

using namespace bt;

TEST_CASE("tensor: shape, strides, contiguity and alignment", "[tensor]") {
  Tensor t = zeros({2, 3, 4});
  CHECK(t.dim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.strides() == Shape({12, 4, 1}));
  CHECK(t.is_contiguous());
  CHECK(t.dtype() == DType::f32);
  CHECK(t.device() == kCPU);
  CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  Tensor s = scalar_tensor(3.5);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item() == 3.5);
}

TEST_CASE("tensor: views share storage and write through", "[tensor]") {
  Tensor base = arange(0, 24, 1, DType::f32).reshape({2, 3, 4});
  Tensor tr = base.transpose(0, 2);
  CHECK(tr.shape() == Shape({4, 3, 2}));
  CHECK(tr.strides() == Shape({1, 4, 12}));
  CHECK_FALSE(tr.is_contiguous());
  CHECK(tr.storage() == base.storage());
  Tensor nar = base.narrow(2, 1, 2);
  CHECK(nar.offset() == 1);
  CHECK(nar.shape() == Shape({2, 3, 2}));
  nar.fill_(-1);
  auto v = base.to_vector();
  CHECK(v[0] == 0);
  CHECK(v[1] == -1);
  CHECK(v[2] == -1);
  CHECK(v[3] == 3);
  Tensor sl = arange(10, DType::f32).slice(0, 1, 9, 3);
  CHECK(sl.to_vector() == std::vector<double>({1, 4, 7}));
  Tensor sel = base.select(1, 2);
  CHECK(sel.shape() == Shape({2, 4}));
  CHECK(sel.to_vector()[0] == 8);
}

TEST_CASE("tensor: expand, squeeze, unsqueeze, permute, reshape", "[tensor]") {
  Tensor col = arange(3, DType::f32).reshape({3, 1});
  Tensor e = col.expand({2, 3, 4});
  CHECK(e.strides() == Shape({0, 1, 0}));
  CHECK(e.storage() == col.storage());
  CHECK(e.to_vector()[5] == 1);  // [0][1][1]
  CHECK(col.unsqueeze(0).shape() == Shape({1, 3, 1}));
  CHECK(col.squeeze().shape() == Shape({3}));
  CHECK(col.squeeze(0).shape() == Shape({3, 1}));  // dim 0 has size 3: unchanged
  Tensor p = arange(0, 24, 1, DType::f32).reshape({2, 3, 4}).permute({1, 2, 0});
  CHECK(p.shape() == Shape({3, 4, 2}));
  CHECK(p.to_vector()[1] == 12);
  // reshape of a non-viewable tensor copies; of a viewable one shares storage
  Tensor r1 = p.reshape({-1});
  CHECK(r1.storage() != p.storage());
  CHECK(r1.to_vector()[1] == 12);
  Tensor base = zeros({4, 6});
  CHECK(base.reshape({2, 2, 3, 2}).storage() == base.storage());
  CHECK(base.narrow(1, 0, 3).reshape({12}).storage() != base.storage());
  CHECK(base.t().contiguous().is_contiguous());
}

TEST_CASE("tensor: factories", "[tensor]") {
  CHECK(ones({2, 2}, DType::i32).to_vector() == std::vector<double>({1, 1, 1, 1}));
  CHECK(full({3}, 2.5, DType::f64).to_vector() == std::vector<double>({2.5, 2.5, 2.5}));
  CHECK(arange(0, 1, 0.25, DType::f64).to_vector() == std::vector<double>({0, 0.25, 0.5, 0.75}));
  CHECK(arange(4).dtype() == DType::i64);
  Tensor r = rand({1000});
  auto v = r.to_vector();
  CHECK(*std::min_element(v.begin(), v.end()) >= 0.0);
  CHECK(*std::max_element(v.begin(), v.end()) < 1.0);
  Tensor z = zeros({0, 3});
  CHECK(z.numel() == 0);
  CHECK(sum(z).item() == 0.0);
}

TEST_CASE("tensor: casts between all dtypes", "[tensor]") {
  Tensor x = from_vector({-2.5, -1, 0, 1, 2.75, 100}, {6}, DType::f64);
  CHECK(x.to(DType::i32).to_vector() == std::vector<double>({-2, -1, 0, 1, 2, 100}));
  CHECK(x.to(DType::i64).to_vector() == std::vector<double>({-2, -1, 0, 1, 2, 100}));
  CHECK(x.to(DType::boolean).to_vector() == std::vector<double>({1, 1, 0, 1, 1, 1}));
  CHECK(x.to(DType::f16).to(DType::f64).to_vector() == x.to_vector());
  CHECK(x.to(DType::bf16).to(DType::f64).to_vector() == x.to_vector());
  CHECK(from_vector({3, 255}, {2}, DType::u8).to(DType::f32).to_vector() == std::vector<double>({3, 255}));
  // i64 copies are exact beyond 2^53
  Tensor big = full({1}, 0, DType::i64);
  int64_t huge = (int64_t(1) << 60) + 1;
  big.data_ptr<int64_t>()[0] = huge;
  CHECK(big.clone().data_ptr<int64_t>()[0] == huge);
}

TEST_CASE("tensor: item and printing show shape, dtype and device", "[tensor]") {
  Tensor t = from_vector({1, 2, 3, 4}, {2, 2});
  std::ostringstream os;
  os << t;
  CHECK(os.str().find("[[1, 2],\n [3, 4]]") != std::string::npos);
  CHECK(os.str().find("shape=[2, 2]") != std::string::npos);
  CHECK(os.str().find("dtype=f32") != std::string::npos);
  CHECK(os.str().find("device=cpu") != std::string::npos);
  CHECK(t.str() == "Tensor(shape=[2, 2], dtype=f32, device=cpu)");
  CHECK(sum(t).item() == 10.0);
  CHECK(sum(t).item<int>() == 10);
}

TEST_CASE("tensor: storage is refcounted and freed", "[tensor]") {
  size_t before = Storage::live_count();
  {
    Tensor a = zeros({128});
    Tensor v = a.narrow(0, 0, 4);
    CHECK(Storage::live_count() == before + 1);
    a = Tensor();
    CHECK(Storage::live_count() == before + 1);  // view keeps it alive
  }
  CHECK(Storage::live_count() == before);
}

TEST_CASE("tensor: meta device has shape but no data", "[tensor]") {
  Tensor m = empty({2, 3}, TensorOptions(DType::f32, Device(DeviceType::meta)));
  CHECK(m.device().type == DeviceType::meta);
  CHECK(m.transpose(0, 1).shape() == Shape({3, 2}));
  CHECK(Device::parse("cuda:1") == Device(DeviceType::cuda, 1));
  CHECK(Device::parse("cpu").str() == "cpu");
}

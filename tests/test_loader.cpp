// DataLoader: indices, seeded shuffling, drop_last, resume position,
// augmentation and prefetch determinism.
#include <set>
#include <thread>
#include <tuple>

#include "data/loader.h"
#include "tests/helpers.h"

using namespace bt;
using namespace brisk::data;

// N images whose pixels encode their own index, and labels = index % 10.
static Dataset synthetic(int64_t n) {
  Dataset d;
  d.name = "synthetic";
  d.images = empty({n, 1, 4, 4}, DType::u8);
  d.labels = empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < 16; ++p) d.images.data_ptr<uint8_t>()[i * 16 + p] = uint8_t((i + p) % 256);
    d.labels.data_ptr<int64_t>()[i] = i % 10;
  }
  return d;
}

static std::vector<Batch> epoch(DataLoader& l, int64_t e, int64_t first = 0) {
  l.start_epoch(e, first);
  std::vector<Batch> out;
  while (auto b = l.next()) out.push_back(*b);
  return out;
}

TEST_CASE("loader: batches carry dataset indices consistent with labels and pixels", "[loader]") {
  LoaderOptions o;
  o.batch_size = 8;
  DataLoader l(synthetic(50), o);
  CHECK(l.num_batches() == 6);  // drop_last
  std::set<int64_t> seen;
  for (auto& b : epoch(l, 0)) {
    auto idx = b.indices.to_vector(), y = b.y.to_vector(), x = b.x.to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      CHECK(y[i] == double(int64_t(idx[i]) % 10));
      CHECK(x[i * 16] == Approx(double(int64_t(idx[i]) % 256) / 255.0));  // mean 0, std 1
      seen.insert(int64_t(idx[i]));
    }
  }
  CHECK(seen.size() == 48);
  o.drop_last = false;
  DataLoader l2(synthetic(50), o);
  CHECK(l2.num_batches() == 7);
  CHECK(epoch(l2, 0).back().y.numel() == 2);
}

// Every pixel of an unaugmented batch is (p / 255 - mean) / std: images of
// 28x28 (the Fashion-MNIST size, whole 16-float vectors) and 3x5x9 (135
// pixels: a partial vector at the end), all 256 byte values present.
TEST_CASE("loader: every pixel is normalized by the dataset's mean and std", "[loader]") {
  for (auto [C, H, W] : {std::tuple<int64_t, int64_t, int64_t>{1, 28, 28}, {3, 5, 9}}) {
    const int64_t n = 12, per = C * H * W;
    Dataset d;
    d.name = "bytes";
    d.images = empty({n, C, H, W}, DType::u8);
    d.labels = zeros({n}, DType::i64);
    uint8_t* px = d.images.data_ptr<uint8_t>();
    for (int64_t i = 0; i < n * per; ++i) px[i] = uint8_t((i * 37 + i / 256) % 256);
    d.mean = 0.3;
    d.std = 0.4;
    LoaderOptions o;
    o.batch_size = 5;
    o.drop_last = false;  // a short last batch too
    DataLoader l(d, o);
    int64_t checked = 0;
    for (auto& b : epoch(l, 1)) {
      auto idx = b.indices.to_vector(), x = b.x.to_vector();
      for (size_t k = 0; k < idx.size(); ++k)
        for (int64_t q = 0; q < per; ++q, ++checked) {
          double want = (double(px[int64_t(idx[k]) * per + q]) / 255.0 - 0.3) / 0.4;
          REQUIRE(std::abs(x[k * size_t(per) + size_t(q)] - want) < 1e-6);
        }
    }
    CHECK(checked == n * per);
  }
}

TEST_CASE("loader: shuffling is seeded, differs per epoch, and resumes mid-epoch", "[loader]") {
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 3;
  DataLoader a(synthetic(100), o), b(synthetic(100), o);
  auto e0 = epoch(a, 0), e0b = epoch(b, 0), e1 = epoch(a, 1);
  CHECK(bit_equal(e0[0].indices, e0b[0].indices));
  CHECK_FALSE(bit_equal(e0[0].indices, e1[0].indices));
  auto resumed = epoch(b, 0, 4);
  REQUIRE(resumed.size() == 6);
  CHECK(bit_equal(resumed[0].x, e0[4].x));
  o.seed = 4;
  DataLoader c(synthetic(100), o);
  CHECK_FALSE(bit_equal(epoch(c, 0)[0].indices, e0[0].indices));
}

TEST_CASE("loader: prefetching changes nothing", "[loader]") {
  LoaderOptions o;
  o.batch_size = 16;
  o.augment = parse_augment("crop+flip");
  DataLoader p(synthetic(64), o);
  o.prefetch = false;
  DataLoader s(synthetic(64), o);
  CHECK_FALSE(s.background());
  {  // with every core training, batches are built in place
    bt::ThreadCount all(int(std::max(1u, std::thread::hardware_concurrency())));
    CHECK_FALSE(p.background());
  }
  bt::ThreadCount one(1);  // a core left free: the background thread builds them
  if (std::thread::hardware_concurrency() > 1) CHECK(p.background());
  auto a = epoch(p, 2), b = epoch(s, 2);
  for (size_t i = 0; i < a.size(); ++i) CHECK(bit_equal(a[i].x, b[i].x));
}

TEST_CASE("loader: flip mirrors and crop shifts the image", "[loader]") {
  Dataset d;
  d.name = "one";
  d.images = zeros({1, 1, 3, 3}, DType::u8);
  d.images.data_ptr<uint8_t>()[0] = 255;  // top-left pixel
  d.labels = zeros({1}, DType::i64);
  LoaderOptions o;
  o.batch_size = 1;
  o.augment.hflip = true;
  int flipped = 0, plain = 0;
  for (int e = 0; e < 40; ++e) {
    DataLoader l(d, o);
    auto x = epoch(l, e)[0].x.to_vector();
    if (x[2] == 1.0 && x[0] == 0.0) flipped++;
    if (x[0] == 1.0 && x[2] == 0.0) plain++;
  }
  CHECK(flipped + plain == 40);
  CHECK(flipped > 5);
  CHECK(plain > 5);
  o.augment = Augment{1, false};
  int moved = 0;
  for (int e = 0; e < 20; ++e) {
    DataLoader l(d, o);
    auto x = epoch(l, e)[0].x.to_vector();
    CHECK(std::count(x.begin(), x.end(), 1.0) <= 1);
    if (x[0] != 1.0) moved++;
  }
  CHECK(moved > 0);
  CHECK_THROWS_WITH(parse_augment("rotate"), Catch::Contains("unknown augmentation 'rotate'"));
}

// Every augmented image is exactly one of the (2p+1)^2 * 2 crops-and-flips
// of its source, each computed here pixel by pixel: on a 5x7 two-channel
// image whose pixels are all distinct and nonzero, so no two candidates
// agree, and padding 2 leaves some crops with whole rows and columns of zeros.
TEST_CASE("loader: crop+flip output is one shifted, possibly mirrored copy of the source", "[loader]") {
  const int64_t n = 24, C = 2, H = 5, W = 7, P = 2;
  Dataset d;
  d.name = "distinct";
  d.images = empty({n, C, H, W}, DType::u8);
  d.labels = zeros({n}, DType::i64);
  uint8_t* px = d.images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n * C * H * W; ++i) px[i] = uint8_t(1 + (i * 7) % 250);
  d.mean = 0.25;
  d.std = 0.5;
  LoaderOptions o;
  o.batch_size = 8;
  o.augment = parse_augment("crop+flip");
  o.augment.crop_padding = P;
  DataLoader l(d, o);
  std::set<std::tuple<int64_t, int64_t, bool>> used;
  for (int e = 0; e < 3; ++e)
    for (auto& b : epoch(l, e)) {
      auto idx = b.indices.to_vector(), x = b.x.to_vector();
      for (size_t k = 0; k < idx.size(); ++k) {
        const uint8_t* src = px + int64_t(idx[k]) * C * H * W;
        int matches = 0;
        for (int64_t dy = -P; dy <= P; ++dy)
          for (int64_t dx = -P; dx <= P; ++dx)
            for (bool flip : {false, true}) {
              bool same = true;
              for (int64_t c = 0; c < C && same; ++c)
                for (int64_t r = 0; r < H && same; ++r)
                  for (int64_t q = 0; q < W && same; ++q) {
                    int64_t sr = r + dy, sq = (flip ? W - 1 - q : q) + dx;
                    double v = sr >= 0 && sr < H && sq >= 0 && sq < W ? src[(c * H + sr) * W + sq] : 0.0;
                    same = std::abs(x[k * C * H * W + size_t((c * H + r) * W + q)] - (v / 255.0 - 0.25) / 0.5) < 1e-5;
                  }
              if (same) {
                ++matches;
                used.insert({dy, dx, flip});
              }
            }
        CHECK(matches == 1);
      }
    }
  CHECK(used.size() > 10);  // 72 draws: many distinct crops and both flips
}

// Data-parallel sharding (LoaderOptions::rank): batch b of ranks 0..R-1 with
// batch size B holds exactly the examples of batch b of one rank with batch
// size R * B, augmented alike, and each rank takes the same number of steps.
TEST_CASE("loader: ranks shard the epoch like one rank with a batch R times larger", "[loader]") {
  Dataset d = synthetic(103);  // 103 = 3 * 34 + 1: one example left over per epoch
  for (int64_t R : {2, 3}) {
    LoaderOptions one;
    one.batch_size = 4 * R;
    one.seed = 11;
    one.augment = parse_augment("crop+flip");
    DataLoader whole(d, one);
    std::vector<Batch> ref = epoch(whole, 1);
    std::vector<std::vector<Batch>> ranks;
    for (int64_t r = 0; r < R; ++r) {
      LoaderOptions o = one;
      o.batch_size = 4;
      o.rank = r;
      o.world = R;
      DataLoader l(d, o);
      ranks.push_back(epoch(l, 1));
      CHECK(l.num_batches() == (103 / R) / 4);
      CHECK(l.num_batches_full() == (103 / R) / 4);
    }
    REQUIRE(ref.size() == ranks[0].size());
    for (size_t b = 0; b < ref.size(); ++b) {
      // Rank r's example i is example i * R + r of the one-rank batch.
      for (int64_t r = 0; r < R; ++r) {
        const Batch& mine = ranks[size_t(r)][b];
        REQUIRE(mine.indices.numel() == 4);
        for (int64_t i = 0; i < 4; ++i) {
          int64_t j = i * R + r;
          CHECK(mine.indices.data_ptr<int64_t>()[i] == ref[b].indices.data_ptr<int64_t>()[j]);
          CHECK(mine.y.data_ptr<int64_t>()[i] == ref[b].y.data_ptr<int64_t>()[j]);
          for (int64_t p = 0; p < 16; ++p)
            CHECK(mine.x.data_ptr<float>()[i * 16 + p] == ref[b].x.data_ptr<float>()[j * 16 + p]);
        }
      }
    }
  }
  LoaderOptions bad;
  bad.batch_size = 4;
  bad.rank = 2;
  bad.world = 2;
  CHECK_THROWS_WITH(DataLoader(d, bad), Catch::Contains("rank 2 is not in [0, 2)"));
  bad.rank = 0;
  bad.batch_size = 60;  // 2 x 60 > 103 examples
  CHECK_THROWS_WITH(DataLoader(d, bad), Catch::Contains("on each of 2 ranks"));
}

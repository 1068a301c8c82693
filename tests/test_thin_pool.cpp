// The fused first layer + 2x2 max pool (kernels/cpu/conv2d_thin_pool.h):
// its forward against the convolution's sums in double, pooled by
// max_pool_2x2's rule and relu_pooled's (exactly where the arithmetic is
// exact, to rounding elsewhere); its weight and bias gradient against
// their definition summed in double; its input gradient against its
// definition (f32, and bf16's rounded operands and output exactly);
// conv2d_max_pool2d dispatching to it, its bits at 1 and 3 threads, and
// the switch. Every ISA it runs on that the CPU has.
#include <cmath>
#include <cstring>

#include "core/autocast.h"
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "kernels/cpu/conv2d_thin_pool.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

using namespace bt;
namespace kc = brisk::kern::cpu;
namespace F = brisk::nn::functional;

namespace {

struct PlaneCase { int64_t N, O, H, W; };

// The cnn's first layer (196 windows: 25 vectors, the last half full);
// odd planes (a row and a column outside every window); pooled rows of 1,
// 3 and 18 windows (vectors of 8 cross rows); a 2 x 2 plane; planes taken
// in bands of rows (40 windows a row: bands of 6, 6 and 2 rows; 300 a row:
// one row a band; planes up to 32 wide, whose taps are built in registers,
// in bands too: 32 wide, bands of 16 and 4 rows; 31 wide, of 17 and 1).
// Odd channel counts leave a channel without a partner.
const std::vector<PlaneCase> kShapes{{3, 32, 28, 28}, {2, 5, 9, 7},   {2, 3, 5, 2},    {2, 4, 6, 37},
                                     {1, 7, 2, 2},    {2, 3, 28, 81}, {1, 2, 5, 601}, {2, 3, 40, 32},
                                     {1, 2, 37, 31}};

Geom2d same1(const PlaneCase& s) { return Geom2d{s.N, 1, s.H, s.W, 3, 3, 1, 1, 1, 1, 1, 1, s.H, s.W}; }

// Integers in -3..3 (ties in the pool windows) or normals, by seed.
std::vector<float> values(int64_t n, uint64_t seed, bool ties) {
  Generator g(seed);
  std::vector<double> d = randn({n}, {}, &g).to_vector();
  std::vector<float> out(d.size());
  for (size_t i = 0; i < d.size(); ++i) out[i] = ties ? float(std::round(std::clamp(d[i] * 1.5, -3.0, 3.0))) : float(d[i]);
  return out;
}

struct Restore {
  ~Restore() {
    kc::set_sgemm_isa("auto");
    kc::set_conv_thin_pool(true);
  }
};

// Input (h, v) of plane n, zero outside it.
float at(const std::vector<float>& x, const PlaneCase& s, int64_t n, int64_t h, int64_t v) {
  return h >= 0 && h < s.H && v >= 0 && v < s.W ? x[size_t((n * s.H + h) * s.W + v)] : 0.f;
}

// conv2d_bwd_input through the dispatcher (the kernel conv2d's backward
// takes) on the pooled gradient gy and codes [N, O, H/2, W/2], w [O, 1, 3,
// 3]: gx [N, 1, H, W]. bf16: folded casts, the GEMMs' operands rounded as
// under autocast.
std::vector<float> input_grad(const PlaneCase& s, const std::vector<float>& gy, const std::vector<uint8_t>& code,
                              const std::vector<float>& w, bool bf16) {
  int64_t Hp = s.H / 2, Wp = s.W / 2;
  Tensor gyt = empty({s.N, s.O, Hp, Wp}), wt = empty({s.O, 1, 3, 3}), gxt = empty({s.N, 1, s.H, s.W});
  Tensor ct = empty({s.N, s.O, Hp, Wp}, TensorOptions(DType::u8));
  std::memcpy(gyt.data_ptr<float>(), gy.data(), sizeof(float) * gy.size());
  std::memcpy(wt.data_ptr<float>(), w.data(), sizeof(float) * w.size());
  std::memcpy(ct.data_ptr<uint8_t>(), code.data(), code.size());
  brisk::ConvParams p{same1(s), true, bf16};
  Tensor ins[3] = {gyt, wt, ct}, outs[1] = {gxt};
  GemmBf16Scope scope(bf16);
  brisk::dispatch(brisk::opkey::conv2d_bwd_input, brisk::DeviceType::cpu, DType::f32, brisk::KernelArgs{ins, outs, &p});
  const float* g = gxt.data_ptr<float>();
  return std::vector<float>(g, g + s.N * s.H * s.W);
}

}  // namespace

// The forward runs Winograd's F(2x2, 3x3): on small integers (and halves,
// in the transformed filter) every step is exact, so the values and codes
// must be the direct sum's pooled by max_pool_2x2's rule exactly; on normal
// values, each pooled value must be the direct sum (in double) at the
// window position its code names, to rounding, and that position a maximum
// of the window to rounding. A NaN input reaches exactly the windows whose
// 3x3 sums hold it (the first NaN of the window wins, as in the pool); the
// windows under a value near the float range (3e38) may overflow either
// way and are only checked for a valid code.
TEST_CASE("kernels: fused first layer + pool forward is the 3x3 convolution, pooled", "[kernels][thin_pool]") {
  Restore restore;
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool")) {
    kc::set_sgemm_isa(isa);
    for (const PlaneCase& s : kShapes)
      for (bool ties : {false, true})
        for (bool relu : {false, true})
          for (bool with_bias : {true, false}) {
            Geom2d g = same1(s);
            REQUIRE(kc::conv2d_thin_pool_applies(g));
            int64_t Hp = s.H / 2, Wp = s.W / 2, P = s.N * s.O * Hp * Wp, guard = 24;
            std::vector<float> x = values(s.N * s.H * s.W, 1 + ties, ties), w = values(s.O * 9, 3 + ties, ties),
                               b = values(s.O, 5, ties);
            x[size_t(s.W + 1)] = NAN;  // sample 0, (1, 1): in four windows' taps
            // sample 1: a value whose products may overflow (the path that keeps the NaN rule)
            if (s.N > 1) x[size_t(s.H * s.W + s.W - 1)] = 3e38f;
            std::vector<float> y(size_t(P + guard), NAN);
            std::vector<uint8_t> code(size_t(P + guard), 99);
            for (int64_t i = 0; i < guard; ++i) y[size_t(P + i)] = 7.f;
            kc::conv2d_thin_pool_forward(x.data(), w.data(), with_bias ? b.data() : nullptr, g, s.O, relu, y.data(),
                                         code.data());
            int64_t bad = 0, nans = 0, dead = 0, checked = 0;
            double worst = 0;
            for (int64_t n = 0; n < s.N; ++n)
              for (int64_t o = 0; o < s.O; ++o)
                for (int64_t r = 0; r < Hp; ++r)
                  for (int64_t c = 0; c < Wp; ++c) {
                    size_t i = size_t(((n * s.O + o) * Hp + r) * Wp + c);
                    bool wild = false;
                    double xmax = 0, wsum = 0;
                    for (int dh = -1; dh <= 2; ++dh)
                      for (int dv = -1; dv <= 2; ++dv) {
                        double a = std::abs(double(at(x, s, n, 2 * r + dh, 2 * c + dv)));
                        wild |= a > 1e30;
                        if (a == a) xmax = std::max(xmax, a);
                      }
                    for (int k = 0; k < 9; ++k) wsum += std::abs(double(w[size_t(o * 9 + k)]));
                    if (wild) {
                      bad += code[i] > 4;
                      continue;
                    }
                    double win[4];
                    for (int p = 0; p < 4; ++p) {
                      int64_t h = 2 * r + p / 2, v = 2 * c + p % 2;
                      double acc = 0;
                      for (int k = 0; k < 9; ++k)
                        acc += double(w[size_t(o * 9 + k)]) * at(x, s, n, h + k / 3 - 1, v + k % 3 - 1);
                      win[p] = with_bias ? acc + double(b[size_t(o)]) : acc;
                    }
                    int k = -1;  // the first NaN, else the first maximum, row-major
                    for (int p = 0; p < 4; ++p) {
                      if (std::isnan(win[p])) {
                        k = p;
                        break;
                      }
                      if (k < 0 || win[p] > win[k]) k = p;
                    }
                    double want = win[k];
                    if (relu && !(want > 0)) want = 0, k = 4;
                    nans += std::isnan(y[i]);
                    dead += code[i] == 4;
                    ++checked;
                    if (std::isnan(want) || ties) {  // exact: the value and the first-maximum code
                      bool same = std::isnan(want) ? std::isnan(y[i]) : double(y[i]) == want;
                      bad += !same || code[i] != k;
                      continue;
                    }
                    // to rounding: the value at the code's position, a maximum of the window
                    double tol = 1e-5 * (1 + 16 * xmax * wsum + (with_bias ? std::abs(b[size_t(o)]) : 0.0));
                    int kc_ = code[i];
                    if (kc_ > 4 || (kc_ == 4 && !relu)) {
                      ++bad;
                      continue;
                    }
                    double top = std::max({win[0], win[1], win[2], win[3]});
                    double at_code = kc_ == 4 ? 0.0 : win[kc_];
                    double err = kc_ == 4 ? std::abs(double(y[i])) + std::max(0.0, top)
                                          : std::max(std::abs(double(y[i]) - at_code), top - at_code);
                    if (kc_ != 4 && relu) err = std::max(err, -at_code);  // a window kept by the ReLU is above 0
                    worst = std::max(worst, err / tol);
                    bad += !(err <= tol);
                  }
            INFO(isa << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W << (ties ? " ties" : "")
                     << (relu ? " relu" : "") << (with_bias ? "" : " no bias") << ": worst error " << worst
                     << " of the tolerance");
            CHECK(bad == 0);
            CHECK(checked > 0);
            if (relu) CHECK(nans == 0);  // the NaN reaches window (0, 0) of every channel of sample 0
            else CHECK(nans >= s.O);
            if (relu) CHECK(dead > 0);
            for (int64_t i = 0; i < guard; ++i) CHECK((y[size_t(P + i)] == 7.f && code[size_t(P + i)] == 99));
          }
  }
}

// The forward's values bit for bit: each window's Winograd arithmetic
// written out in scalars, in the order the kernels' comments give (V = B^T
// d B rows then columns; U = G g G^T with column 3 negated; per column j of
// M the multiply-adds m1 = U_1j V_1j (+ b at j = 1), Q_0j = U_0j V_0j +
// (U_2j V_2j + m1), -Q_1j... as fused multiply-adds; a_r + s_r, a_r + t_r),
// then the pool's first maximum and ReLU. However the kernel groups
// windows into vectors (8 or 16 lanes, one vector or two at a time, the
// last one partial), every value must be this one, and every code must
// name a position whose output is that value (f32: the 16-lane path may
// name the second of two equal outputs). bf16: x and w rounded first, each
// output rounded before the pool, and the code exactly the first maximum
// of the rounded outputs, which a flat input makes differ from the largest
// output before rounding.
TEST_CASE("kernels: fused first layer + pool forward gives its Winograd arithmetic's bits", "[kernels][thin_pool]") {
  Restore restore;
  auto bt4 = [&](const float (&d)[4], float (&out)[4]) {  // winograd_bt4: one add or subtract each
    out[0] = d[0] - d[2];
    out[1] = d[1] + d[2];
    out[2] = d[2] - d[1];
    out[3] = d[1] - d[3];
  };
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool")) {
    kc::set_sgemm_isa(isa);
    for (const PlaneCase& s : kShapes)
      for (bool bf16 : {false, true})
        for (bool relu : {false, true})
          for (bool flat : {false, true}) {
          Geom2d g = same1(s);
          const int64_t Hp = s.H / 2, Wp = s.W / 2, P = s.N * s.O * Hp * Wp;
          std::vector<float> x = values(s.N * s.H * s.W, 11, false), w = values(s.O * 9, 13, false),
                             b = values(s.O, 17, false);
          // flat: an input of 1 + 0.001 noise, whose windows' four outputs differ
          // by less than a bf16 step (bf16 rounds many of them alike), and a bias
          // that keeps every output above 0 (the ReLU kills none)
          if (flat) {
            for (float& v : x) v = 1.f + 0.001f * v;
            for (int64_t o = 0; o < s.O; ++o) {
              float l1 = 0.f;
              for (int k = 0; k < 9; ++k) l1 += std::abs(w[size_t(o * 9 + k)]);
              b[size_t(o)] = 1.5f * l1 + 0.1f;
            }
          }
          std::vector<float> y(size_t(P), NAN);
          std::vector<uint8_t> code(size_t(P), 99);
          kc::conv2d_thin_pool_forward(x.data(), w.data(), b.data(), g, s.O, relu, y.data(), code.data(), bf16);
          auto rd = [&](float v) { return bf16 ? brisk::bf16_rounded(v) : v; };
          int64_t bad_value = 0, bad_code = 0, rounded_ties = 0;
          for (int64_t o = 0; o < s.O; ++o) {
            float gw[9], gg[4][3], u[16];
            for (int k = 0; k < 9; ++k) gw[k] = rd(w[size_t(o * 9 + k)]);
            for (int j = 0; j < 3; ++j) {  // G g, then (G g) G^T: winograd_filter's order
              gg[0][j] = gw[j];
              gg[1][j] = 0.5f * (gw[j] + gw[3 + j] + gw[6 + j]);
              gg[2][j] = 0.5f * (gw[j] - gw[3 + j] + gw[6 + j]);
              gg[3][j] = gw[6 + j];
            }
            for (int i = 0; i < 4; ++i) {
              u[4 * i + 0] = gg[i][0];
              u[4 * i + 1] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
              u[4 * i + 2] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
              u[4 * i + 3] = -gg[i][2];  // negated
            }
            for (int64_t n = 0; n < s.N; ++n)
              for (int64_t r = 0; r < Hp; ++r)
                for (int64_t c = 0; c < Wp; ++c) {
                  float z[4][4], v[4][4];
                  for (int m = 0; m < 4; ++m) {  // Z = B^T d, column by column
                    float col[4], t[4];
                    for (int rr = 0; rr < 4; ++rr) col[rr] = rd(at(x, s, n, 2 * r - 1 + rr, 2 * c - 1 + m));
                    bt4(col, t);
                    for (int i = 0; i < 4; ++i) z[i][m] = t[i];
                  }
                  for (int i = 0; i < 4; ++i) bt4(z[i], v[i]);  // V = Z B, row by row
                  float q0[4], q1[4];
                  const float bo = b[size_t(o)];
                  for (int j = 0; j < 4; ++j) {
                    const float m1 = j == 1 ? std::fma(u[5], v[1][1], bo) : u[4 + j] * v[1][j];
                    q0[j] = std::fma(u[j], v[0][j], std::fma(u[8 + j], v[2][j], m1));
                    q1[j] = std::fma(-u[12 + j], v[3][j], std::fma(-u[8 + j], v[2][j], m1));
                  }
                  const float q[4] = {q0[1] + (q0[0] + q0[2]), q0[1] + (q0[3] - q0[2]), q1[1] + (q1[0] + q1[2]),
                                      q1[1] + (q1[3] - q1[2])};  // the outputs before rounding
                  const float out[4] = {rd(q[0]), rd(q[1]), rd(q[2]), rd(q[3])};
                  int k = 0;
                  for (int p = 1; p < 4; ++p)
                    if (out[p] > out[k]) k = p;
                  float want = out[k];
                  if (relu && !(want > 0)) want = 0, k = 4;
                  const size_t i = size_t(((n * s.O + o) * Hp + r) * Wp + c);
                  bad_value += std::memcmp(&y[i], &want, 4) != 0;
                  // bf16: the first maximum of the rounded outputs, exactly (the pool of
                  // the cast output), also where two different sums round alike (then,
                  // rounding being monotonic, k is not the largest sum's position)
                  rounded_ties += bf16 && k < 4 && k != std::max_element(q, q + 4) - q;
                  bad_code += bf16 ? code[i] != k : !(code[i] == k || (code[i] < 4 && k < 4 && out[code[i]] == want));
                }
          }
          INFO(isa << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W << (bf16 ? " bf16" : "")
                   << (relu ? " relu" : "") << (flat ? " flat input" : ""));
          CHECK(bad_value == 0);
          CHECK(bad_code == 0);
          // windows where the first rounded maximum is not the largest sum:
          // the flat input must hold some, or the exact-code check above is moot
          if (bf16 && flat && s.H >= 6 && s.W >= 6) CHECK(rounded_ties > 0);
        }
  }
}

TEST_CASE("kernels: fused first layer + pool weight gradient matches its definition", "[kernels][thin_pool]") {
  Restore restore;
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool")) {
    kc::set_sgemm_isa(isa);
    // samples a call: one; two (one band of two planes where they fit); three (two, then one)
    for (int64_t per_call : {1, 2, 3})
    for (const PlaneCase& s : kShapes) {
      Geom2d g = same1(s);
      int64_t Hp = s.H / 2, Wp = s.W / 2, Lp = Hp * Wp;
      std::vector<float> x = values(s.N * s.H * s.W, 7, false), gy = values(s.N * s.O * Lp, 8, false);
      std::vector<uint8_t> code(gy.size());
      for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t(i * 7 % 5);  // every position, and 4 (no gradient)
      std::vector<float> gw(size_t(s.O * 9), 0.5f), gb(size_t(s.O), -0.25f);  // finish() adds to what is there
      {
        kc::ThinPoolWeightGrad tg(g, s.O);
        for (int64_t n = 0; n < s.N; n += per_call) {
          int64_t take = std::min(per_call, s.N - n);
          tg.add(gy.data() + n * s.O * Lp, code.data() + n * s.O * Lp, x.data() + n * s.H * s.W,
                 (s.N - n - take) * s.O * Lp, take);
        }
        tg.finish(gw.data(), gb.data());
      }
      int64_t bad = 0;
      double worst = 0;
      for (int64_t o = 0; o < s.O; ++o)
        for (int64_t k = 0; k <= 9; ++k) {  // k = 9: the bias
          double sum = k < 9 ? 0.5 : -0.25, mag = std::abs(sum);
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t r = 0; r < Hp; ++r)
              for (int64_t c = 0; c < Wp; ++c) {
                size_t i = size_t((n * s.O + o) * Lp + r * Wp + c);
                int p = code[i];
                if (p > 3) continue;
                double t = gy[i] * (k < 9 ? at(x, s, n, 2 * r + p / 2 + k / 3 - 1, 2 * c + p % 2 + k % 3 - 1) : 1.0);
                sum += t, mag += std::abs(t);
              }
          double got = k < 9 ? gw[size_t(o * 9 + k)] : gb[size_t(o)], err = std::abs(got - sum) / (1 + mag);
          worst = std::max(worst, std::isnan(err) ? 1e9 : err);
          bad += !(err <= 1e-5);
        }
      INFO(isa << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W << ", " << per_call
               << " samples a call: worst error " << worst << " of the magnitude");
      CHECK(bad == 0);
    }
  }
}

// The input gradient (Winograd backwards, 16 lanes on the avx512 sgemm
// build, 8 on avx2)
// against its definition summed in double: each window's pooled gradient,
// at the position its code names, times the 3x3 taps it met in the
// forward, scattered back; code 4 (ReLU'd) carries none, even a NaN. To
// rounding of the terms' magnitude. On avx2 the 8-lane kernel runs, checked
// the same way.
TEST_CASE("kernels: fused first layer + pool input gradient matches its definition", "[kernels][thin_pool]") {
  Restore restore;
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool input gradient")) {
    kc::set_sgemm_isa(isa);
    for (const PlaneCase& s : kShapes) {
      Geom2d g = same1(s);
      int64_t Hp = s.H / 2, Wp = s.W / 2, Lp = Hp * Wp;
      INFO(isa << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W);
      // the fused kernel takes it on every vector build (8 lanes on avx2, 16 on avx512)
      CHECK(kc::conv2d_thin_pool_input_grad_applies(g));
      std::vector<float> w = values(s.O * 9, 9, false), gy = values(s.N * s.O * Lp, 10, false);
      std::vector<uint8_t> code(gy.size());
      for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t(i * 7 % 5);  // every position, and 4 (no gradient)
      for (size_t i = 2; i < code.size(); i += 5) gy[i] = std::nanf("");    // i * 7 % 5 == 4 here
      int64_t NX = s.N * s.H * s.W;
      std::vector<float> gx = input_grad(s, gy, code, w, false);
      std::vector<double> want(size_t(NX), 0.0), mag(size_t(NX), 0.0);
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t o = 0; o < s.O; ++o)
          for (int64_t r = 0; r < Hp; ++r)
            for (int64_t c = 0; c < Wp; ++c) {
              size_t i = size_t((n * s.O + o) * Lp + r * Wp + c);
              int p = code[i];
              if (p > 3) continue;
              for (int k = 0; k < 9; ++k) {
                int64_t h = 2 * r + p / 2 + k / 3 - 1, v = 2 * c + p % 2 + k % 3 - 1;
                if (h < 0 || h >= s.H || v < 0 || v >= s.W) continue;
                double t = double(gy[i]) * w[size_t(o * 9 + k)];
                want[size_t((n * s.H + h) * s.W + v)] += t, mag[size_t((n * s.H + h) * s.W + v)] += std::abs(t);
              }
            }
      int64_t bad = 0;
      double worst = 0;
      for (int64_t i = 0; i < NX; ++i) {
        double err = std::abs(gx[size_t(i)] - want[size_t(i)]) / (1e-30 + mag[size_t(i)]);
        if (mag[size_t(i)] == 0) err = gx[size_t(i)] == 0.f ? 0.0 : 1e9;
        worst = std::max(worst, std::isnan(err) ? 1e9 : err);
        bad += !(err <= 1e-5);
      }
      INFO("worst error " << worst << " of the magnitude");
      CHECK(bad == 0);
    }
  }
}

// The 8-lane kernel zeroes lanes with bit masks where the 16-lane one masks
// its multiply-adds; with finite filters both add the same products in the
// same order, so gx has the same bits on either build (f32 and bf16). Needs
// a CPU with both; elsewhere SKIPPED.
TEST_CASE("kernels: fused first layer + pool input gradient, 8 and 16 lanes give the same bits", "[kernels][thin_pool]") {
  Restore restore;
  if (!kc::sgemm_isa_supported("avx512") || !kc::sgemm_isa_supported("avx2")) {
    WARN("SKIPPED: the 8-lane vs 16-lane input gradient needs the avx512 and avx2 sgemm builds; this CPU lacks avx512");
    return;
  }
  for (bool bf16 : {false, true})
    for (const PlaneCase& s : kShapes) {
      int64_t Lp = (s.H / 2) * (s.W / 2);
      std::vector<float> w = values(s.O * 9, 41, false), gy = values(s.N * s.O * Lp, 42, false);
      std::vector<uint8_t> code(gy.size());
      for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t(i * 7 % 5);
      kc::set_sgemm_isa("avx2");
      std::vector<float> narrow = input_grad(s, gy, code, w, bf16);
      kc::set_sgemm_isa("avx512");
      std::vector<float> wide = input_grad(s, gy, code, w, bf16);
      INFO("bf16 " << bf16 << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W);
      CHECK(std::memcmp(narrow.data(), wide.data(), sizeof(float) * narrow.size()) == 0);
    }
}

// Under bf16's folded casts: w and the pooled gradient read as their bf16
// roundings, gx rounded. Integers plus 2^-10 (which rounding removes) for
// both: every step of the transform is then exact (quarters of integers),
// so each value must be the bf16 rounding of the integer sum of the rounded
// operands, computed here without the kernel's arithmetic. An unrounded
// operand leaves fractions of 2^-10 that the final rounding keeps below 256;
// gradients up to 111 make sums that only a rounded output matches.
TEST_CASE("kernels: fused first layer + pool input gradient under bf16's folded casts", "[kernels][thin_pool]") {
  Restore restore;
  auto nudged = [](std::vector<float> v) {
    for (float& e : v) e = (e == 0.f ? 1.f : e) + 0x1p-10f;
    return v;
  };
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool input gradient under bf16")) {
    kc::set_sgemm_isa(isa);
    for (const PlaneCase& s : kShapes) {
      int64_t Hp = s.H / 2, Wp = s.W / 2, Lp = Hp * Wp, NX = s.N * s.H * s.W;
      std::vector<float> gy0 = values(s.N * s.O * Lp, 32, true);
      for (float& e : gy0) e *= 37.f;  // up to 111: 7 bits, so sums past 256 that bf16 must round
      std::vector<float> w = nudged(values(s.O * 9, 31, true)), gy = nudged(gy0);
      std::vector<uint8_t> code(gy.size());
      for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t(i * 3 % 5);
      std::vector<float> got = input_grad(s, gy, code, w, true);
      std::vector<double> want(static_cast<size_t>(NX), 0.0);
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t o = 0; o < s.O; ++o)
          for (int64_t l = 0; l < Lp; ++l) {
            size_t i = size_t((n * s.O + o) * Lp + l);
            int pc = code[i];
            if (pc > 3) continue;
            int64_t r = l / Wp, c = l % Wp;
            for (int k = 0; k < 9; ++k) {
              int64_t h = 2 * r + pc / 2 + k / 3 - 1, v = 2 * c + pc % 2 + k % 3 - 1;
              if (h >= 0 && h < s.H && v >= 0 && v < s.W)
                want[size_t((n * s.H + h) * s.W + v)] += std::round(gy[i]) * std::round(w[size_t(o * 9 + k)]);
            }
          }
      int64_t bad = 0;
      for (int64_t i = 0; i < NX; ++i) bad += !(got[size_t(i)] == brisk::bf16_rounded(float(want[size_t(i)])));
      INFO(isa << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("kernels: fused first layer + pool runs for conv2d_max_pool2d, thread-count independent, and switches off",
          "[kernels][thin_pool]") {
  Restore restore;
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool")) {
    kc::set_sgemm_isa(isa);
    PlaneCase s{19, 8, 12, 10};  // 3 gradient blocks of 8 samples, the last partial
    Tensor x0 = randn({s.N, 1, s.H, s.W}), w0 = randn({s.O, 1, 3, 3}), b0 = randn({s.O});
    Tensor r = randn({s.N, s.O, s.H / 2, s.W / 2});
    auto run = [&](int threads) {
      bt::ThreadCount tc(threads);
      Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      Tensor y = F::conv2d_max_pool2d(x, w, b, 1, 1, 1, 1, true);
      sum(y * r).backward();
      return std::vector<Tensor>{y, w.grad(), b.grad(), x.grad()};
    };
    std::vector<Tensor> one = run(1), three = run(3);
    INFO(isa);
    for (size_t i = 0; i < one.size(); ++i) CHECK(bit_equal(one[i], three[i]));
    // dispatched to it: the kernel called directly gives the same forward bits
    int64_t P = s.N * s.O * (s.H / 2) * (s.W / 2);
    std::vector<float> y(static_cast<size_t>(P));
    std::vector<uint8_t> code(static_cast<size_t>(P));
    kc::conv2d_thin_pool_forward(x0.data_ptr<float>(), w0.data_ptr<float>(), b0.data_ptr<float>(), same1(s), s.O,
                                 true, y.data(), code.data());
    CHECK(std::memcmp(y.data(), one[0].data_ptr<float>(), sizeof(float) * size_t(P)) == 0);
    // off: the thin forward's direct sums + pooling pass (the same values to
    // rounding) and the expanded gradient's dot products (the same sums in
    // another order)
    kc::set_conv_thin_pool(false);
    CHECK_FALSE(kc::conv2d_thin_pool_applies(same1(s)));
    std::vector<Tensor> off = run(2);
    kc::set_conv_thin_pool(true);
    CHECK_FALSE(bit_equal(off[0], one[0]));
    expect_close(off[0], one[0], 1e-5, "pooled forward, Winograd vs direct");
    CHECK_FALSE(bit_equal(off[1], one[1]));
    expect_close(off[1], one[1], 1e-5, "weight gradient, fused vs expanded");
    expect_close(off[2], one[2], 1e-5, "bias gradient, fused vs expanded");
    CHECK_FALSE(bit_equal(off[3], one[3]));  // the fused kernel's, not the generic path's
    expect_close(off[3], one[3], 1e-5, "input gradient, fused vs expanded");
  }
}

// Under bf16 autocast's folded casts the kernels run on the operands' bf16
// roundings and the forward rounds its output. The inputs are small
// integers plus 2^-10 (which rounding to bf16 removes) and the bias is not
// an integer (0.3 past one), so each expected value, the double sum of the
// rounded operands plus the bias, rounded to bf16, is computed without the
// kernel's arithmetic; every step of it is exact but the bias's add and the
// final rounding, which lands far from a rounding boundary. Tied sums plus
// the bias may round apart in f32, but their bf16 roundings are equal, so
// the code must be the first maximum. Missing any one of the three
// roundings changes values or codes. The weight gradient reads x and
// the pooled gradient rounded: against its definition on rounded operands
// in double, to f32 rounding (2^-9, what an unrounded operand costs, is far
// outside it). And conv2d_max_pool2d under autocast gives the kernel's
// bits where no AMX tiles run.
TEST_CASE("kernels: fused first layer + pool under bf16's folded casts: rounded operands and output",
          "[kernels][thin_pool]") {
  Restore restore;
  auto nudged = [](std::vector<float> v) {  // integer k != 0 -> k + 2^-10 (k rounds back from it)
    for (float& e : v) e = (e == 0.f ? 1.f : e) + 0x1p-10f;
    return v;
  };
  for (const char* isa : vector_sgemm_isas("the fused first layer + pool under bf16")) {
    kc::set_sgemm_isa(isa);
    for (const PlaneCase& s : kShapes)
      for (bool relu : {false, true}) {
        Geom2d g = same1(s);
        int64_t Hp = s.H / 2, Wp = s.W / 2, Lp = Hp * Wp, P = s.N * s.O * Lp;
        std::vector<float> x = nudged(values(s.N * s.H * s.W, 21, true)), w = nudged(values(s.O * 9, 22, true)),
                           b = values(s.O, 23, true);
        for (float& e : b) e += 0.3f;
        std::vector<float> y(static_cast<size_t>(P)), xr(x.size()), wr(w.size());
        std::vector<uint8_t> code(static_cast<size_t>(P));
        kc::conv2d_thin_pool_forward(x.data(), w.data(), b.data(), g, s.O, relu, y.data(), code.data(), true);
        for (size_t i = 0; i < x.size(); ++i) xr[i] = std::round(x[i]);  // the bf16 roundings, by construction
        for (size_t i = 0; i < w.size(); ++i) wr[i] = std::round(w[i]);
        int64_t bad = 0;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t o = 0; o < s.O; ++o)
            for (int64_t r = 0; r < Hp; ++r)
              for (int64_t c = 0; c < Wp; ++c) {
                double win[4];
                for (int p = 0; p < 4; ++p) {
                  double acc = 0;
                  for (int k = 0; k < 9; ++k)
                    acc += double(wr[size_t(o * 9 + k)]) * at(xr, s, n, 2 * r + p / 2 + k / 3 - 1, 2 * c + p % 2 + k % 3 - 1);
                  win[p] = acc;  // an integer: distinct integers stay distinct below 256 after the bias and rounding
                }
                int k = 0;  // the first maximum (of the rounded outputs: the same positions)
                for (int p = 1; p < 4; ++p)
                  if (win[p] > win[k]) k = p;
                float want = brisk::bf16_rounded(float(win[k] + double(b[size_t(o)])));
                if (relu && !(want > 0)) want = 0.f, k = 4;
                size_t i = size_t(((n * s.O + o) * Hp + r) * Wp + c);
                bad += !(y[i] == want && code[i] == k);
              }
        INFO(isa << " N " << s.N << " O " << s.O << " " << s.H << "x" << s.W << (relu ? " relu" : ""));
        CHECK(bad == 0);
      }
    for (const PlaneCase& s : kShapes) {
      Geom2d g = same1(s);
      int64_t Lp = (s.H / 2) * (s.W / 2);
      std::vector<float> x = values(s.N * s.H * s.W, 27, false), gy = values(s.N * s.O * Lp, 28, false);
      std::vector<uint8_t> code(gy.size());
      for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t(i * 7 % 5);
      std::vector<float> gw(size_t(s.O * 9), 0.f), gb(size_t(s.O), 0.f), xr(x.size()), gyr(gy.size());
      {
        kc::ThinPoolWeightGrad tg(g, s.O, true);
        for (int64_t n = 0; n < s.N; n += 2)  // two samples a call (one band of two planes where they fit)
          tg.add(gy.data() + n * s.O * Lp, code.data() + n * s.O * Lp, x.data() + n * s.H * s.W,
                 std::max<int64_t>(0, s.N - n - 2) * s.O * Lp, std::min<int64_t>(2, s.N - n));
        tg.finish(gw.data(), gb.data());
      }
      brisk::bf16_rounded(x.data(), xr.data(), int64_t(x.size()));
      brisk::bf16_rounded(gy.data(), gyr.data(), int64_t(gy.size()));
      int64_t bad = 0, Wp = s.W / 2;
      for (int64_t o = 0; o < s.O; ++o)
        for (int64_t k = 0; k <= 9; ++k) {
          double sum = 0, mag = 0;
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t l = 0; l < Lp; ++l) {
              size_t i = size_t((n * s.O + o) * Lp + l);
              int p = code[i];
              if (p > 3) continue;
              int64_t r = l / Wp, c = l % Wp;
              double t = gyr[i] * (k < 9 ? at(xr, s, n, 2 * r + p / 2 + k / 3 - 1, 2 * c + p % 2 + k % 3 - 1) : 1.0);
              sum += t, mag += std::abs(t);
            }
          double got = k < 9 ? gw[size_t(o * 9 + k)] : gb[size_t(o)];
          bad += !(std::abs(got - sum) <= 1e-5 * (1 + mag));
        }
      INFO(isa << " weight gradient N " << s.N << " O " << s.O << " " << s.H << "x" << s.W);
      CHECK(bad == 0);
    }
    // dispatched to under autocast, whichever bf16 GEMM the CPU has (AMX tiles included)
    PlaneCase s{5, 8, 12, 10};
    Tensor x0 = randn({s.N, 1, s.H, s.W}), w0 = randn({s.O, 1, 3, 3}), b0 = randn({s.O});
    Tensor y;
    {
      AutocastGuard ac(AutocastPolicy{LowPrecision::bf16});
      y = F::conv2d_max_pool2d(x0, w0, b0, 1, 1, 1, 1, true);
    }
    CHECK(last_backend("conv2d_pool_fwd") == "cpu");
    int64_t P = s.N * s.O * (s.H / 2) * (s.W / 2);
    std::vector<float> yk(static_cast<size_t>(P));
    std::vector<uint8_t> ck(static_cast<size_t>(P));
    kc::conv2d_thin_pool_forward(x0.data_ptr<float>(), w0.data_ptr<float>(), b0.data_ptr<float>(), same1(s), s.O,
                                 true, yk.data(), ck.data(), true);
    REQUIRE(y.numel() == P);
    CHECK(std::memcmp(yk.data(), y.data_ptr<float>(), sizeof(float) * size_t(P)) == 0);
  }
}

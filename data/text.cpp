// Text corpora and their token cache (see data/text.h).
#include "data/text.h"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"

namespace brisk::data {

namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'B', 'R', 'I', 'S', 'K', 'T', 'O', 'K'};
constexpr uint32_t kVersion = 1, kVocab = 256;
constexpr uint64_t kMaxBytes = uint64_t(1) << 31;  // 2 GiB: tokens are addressed with int64 but held in memory

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct CacheHeader {
  char magic[8];
  uint32_t version, vocab;
  uint64_t n, val_start, checksum;
};

// The first byte of the last book that starts at or before 95% of the text.
// Book starts are chapter-1 headings: "<Book> 1" between two empty lines.
int64_t kjv_split(const std::vector<uint8_t>& t) {
  int64_t mark = int64_t(double(t.size()) * 0.95), best = -1, books = 0;
  size_t line = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '\n') continue;
    // line [line, i); previous byte before `line` must end an empty line, next must be empty
    bool empty_before = line >= 2 && t[line - 1] == '\n' && t[line - 2] == '\n';
    bool empty_after = i + 1 < t.size() && t[i + 1] == '\n';
    bool chapter1 = i - line >= 3 && t[line] != ' ' && t[i - 1] == '1' && t[i - 2] == ' ';
    if ((empty_before || line == 1) && empty_after && chapter1) {
      ++books;
      if (int64_t(line) <= mark) best = int64_t(line);
    }
    line = i + 1;
  }
  BRISK_CHECK(books == 66 && best > 0, "text:kjv: the `bible` output has ", books,
              " book headings, not the 66 expected; is the bible-kjv package intact?");
  return best;
}

std::vector<uint8_t> run_bible() {
  bool found = false;
  if (const char* path = std::getenv("PATH")) {
    std::string p(path), dir;
    for (size_t a = 0; a <= p.size() && !found; ++a) {
      if (a == p.size() || p[a] == ':') {
        if (!dir.empty() && fs::exists(fs::path(dir) / "bible")) found = true;
        dir.clear();
      } else {
        dir += p[a];
      }
    }
  }
  BRISK_CHECK(found, "text:kjv needs the King James Bible from Debian, and the `bible` command was not found: "
              "apt-get install bible-kjv (scripts/install_deps.sh installs it)");
  FILE* f = popen("bible \"Gen1:1-Rev22:21\" 2>/dev/null", "r");
  BRISK_CHECK(f != nullptr, "text:kjv: cannot run `bible`: ", std::strerror(errno));
  std::vector<uint8_t> out;
  uint8_t buf[65536];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + got);
  int status = pclose(f);
  BRISK_CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && out.size() > 1'000'000,
              "text:kjv: `bible \"Gen1:1-Rev22:21\"` failed or printed only ", out.size(),
              " bytes; reinstall bible-kjv");
  return out;
}

bool read_cache(const fs::path& path, TextCorpus& c) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  CacheHeader h{};
  if (!in.read(reinterpret_cast<char*>(&h), sizeof h)) return false;
  if (std::memcmp(h.magic, kMagic, 8) != 0 || h.version != kVersion || h.vocab != kVocab || h.n > kMaxBytes ||
      h.val_start == 0 || h.val_start >= h.n)
    return false;
  c.bytes.resize(size_t(h.n));
  if (!in.read(reinterpret_cast<char*>(c.bytes.data()), std::streamsize(h.n))) return false;
  if (in.peek() != std::char_traits<char>::eof()) return false;
  if (fnv1a(c.bytes.data(), c.bytes.size()) != h.checksum) return false;
  c.val_start = int64_t(h.val_start);
  return true;
}

void write_cache(const fs::path& path, const TextCorpus& c) {
  CacheHeader h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.vocab = kVocab;
  h.n = c.bytes.size();
  h.val_start = uint64_t(c.val_start);
  h.checksum = fnv1a(c.bytes.data(), c.bytes.size());
  std::string blob(reinterpret_cast<const char*>(&h), sizeof h);
  blob.append(reinterpret_cast<const char*>(c.bytes.data()), c.bytes.size());
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  try {
    atomic_write(path.string(), blob);
  } catch (const Error& e) {  // a read-only home still trains, from the text each time
    std::fprintf(stderr, "brisk: note: cannot write the token cache %s (%s); continuing without it\n",
                 path.string().c_str(), e.what());
  }
}
}  // namespace

bool is_utf8_text(const uint8_t* p, size_t n, size_t* bad_at) {
  for (size_t i = 0; i < n;) {
    uint8_t b = p[i];
    size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    bool ok = b != 0 && len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (!ok) {
      if (bad_at) *bad_at = i;
      return false;
    }
    i += len;
  }
  return true;
}

std::string token_cache_dir() {
  if (const char* d = std::getenv("BRISK_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return (fs::path(d) / "brisk").string();
  if (const char* d = std::getenv("HOME"); d && *d) return (fs::path(d) / ".cache" / "brisk").string();
  return (fs::temp_directory_path() / "brisk-cache").string();
}

TextCorpus load_text_corpus(const std::string& source) {
  TextCorpus c;
  c.name = source;
  if (source == "kjv") {
    fs::path cache = fs::path(token_cache_dir()) / "kjv.tokens";
    if (read_cache(cache, c)) return c;
    if (fs::exists(cache))
      std::fprintf(stderr, "brisk: note: token cache %s is damaged or from another version; rebuilding it\n",
                   cache.string().c_str());
    c.bytes = run_bible();
    c.val_start = kjv_split(c.bytes);
    write_cache(cache, c);
    return c;
  }
  std::error_code ec;
  BRISK_CHECK(fs::exists(source, ec), "text:", source, ": no such file");
  BRISK_CHECK(fs::is_regular_file(source, ec), "text:", source, ": not a regular file");
  uint64_t size = fs::file_size(source, ec);
  BRISK_CHECK(!ec, "text:", source, ": cannot read its size: ", ec.message());
  BRISK_CHECK(size > 0, "text:", source, ": the file is empty");
  BRISK_CHECK(size <= kMaxBytes, "text:", source, ": ", size, " bytes is more than the 2 GiB a corpus may hold");
  std::ifstream in(source, std::ios::binary);
  BRISK_CHECK(in.good(), "text:", source, ": cannot open it for reading");
  c.bytes.resize(size_t(size));
  BRISK_CHECK(in.read(reinterpret_cast<char*>(c.bytes.data()), std::streamsize(size)), "text:", source,
              ": read failed");
  size_t bad = 0;
  BRISK_CHECK(is_utf8_text(c.bytes.data(), c.bytes.size(), &bad), "text:", source,
              ": not UTF-8 text (binary data or a NUL byte at byte ", bad, ")");
  int64_t mark = int64_t(double(size) * 0.95);
  int64_t cut = mark;
  for (int64_t i = mark; i < int64_t(size); ++i)
    if (c.bytes[size_t(i)] == '\n') {
      cut = i + 1;
      break;
    }
  c.val_start = std::clamp<int64_t>(cut, 1, int64_t(size) - 1);
  return c;
}

Dataset make_text_dataset(const TextCorpus& c, bool train, int64_t T) {
  BRISK_CHECK(T > 0, "text dataset: block size must be > 0, got ", T);
  int64_t lo = train ? 0 : c.val_start, hi = train ? c.val_start : int64_t(c.bytes.size());
  int64_t n = hi - lo;
  BRISK_CHECK(n >= T + 1, "text:", c.name, ": the ", train ? "training" : "validation", " split holds ", n,
              " tokens, fewer than one window of --block-size ", T, " + 1; use a longer text or a smaller block");
  Dataset d;
  d.name = "text:" + c.name;
  d.tokens = empty({n}, DType::u8);
  std::memcpy(d.tokens.data_ptr<uint8_t>(), c.bytes.data() + lo, size_t(n));
  d.block_size = T;
  d.num_classes = kVocab;
  return d;
}

}  // namespace brisk::data

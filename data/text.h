// Text corpora for language models, as byte-level tokens (vocabulary 256).
//
// "kjv": the King James Bible from Debian's bible-kjv package (the `bible`
// command prints it). It is read once into a token cache file
// (token_cache_dir()/kjv.tokens: header with a checksum, then the bytes) and
// split by books: validation is the last books that hold at least 5% of the
// text (Colossians to Revelation, 5.04%), training is everything before.
// Any other source is a path to a UTF-8 text file, split at the first line
// break after 95% of its bytes.
//
// A dataset over a corpus holds non-overlapping windows of block_size + 1
// tokens stepping by block_size: example i is tokens [i T, i T + T + 1), its
// input the first T and its targets the last T (every token is a target
// once). The example index is the window's offset / T.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace brisk::data {

struct TextCorpus {
  std::string name;            // "kjv" or the path
  std::vector<uint8_t> bytes;  // the whole text
  int64_t val_start = 0;       // first byte of the validation split
};

// Throws with what to do when the package is missing or the file is empty,
// binary (a NUL byte or invalid UTF-8) or unreadable.
TextCorpus load_text_corpus(const std::string& source);
// $BRISK_CACHE_DIR, else $XDG_CACHE_HOME/brisk, else $HOME/.cache/brisk.
std::string token_cache_dir();
// The split as a Dataset (see above); throws when the split is shorter than
// one window.
Dataset make_text_dataset(const TextCorpus& c, bool train, int64_t block_size);
// Bytes 0..255 for a token file check (and a plain UTF-8 check).
bool is_utf8_text(const uint8_t* p, size_t n, size_t* bad_at);

}  // namespace brisk::data

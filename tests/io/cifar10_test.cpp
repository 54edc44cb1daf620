// cifar10_source: labels and pixels against an independent decoding (Python's gzip/lzma on the
// same files, run at test time), CHW vs HWC, normalisation, shuffling, sharding, concept
// changes, dead letters and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "io_test_util.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/io/cifar10.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"

namespace tensair::io {
namespace {

using dataflow::Batch;
using test::TempDir;

// Independent decoder: Python's standard library reads the file and prints, for the requested
// records, the label and the pixel bytes in CHW order and (transposed by explicit index
// arithmetic) in HWC order, as hex; plus every label of the file.
const char* kPythonDecoder = R"PY(
import gzip, lzma, sys
path = sys.argv[1]
raw = open(path, 'rb').read()
if raw[:2] == b'\x1f\x8b':
    data = gzip.decompress(raw)
elif raw[:6] == b'\xfd7zXZ\x00':
    data = lzma.decompress(raw)
else:
    data = raw
R = 3073
n = len(data) // R
print(n)
print(''.join(str(data[i * R]) for i in range(n)))
for idx in map(int, sys.argv[2:]):
    rec = data[idx * R:(idx + 1) * R]
    chw = rec[1:]
    hwc = bytearray(3072)
    for y in range(32):
        for x in range(32):
            for c in range(3):
                hwc[(y * 32 + x) * 3 + c] = chw[c * 1024 + y * 32 + x]
    print(idx, rec[0], chw.hex(), bytes(hwc).hex())
)PY";

struct Expected {
  int64_t records = 0;
  std::string labels;  // one digit per record
  struct Rec {
    int label;
    std::vector<uint8_t> chw, hwc;
  };
  std::map<int64_t, Rec> recs;
};

std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> out(h.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

Expected python_decode(const std::filesystem::path& file, const std::vector<int64_t>& indices) {
  TempDir dir;
  test::write_file(dir / "decode.py", kPythonDecoder);
  std::string cmd = "/usr/bin/python3 " + (dir / "decode.py").string() + " " + file.string();
  for (int64_t i : indices) cmd += " " + std::to_string(i);
  bool ok = false;
  std::string text = test::run_command(cmd, ok);
  EXPECT_TRUE(ok) << "the Python decoder failed: " << cmd;
  std::istringstream in(text);
  Expected e;
  in >> e.records >> e.labels;
  int64_t idx;
  while (in >> idx) {
    Expected::Rec r;
    std::string chw, hwc;
    in >> r.label >> chw >> hwc;
    r.chw = from_hex(chw);
    r.hwc = from_hex(hwc);
    e.recs[idx] = std::move(r);
  }
  return e;
}

// Synthetic CIFAR file: record i has label labels(i) and pixel byte p of plane c = (i*7 + c*31 + p) % 256.
std::string synthetic(int n, const std::function<int(int)>& labels) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out.push_back(static_cast<char>(labels(i)));
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) out.push_back(static_cast<char>((i * 7 + c * 31 + p) % 256));
    }
  }
  return out;
}

std::vector<int64_t> ids_of(const Batch& b) {
  std::vector<int64_t> ids;
  for (int64_t r = 0; r < b.rows(); ++r) ids.push_back(b.column("id").at<int64_t>(r));
  return ids;
}

// Compares the image of row `r` with the expected bytes (in the same layout), x/255 or
// normalised with the channel of each element given by `channel(e)`.
void expect_image(const Batch& b, int64_t r, const std::vector<uint8_t>& bytes, bool normalize,
                  const std::function<size_t(size_t)>& channel, const std::string& what) {
  auto v = b.column("image").values<float>();
  ASSERT_EQ(bytes.size(), 3072u);
  for (size_t e = 0; e < 3072; ++e) {
    double x = bytes[e] / 255.0;
    if (normalize) x = (x - kCifar10Mean[channel(e)]) / kCifar10Std[channel(e)];
    ASSERT_NEAR(v[static_cast<size_t>(r) * 3072 + e], x, 1e-5) << what << " element " << e;
  }
}

TEST(Cifar10Test, RecordsMatchAnIndependentDecodingInChwAndHwc) {
  // data_batch_1 is gzip, data_batch_3 xz. Records 0..931 are exact original bytes, 932.. come
  // from JPEG (see the data README); both kinds are checked.
  const auto gz = data_dir() / "cifar10" / "data_batch_1.bin.gz";
  const auto xz = data_dir() / "cifar10" / "data_batch_3.bin.xz";
  const std::vector<int64_t> picks = {0, 1, 931, 932, 1199};
  for (const auto& file : {gz, xz}) {
    Expected want = python_decode(file, picks);
    ASSERT_EQ(want.records, 10000);
    for (auto layout : {Cifar10Options::Layout::kCHW, Cifar10Options::Layout::kHWC}) {
      for (bool normalize : {false, true}) {
        Cifar10Options o;
        o.paths = {file};
        o.layout = layout;
        o.normalize = normalize;
        o.source.limit = 1200;
        o.source.batch_size = 100;
        auto r = test::run_source(1, cifar10_source(o));
        ASSERT_EQ(r.error(), "");
        ASSERT_EQ(r.rows.rows(), 1200);
        const bool chw = layout == Cifar10Options::Layout::kCHW;
        EXPECT_EQ(r.rows.column("image").record_shape(), chw ? (std::vector<int64_t>{3, 32, 32}) : (std::vector<int64_t>{32, 32, 3}));
        for (int64_t i = 0; i < 1200; ++i) {
          ASSERT_EQ(r.rows.column("id").at<int64_t>(i), i);
          ASSERT_EQ(r.rows.column("label").at<int64_t>(i), want.labels[static_cast<size_t>(i)] - '0') << i;
        }
        for (int64_t i : picks) {
          const auto& rec = want.recs.at(i);
          std::string what = file.filename().string() + " record " + std::to_string(i) + (chw ? " chw" : " hwc") +
                             (normalize ? " normalized" : "");
          if (chw) {
            expect_image(r.rows, i, rec.chw, normalize, [](size_t e) { return e / 1024; }, what);
          } else {
            expect_image(r.rows, i, rec.hwc, normalize, [](size_t e) { return e % 3; }, what);
          }
        }
      }
    }
  }
  // The first labels of data_batch_1 in the official CIFAR-10 (frog, truck, truck, deer, ...).
  Expected first = python_decode(gz, {});
  EXPECT_EQ(first.labels.substr(0, 10), "6994112783");
}

TEST(Cifar10Test, WholeXzBatchHasTheDocumentedLabelHistogram) {
  Cifar10Options o;
  o.paths = {data_dir() / "cifar10" / "data_batch_3.bin.xz"};
  o.source.batch_size = 512;
  auto r = test::run_source(2, cifar10_source(o));
  ASSERT_EQ(r.error(), "");
  ASSERT_EQ(r.rows.rows(), 10000);
  std::vector<int64_t> hist(10, 0);
  for (int64_t i = 0; i < r.rows.rows(); ++i) hist[static_cast<size_t>(r.rows.column("label").at<int64_t>(i))]++;
  // shared/data/cifar10/README.md, "b3".
  EXPECT_EQ(hist, (std::vector<int64_t>{994, 1042, 965, 997, 990, 1029, 978, 1015, 961, 1029}));
  EXPECT_EQ(r.dead_letters(), 0u);
}

TEST(Cifar10Test, ShardsAreDisjointAndShuffleIsADeterministicPermutation) {
  TempDir dir;
  test::write_file(dir / "s.bin", synthetic(500, [](int i) { return i % 10; }));
  for (int ranks : testing::rank_counts()) {
    for (int64_t buffer : {0, 64}) {
      Cifar10Options o;
      o.paths = {dir / "s.bin"};
      o.normalize = false;
      o.shuffle_buffer = buffer;
      o.seed = 7;
      o.source.batch_size = 32;
      auto r = test::run_source(ranks, cifar10_source(o));
      ASSERT_EQ(r.error(), "");
      std::vector<int64_t> ids = ids_of(r.rows);
      std::vector<int64_t> sorted = ids;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int64_t> all(500);
      std::iota(all.begin(), all.end(), 0);
      ASSERT_EQ(sorted, all) << "ranks " << ranks << " buffer " << buffer;
      // Every row's label and pixels still belong to its id.
      auto img = r.rows.column("image").values<float>();
      for (int64_t k = 0; k < r.rows.rows(); ++k) {
        const int64_t id = ids[static_cast<size_t>(k)];
        ASSERT_EQ(r.rows.column("label").at<int64_t>(k), id % 10);
        ASSERT_NEAR(img[static_cast<size_t>(k) * 3072 + 1024 + 5], ((id * 7 + 31 + 5) % 256) / 255.0, 1e-6);
      }
      if (ranks == 1) {
        if (buffer == 0) {
          EXPECT_EQ(ids, all);
        } else {
          EXPECT_NE(ids, all);
          // A record cannot leave before the buffer has been filled up to it, nor wait past the
          // end by more than the buffer: id k is emitted at position >= k - 63.
          for (size_t pos = 0; pos < ids.size(); ++pos) EXPECT_GE(static_cast<int64_t>(pos), ids[pos] - 63);
          // Deterministic: the same seed gives the same order, another seed another.
          auto again = test::run_source(1, cifar10_source(o));
          EXPECT_EQ(ids_of(again.rows), ids);
          o.seed = 8;
          auto other = test::run_source(1, cifar10_source(o));
          EXPECT_NE(ids_of(other.rows), ids);
        }
      }
    }
  }
}

TEST(Cifar10Test, ReplayCountsIdsOverPassesAndLimitStops) {
  TempDir dir;
  test::write_file(dir / "s.bin", synthetic(30, [](int i) { return i % 10; }));
  Cifar10Options o;
  o.paths = {dir / "s.bin", dir / "s.bin"};  // two files read as one stream of 60
  o.source.replay = 3;
  o.source.batch_size = 7;
  auto r = test::run_source(1, cifar10_source(o));
  ASSERT_EQ(r.rows.rows(), 180);
  EXPECT_EQ(r.rows.column("id").at<int64_t>(179), 179);
  EXPECT_EQ(r.rows.column("label").at<int64_t>(179), 29 % 10);
  o.source.replay = 0;
  o.source.limit = 100;
  auto limited = test::run_source(3, cifar10_source(o));
  EXPECT_EQ(limited.rows.rows(), 100);
}

TEST(Cifar10Test, CachedPassesEqualReadPasses) {
  TempDir dir;
  std::string bytes = synthetic(40, [](int i) { return i == 5 ? 77 : i % 10; });
  test::write_file(dir / "a.bin", bytes + "xyz");  // bad label at 5, partial tail at 40
  test::write_gzip(dir / "b.bin.gz", synthetic(25, [](int i) { return (i * 3) % 10; }));
  for (int ranks : testing::rank_counts()) {
    std::vector<std::vector<std::pair<int64_t, int64_t>>> runs;
    std::vector<uint64_t> dead;
    for (bool cache : {false, true}) {
      Cifar10Options o;
      o.paths = {dir / "a.bin", dir / "b.bin.gz"};
      o.cache = cache;
      o.normalize = false;
      o.source.replay = 3;  // 66 positions per pass, so at 2 or 3 ranks... the owner of a position
                            // changes from pass to pass only when 66 % ranks != 0; both occur
      o.concept_changes = {{100, {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}}};
      auto r = test::run_source(ranks, cifar10_source(o));
      ASSERT_EQ(r.error(), "");
      std::vector<std::pair<int64_t, int64_t>> rows;
      auto img = r.rows.column("image").values<float>();
      for (int64_t k = 0; k < r.rows.rows(); ++k) {
        rows.push_back({r.rows.column("id").at<int64_t>(k), r.rows.column("label").at<int64_t>(k)});
        // Pixel 9 of the red plane of position p (in its file) is (p*7 + 9) % 256.
        const int64_t pos = rows.back().first % 66;
        const int64_t in_file = pos < 41 ? pos : pos - 41;
        ASSERT_NEAR(img[static_cast<size_t>(k) * 3072 + 9], ((in_file * 7 + 9) % 256) / 255.0, 1e-6)
            << "id " << rows.back().first;
      }
      std::sort(rows.begin(), rows.end());
      runs.push_back(rows);
      dead.push_back(r.dead_letters());
    }
    EXPECT_EQ(runs[0], runs[1]) << "ranks " << ranks;
    EXPECT_EQ(runs[0].size(), 3u * 64u);  // 66 positions per pass, 2 of them dead letters
    EXPECT_EQ(dead[0], 6u);
    EXPECT_EQ(dead[1], 6u);
  }
}

TEST(Cifar10Test, ConceptChangesPermuteLabelsFromTheirRecordOn) {
  TempDir dir;
  test::write_file(dir / "s.bin", synthetic(400, [](int i) { return i % 10; }));
  Cifar10Options o;
  o.paths = {dir / "s.bin"};
  ConceptChange a{100, {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}};
  ConceptChange b{250, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
  o.concept_changes = {a, b};
  for (int ranks : testing::rank_counts()) {
    auto r = test::run_source(ranks, cifar10_source(o));
    ASSERT_EQ(r.error(), "");
    ASSERT_EQ(r.rows.rows(), 400);
    for (int64_t k = 0; k < 400; ++k) {
      const int64_t id = r.rows.column("id").at<int64_t>(k);
      const int64_t orig = id % 10;
      const int64_t concept_index = id < 100 ? 0 : id < 250 ? 1 : 2;
      const int64_t want = concept_index == 0 ? orig : concept_index == 1 ? (orig + 1) % 10 : 9 - orig;
      ASSERT_EQ(r.rows.column("concept").at<int64_t>(k), concept_index) << id;
      ASSERT_EQ(r.rows.column("label").at<int64_t>(k), want) << id;
    }
  }
  // No concept column without changes.
  o.concept_changes.clear();
  EXPECT_EQ(cifar10_source(o)->outputs()[0].schema->size(), 3u);
  // Bad permutations and change points.
  o.concept_changes = {{10, {0, 1, 2, 3, 4, 5, 6, 7, 8, 8}}};
  try {
    cifar10_source(o);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("8 appears twice"), std::string::npos) << e.what();
  }
  o.concept_changes = {{10, {0, 1, 2, 3, 4, 5, 6, 7, 8, 10}}};
  EXPECT_THROW(cifar10_source(o), ConfigError);
  o.concept_changes = {a, {50, b.permutation}};
  EXPECT_THROW(cifar10_source(o), ConfigError);
}

TEST(Cifar10Test, PartialTailAndBadLabelsAreDeadLettersCountedOnce) {
  TempDir dir;
  std::string bytes = synthetic(100, [](int i) { return i == 17 ? 200 : i % 10; });
  bytes += std::string(100, 'x');  // a partial 101st record
  test::write_file(dir / "bad.bin", bytes);
  for (int ranks : testing::rank_counts()) {
    TempDir out;
    Cifar10Options o;
    o.paths = {dir / "bad.bin"};
    auto r = test::run_source(ranks, cifar10_source(o), out.path());
    ASSERT_EQ(r.error(), "");
    EXPECT_EQ(r.rows.rows(), 99) << "ranks " << ranks;
    EXPECT_EQ(r.dead_letters(), 2u) << "ranks " << ranks;
    std::string dead = test::read_file(out / "dead_letters.jsonl");
    EXPECT_NE(dead.find("bad.bin: partial record of 100 bytes at byte offset 307300"), std::string::npos) << dead;
    EXPECT_NE(dead.find("bad.bin: record 17 at byte offset 52241: label byte 200 is not 0..9"), std::string::npos) << dead;
    // The record is the bytes in hex, the first 512 of them (once empty): label byte 200
    // (c8), then the red plane; the tail's 100 bytes 'x' (78).
    EXPECT_NE(dead.find(R"(is not 0..9","record":"c8)"), std::string::npos) << dead;
    std::string tail_hex;
    for (int i = 0; i < 100; ++i) tail_hex += "78";
    EXPECT_NE(dead.find(R"x(the tail is ignored)","record":")x" + tail_hex + "\""),
              std::string::npos) << dead;
    const size_t at = dead.find(R"(is not 0..9","record":")");
    ASSERT_NE(at, std::string::npos);
    const size_t from = at + std::string(R"(is not 0..9","record":")").size();
    EXPECT_EQ(dead.find('"', from) - from, 1024u);
  }
}

TEST(Cifar10Test, TruncatedGzipAndMissingFilesAreClearErrors) {
  TempDir dir;
  test::write_gzip(dir / "full.bin.gz", synthetic(300, [](int i) { return i % 10; }));
  std::string gz = test::read_file(dir / "full.bin.gz");
  test::write_file(dir / "cut.bin.gz", gz.substr(0, gz.size() / 2));
  Cifar10Options o;
  o.paths = {dir / "cut.bin.gz"};
  auto r = test::run_source(1, cifar10_source(o));
  EXPECT_NE(r.error().find("cut.bin.gz: truncated gzip stream"), std::string::npos) << r.error();
  EXPECT_EQ(r.outcomes[0].exit_code, 1);
  o.paths = {dir / "missing.bin"};
  try {
    cifar10_source(o);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("missing.bin does not exist"), std::string::npos);
  }
}

TEST(Cifar10Test, JobFileKeys) {
  register_job_types();
  register_job_types();  // idempotent
  TempDir dir;
  test::write_file(dir / "s.bin", synthetic(50, [](int i) { return i % 10; }));
  auto load = [&](const std::string& body) {
    test::write_file(dir / "job.toml", "[src]\ntype = \"cifar10_source\"\n" + body +
                                           "\n[sink]\ntype = \"stdout_sink\"\nfrom = \"src\"\ncolumns = [\"id\"]\n");
    return job::load_job(dir / "job.toml", {});
  };
  auto jb = load("path = [\"s.bin\", \"s.bin\"]\nlayout = \"hwc\"\nshuffle_buffer = 8\n"
                 "concept_changes = [{at = 20, permutation = [1,2,3,4,5,6,7,8,9,0]}]");
  const auto& ops = jb.graph.operators();
  const auto& schema = *ops[static_cast<size_t>(jb.graph.find("src"))].outputs[0].schema;
  EXPECT_EQ(dataflow::schema_to_string(schema),
            "id: int64, image: float32[32,32,3], label: int64, concept: int64");
  auto expect_error = [&](const std::string& body, const std::string& part) {
    try {
      load(body);
      ADD_FAILURE() << "no error for " << body;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error("path = \"s.bin\"\nconcept_changes = [{at = 5, permutation = [0,1,2,3,4,5,6,7,8]}]",
               "key \"concept_changes\": entry 1: permutation has 9 labels");
  expect_error("path = \"s.bin\"\nconcept_changes = [{at = 5, permutation = [0,1,2,3,4,5,6,7,9,9]}]",
               "9 appears twice");
  expect_error("path = \"s.bin\"\nconcept_changes = [{at = 5, perm = [0,1,2,3,4,5,6,7,8,9]}]", "unknown key \"perm\"");
  expect_error("path = \"s.bin\"\nlayout = \"nchw\"", "key \"layout\"");
  expect_error("path = \"s.bin\"\nshufle_buffer = 3", "unknown key \"shufle_buffer\"");
  // The default files are the five training batches.
  auto def = load("");
  EXPECT_NE(def.graph.operators()[static_cast<size_t>(def.graph.find("src"))].def->describe().find(
                "data_batch_1.bin.gz,data_batch_2.bin.gz,data_batch_3.bin.xz,data_batch_4.bin.xz,data_batch_5.bin.xz"),
            std::string::npos);
  auto test_split = load("split = \"test\"");
  EXPECT_NE(test_split.graph.operators()[static_cast<size_t>(test_split.graph.find("src"))].def->describe().find(
                "path=test_batch.bin.gz"),
            std::string::npos);
}

}  // namespace
}  // namespace tensair::io

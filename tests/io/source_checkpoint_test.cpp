// Checkpoints of the io sources (CIFAR-10, tabular, W2V pairs, skip-gram): a source restored
// from a snapshot and run on emits exactly what the original emitted after the snapshot
// (records, shuffle order, batch boundaries, dead letters, concept-change events), at several
// snapshot points, with shuffle buffers, caching, sharding and gzip input.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/io/cifar10.hpp"
#include "tensair/io/tabular.hpp"
#include "tensair/io/text.hpp"
#include "testing/batch_equality.hpp"
#include "testing/files.hpp"
#include "testing/operator_driver.hpp"

namespace tensair::io {
namespace {

using test::TempDir;
using testing::instance_info;
using testing::OperatorDriver;
using testing::Resume;
using testing::resume_source;
using testing::total_rows;

void expect_resumes_exactly(const std::shared_ptr<const dataflow::OperatorDef>& def,
                            const dataflow::InstanceInfo& info, const std::vector<int>& points) {
  for (int calls : points) {
    SCOPED_TRACE("instance " + std::to_string(info.instance) + " of " +
                 std::to_string(info.instances) + ", snapshot after " + std::to_string(calls) +
                 " produce() calls");
    Resume r = resume_source(def, info, calls);
    EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
    EXPECT_TRUE(testing::concatenation_is(r.head, r.reference, r.uninterrupted));
  }
}

void expect_proper_tail(const Resume& r, int port = 0) {
  const int64_t tail = total_rows(r.resumed.emitted(port));
  EXPECT_GT(tail, 0);
  EXPECT_LT(tail, total_rows(r.uninterrupted.emitted(port)));
}

// Every prefix of the state (in steps) fails to restore with a DataError naming the state.
void expect_truncations_fail(const std::shared_ptr<const dataflow::OperatorDef>& def,
                             const dataflow::InstanceInfo& info, const std::string& state,
                             size_t step) {
  for (size_t n = 0; n < state.size(); n += step) {
    try {
      OperatorDriver d(def, info, state.substr(0, n));
      ADD_FAILURE() << "restored from " << n << " of " << state.size() << " bytes";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(OperatorDriver::state_name(info)), std::string::npos)
          << e.what();
    }
  }
}

// ---- cifar10_source --------------------------------------------------------------------------

// `n` CIFAR records: label labels(i), pixels from i.
std::string cifar_records(int n, int first, int bad_label_at = -1) {
  std::string out;
  for (int i = first; i < first + n; ++i) {
    out.push_back(static_cast<char>(i == bad_label_at ? 12 : i % 10));
    for (int p = 0; p < 3072; ++p) out.push_back(static_cast<char>((i * 13 + p) % 256));
  }
  return out;
}

// Three files: gzip with a bad label, gzip with a partial tail, plain: 95 positions per pass.
std::vector<std::filesystem::path> cifar_files(const TempDir& dir) {
  testing::write_gzip(dir / "a.bin.gz", cifar_records(40, 0, 5));
  testing::write_gzip(dir / "b.bin.gz", cifar_records(25, 40) + std::string(100, '\x03'));
  testing::write_file(dir / "c.bin", cifar_records(29, 65));
  return {dir / "a.bin.gz", dir / "b.bin.gz", dir / "c.bin"};
}

Cifar10Options cifar_options(const std::vector<std::filesystem::path>& paths) {
  Cifar10Options o;
  o.paths = paths;
  o.normalize = false;
  o.source.batch_size = 16;
  o.source.replay = 2;
  ConceptChange c1{30, {1, 0, 3, 2, 5, 4, 7, 6, 9, 8}};
  ConceptChange c2{120, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
  o.concept_changes = {c1, c2};
  return o;
}

TEST(CifarCheckpointTest, ResumesExactlyWithAndWithoutCacheAndShuffle) {
  TempDir dir;
  const auto paths = cifar_files(dir);
  for (bool cache : {false, true}) {
    for (int64_t shuffle : {0, 37}) {
      SCOPED_TRACE(std::string(cache ? "cache" : "no cache") + ", shuffle buffer " +
                   std::to_string(shuffle));
      Cifar10Options o = cifar_options(paths);
      o.cache = cache;
      o.shuffle_buffer = shuffle;
      auto def = cifar10_source(o);
      // 93 records per pass (a bad label and a partial tail are dead letters): 6 calls take
      // the first pass (the 6th ends it), 12 both; calls in the middle of a file, at the
      // boundary of the passes, and in the cached second pass.
      expect_resumes_exactly(def, instance_info("cifar"), {0, 1, 3, 5, 6, 7, 9, 12, 14});
      Resume r = resume_source(def, instance_info("cifar"), 3);
      expect_proper_tail(r);
      // The second concept change (id 120) is announced after the snapshot, by the restored
      // source; the first one (id 30) was before it.
      ASSERT_FALSE(r.resumed.events().empty());
      EXPECT_EQ(r.resumed.events().back()["kind"], "concept_change");
      EXPECT_EQ(r.resumed.events().back()["concept"], 2);
      ASSERT_FALSE(r.head.events().empty());
      EXPECT_EQ(r.head.events().front()["concept"], 1);
    }
  }
}

TEST(CifarCheckpointTest, ShardedInstancesWithALimitResumeEachOnItsOwn) {
  TempDir dir;
  Cifar10Options o = cifar_options(cifar_files(dir));
  o.source.limit = 150;
  o.shuffle_buffer = 10;
  auto def = cifar10_source(o);
  for (int instance = 0; instance < 2; ++instance) {
    expect_resumes_exactly(def, instance_info("cifar", instance, 2), {0, 1, 2, 3, 4, 6});
    expect_proper_tail(resume_source(def, instance_info("cifar", instance, 2), 2));
  }
}

TEST(CifarCheckpointTest, RealXzBatchResumesBySeekingIntoTheDecompressedStream) {
  Cifar10Options o;
  o.paths = {data_dir() / "cifar10" / "data_batch_3.bin.xz"};
  o.source.batch_size = 64;
  o.source.limit = 400;
  o.shuffle_buffer = 50;
  auto def = cifar10_source(o);
  expect_resumes_exactly(def, instance_info("cifar"), {0, 2, 5, 7});
  expect_proper_tail(resume_source(def, instance_info("cifar"), 2));
}

TEST(CifarCheckpointTest, CacheRebuiltFromChangedFilesIsADataError) {
  TempDir dir;
  auto paths = cifar_files(dir);
  Cifar10Options o = cifar_options(paths);
  auto def = cifar10_source(o);
  for (int calls : {3, 8}) {  // in the first pass, and in the cached second pass
    SCOPED_TRACE(calls);
    cifar_files(dir);
    OperatorDriver original(def, instance_info("cifar"));
    original.produce(calls);
    const std::string state = original.snapshot();
    // Same size, other bytes: the pixels of record 2 of the first file.
    testing::write_gzip(dir / "a.bin.gz", cifar_records(2, 0) + cifar_records(38, 1002, 5));
    try {
      OperatorDriver restored(def, instance_info("cifar"), state);
      ADD_FAILURE() << "restored over changed files";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("input files differ"), std::string::npos) << e.what();
    }
  }
}

// Without the cache, a checkpoint saves where each staged record is (file, record number) and
// the fingerprint of its bytes, and reads the bytes back on restore: input files changed under
// a checkpoint are refused, naming the record, whether it is gone or has other bytes.
TEST(CifarCheckpointTest, StagedRecordsReadBackFromChangedFilesAreADataError) {
  TempDir dir;
  auto paths = cifar_files(dir);
  Cifar10Options o = cifar_options(paths);
  o.cache = false;
  o.shuffle_buffer = 20;
  auto def = cifar10_source(o);
  struct Change {
    std::string content, error;
  };
  const std::vector<Change> changes = {
      {cifar_records(40, 1000, 5), "of a.bin.gz has other bytes"},  // same labels, other pixels
      {cifar_records(3, 0), "of a.bin.gz is gone"},                   // cut short
  };
  for (const Change& change : changes) {
    SCOPED_TRACE(change.error);
    cifar_files(dir);
    OperatorDriver original(def, instance_info("cifar"));
    // 48 emitted, 20 staged: the reader is in b.bin.gz, records of a.bin.gz wait in the buffer.
    original.produce(3);
    const std::string state = original.snapshot();
    testing::write_gzip(dir / "a.bin.gz", change.content);
    try {
      OperatorDriver restored(def, instance_info("cifar"), state);
      ADD_FAILURE() << "restored over changed files";
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("the input files differ from those the checkpoint read: staged record"),
                std::string::npos)
          << what;
      EXPECT_NE(what.find(change.error), std::string::npos) << what;
    }
  }
  // The same files again: the restore succeeds.
  cifar_files(dir);
  OperatorDriver original(def, instance_info("cifar"));
  original.produce(3);
  EXPECT_NO_THROW(OperatorDriver(def, instance_info("cifar"), original.snapshot()));
}

TEST(CifarCheckpointTest, TruncatedStateIsADataErrorNamingTheState) {
  TempDir dir;
  Cifar10Options o = cifar_options(cifar_files(dir));
  o.shuffle_buffer = 5;
  auto def = cifar10_source(o);
  OperatorDriver original(def, instance_info("cifar"));
  original.produce(2);
  expect_truncations_fail(def, instance_info("cifar"), original.snapshot(), 101);
}

// ---- tabular_source --------------------------------------------------------------------------

TEST(TabularCheckpointTest, ResumesRowsLabelsAndRunningStandardisation) {
  TempDir dir;
  std::string data, labels;
  for (int i = 0; i < 300; ++i) {
    if (i == 200) {
      data += "1.0 oops 3.0\n";  // a dead letter
    } else {
      data +=
          std::to_string(i % 17) + ".5 " + std::to_string(i * 3) + " " + std::to_string(-i) + "\n";
    }
    labels += std::to_string(i % 4) + "\n";
  }
  testing::write_gzip(dir / "x.txt.gz", data);
  testing::write_file(dir / "y.txt", labels);
  TabularOptions o;
  o.data = dir / "x.txt.gz";
  o.labels = dir / "y.txt";
  o.standardize = true;
  o.source.batch_size = 32;
  o.source.replay = 2;
  auto def = tabular_source(o);
  expect_resumes_exactly(def, instance_info("tab"), {0, 1, 4, 9, 10, 11, 15, 19, 20});
  expect_resumes_exactly(def, instance_info("tab", 1, 2), {0, 2, 5, 6});
  Resume r = resume_source(def, instance_info("tab"), 4);
  expect_proper_tail(r);
  ASSERT_EQ(r.resumed.dead_letters().size(), 2u);
  EXPECT_EQ(r.resumed.dead_letters()[0].reason.rfind("x.txt.gz:201: field 1", 0), 0u)
      << r.resumed.dead_letters()[0].reason;
  expect_truncations_fail(def, instance_info("tab"), r.state, 13);
}

// ---- w2v_pairs_source ------------------------------------------------------------------------

TEST(W2vPairsCheckpointTest, TextAndHeldOutFilesResumeExactly) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 250; ++i) {
    if (i == 77)
      text += "1 2 3 4 1 1 0\n";  // two positives: a dead letter
    else
      text += std::to_string(i) + " " + std::to_string(i + 1) + " 7 8 1 0 0\n";
  }
  testing::write_gzip(dir / "p.txt.gz", text);
  W2vPairsOptions o;
  o.path = dir / "p.txt.gz";
  o.source.batch_size = 20;
  o.source.replay = 2;
  auto def = w2v_pairs_source(o);
  expect_resumes_exactly(def, instance_info("pairs"), {0, 1, 3, 12, 13, 14, 25});
  expect_resumes_exactly(def, instance_info("pairs", 1, 2), {0, 3, 7});
  expect_proper_tail(resume_source(def, instance_info("pairs"), 3));

  W2vPairsOptions e;
  e.path = data_dir() / "tensair" / "w2v" / "shakespeare_eval.bytes";
  e.source.batch_size = 1000;
  e.source.limit = 6500;
  auto eval = w2v_pairs_source(e);
  expect_resumes_exactly(eval, instance_info("eval"), {0, 3, 7});
  Resume r = resume_source(eval, instance_info("eval"), 3);
  expect_proper_tail(r);
  expect_truncations_fail(eval, instance_info("eval"), r.state, 7);
}

// ---- skipgram_source -------------------------------------------------------------------------

TEST(SkipGramCheckpointTest, TrainingAndHeldOutPairsResumeExactly) {
  TempDir dir;
  std::string corpus;
  for (int line = 0; line < 120; ++line) {
    for (int w = 0; w < 6 + line % 9; ++w)
      corpus += "w" + std::string(1, 'a' + (line * 7 + w * 3) % 26) + " ";
    corpus += "the and of\n";
  }
  testing::write_gzip(dir / "c.txt.gz", corpus);
  SkipGramOptions o;
  o.paths = {dir / "c.txt.gz"};
  o.min_count = 1;
  o.sample = 0.05;
  o.window = 3;
  o.negatives = 4;
  o.holdout_fraction = 0.25;
  o.source.batch_size = 100;
  o.source.replay = 2;
  auto def = skipgram_source(o);
  // The first calls emit the held-out pairs (port 1), the rest the training pairs (port 0).
  expect_resumes_exactly(def, instance_info("sg"), {0, 1, 3, 5, 20, 40, 60, 1000});
  expect_resumes_exactly(def, instance_info("sg", 1, 2), {0, 2, 10, 30});
  Resume r = resume_source(def, instance_info("sg"), 2);
  expect_proper_tail(r, 1);
  Resume t = resume_source(def, instance_info("sg"), 30);
  expect_proper_tail(t, 0);
  expect_truncations_fail(def, instance_info("sg"), t.state, 11);
}

}  // namespace
}  // namespace tensair::io

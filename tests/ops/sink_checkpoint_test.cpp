// Checkpoints of the sinks: a file sink restored from a snapshot cuts its file back to the
// saved length and appends, so that its file after the resumed run is byte-identical to an
// uninterrupted run's, whatever was written after the checkpoint; stdout_sink keeps its limit.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/ops/sinks.hpp"
#include "testing/files.hpp"
#include "testing/operator_driver.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::ops {
namespace {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::BatchPtr;
using dataflow::DType;
using dataflow::Schema;
using testing::instance_info;
using testing::OperatorDriver;
using testing::TempDir;

namespace fs = std::filesystem;

// `n` batches of `rows` rows: numbers, strings that need quoting, and an array column.
std::vector<BatchPtr> make_batches(int n, int rows) {
  Schema s{{"id", DType::kInt64, {}},
           {"x", DType::kFloat64, {}},
           {"name", DType::kString, {}},
           {"v", DType::kFloat32, {2}}};
  std::vector<BatchPtr> out;
  for (int b = 0; b < n; ++b) {
    BatchBuilder builder(s);
    for (int r = 0; r < rows; ++r) {
      const int64_t id = b * rows + r;
      builder.column(0).append<int64_t>((id * 7919) % 1000);  // not sorted
      builder.column(1).append<double>(static_cast<double>(id) / 3.0);
      builder.column(2).append_string("n" + std::to_string(id) + (id % 5 == 0 ? ",\"q\"" : ""));
      const float v[2] = {static_cast<float>(id), -0.5f};
      builder.column(3).append_values(v, 2);
    }
    out.push_back(dataflow::share(builder.finish()));
  }
  return out;
}

std::shared_ptr<const dataflow::OperatorDef> file_sink(bool csv, const fs::path& path,
                                                       const std::string& sort_by = "") {
  FileSinkOptions o;
  o.path = path;
  o.sort_by = sort_by;
  return csv ? csv_sink(o) : jsonl_sink(o);
}

// The file of a sink fed `batches` and finished, without interruption.
std::string uninterrupted(const std::shared_ptr<const dataflow::OperatorDef>& def,
                          const fs::path& path, const std::vector<BatchPtr>& batches) {
  {
    OperatorDriver sink(def, instance_info("sink"));
    for (const BatchPtr& b : batches) sink.process(0, b);
    sink.finish();
  }
  return testing::read_file(path);
}

// Feeds batches [0, at) and snapshots; then feeds `lost` more batches and appends `garbage` to
// the file (what reached the disk after the checkpoint before the failure), and drops the
// instance without finishing. Returns the snapshot.
std::string interrupted(const std::shared_ptr<const dataflow::OperatorDef>& def,
                        const fs::path& path, const std::vector<BatchPtr>& batches, size_t at,
                        size_t lost, const std::string& garbage) {
  std::string state;
  {
    OperatorDriver sink(def, instance_info("sink"));
    for (size_t i = 0; i < at; ++i) sink.process(0, batches[i]);
    state = sink.snapshot();
    // The file's bytes up to the checkpoint are out, and the file handed over to be synced.
    EXPECT_EQ(sink.ctx().synced().size(), 1u);
    for (size_t i = at; i < std::min(batches.size(), at + lost); ++i) sink.process(0, batches[i]);
  }
  testing::write_file(path, testing::read_file(path) + garbage);
  return state;
}

// Restores a sink from `state`, feeds batches [at, end) and finishes it.
void resume(const std::shared_ptr<const dataflow::OperatorDef>& def,
            const std::vector<BatchPtr>& batches, size_t at, const std::string& state) {
  OperatorDriver sink(def, instance_info("sink"), state);
  for (size_t i = at; i < batches.size(); ++i) sink.process(0, batches[i]);
  sink.finish();
}

TEST(SinkCheckpointTest, CsvAndJsonlFilesAfterARestoreEqualAnUninterruptedRun) {
  TempDir dir;
  // 12 batches of 400 rows: about 40 kB of CSV per 3 batches, so the lost batches after the
  // checkpoint reach the file (the sink writes out every 64 kB).
  const std::vector<BatchPtr> batches = make_batches(12, 400);
  for (bool csv : {true, false}) {
    SCOPED_TRACE(csv ? "csv" : "jsonl");
    const fs::path path = dir / (csv ? "out.csv" : "out.jsonl");
    auto def = file_sink(csv, path);
    const std::string expected = uninterrupted(def, path, batches);
    ASSERT_GT(expected.size(), 100000u);
    for (size_t at : {0, 1, 5, 11, 12}) {
      SCOPED_TRACE("snapshot after " + std::to_string(at) + " batches");
      const std::string state =
          interrupted(def, path, batches, at, 6, "garbage after the checkpoint\n");
      // The file really holds more than the checkpoint's share now, so a restore that only
      // appended would differ.
      ASSERT_NE(testing::read_file(path), expected.substr(0, testing::read_file(path).size()));
      resume(def, batches, at, state);
      EXPECT_EQ(testing::read_file(path), expected);
    }
  }
}

TEST(SinkCheckpointTest, SortedSinkKeepsItsHeldRowsAcrossARestore) {
  TempDir dir;
  const std::vector<BatchPtr> batches = make_batches(6, 50);
  for (bool csv : {true, false}) {
    const fs::path path = dir / (csv ? "sorted.csv" : "sorted.jsonl");
    auto def = file_sink(csv, path, "id");
    const std::string expected = uninterrupted(def, path, batches);
    for (size_t at : {0, 1, 4, 6}) {
      SCOPED_TRACE(std::string(csv ? "csv" : "jsonl") + ", snapshot after " + std::to_string(at));
      const std::string state = interrupted(def, path, batches, at, 1, "");
      resume(def, batches, at, state);
      EXPECT_EQ(testing::read_file(path), expected);
    }
    // The held rows are in the state: a sink restored after all batches writes them all.
    const std::string state = interrupted(def, path, batches, batches.size(), 0, "");
    resume(def, batches, batches.size(), state);
    EXPECT_EQ(testing::read_file(path), expected);
  }
}

TEST(SinkCheckpointTest, AFreshSinkStillTruncatesItsFile) {
  TempDir dir;
  const fs::path path = dir / "out.csv";
  const std::vector<BatchPtr> batches = make_batches(2, 3);
  const std::string expected = uninterrupted(file_sink(true, path), path, batches);
  testing::write_file(path, expected + expected + "old content\n");
  EXPECT_EQ(uninterrupted(file_sink(true, path), path, batches), expected);
}

TEST(SinkCheckpointTest, AFileShorterThanTheSavedLengthOrMissingIsAnIoError) {
  TempDir dir;
  const fs::path path = dir / "out.csv";
  auto def = file_sink(true, path);
  const std::vector<BatchPtr> batches = make_batches(8, 500);
  const std::string state = interrupted(def, path, batches, 4, 0, "");
  const std::string written = testing::read_file(path);
  ASSERT_GT(written.size(), 1000u);
  testing::write_file(path, written.substr(0, written.size() - 10));
  try {
    OperatorDriver sink(def, instance_info("sink"), state);
    ADD_FAILURE() << "resumed a sink over a file shorter than its checkpoint";
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path.string()), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(written.size())), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(written.size() - 10)), std::string::npos) << what;
  }
  fs::remove(path);
  try {
    OperatorDriver sink(def, instance_info("sink"), state);
    ADD_FAILURE() << "resumed a sink whose file is missing";
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path.string() + ": it is missing"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(written.size())), std::string::npos) << what;
  }
}

TEST(SinkCheckpointTest, DamagedStateIsADataErrorNamingTheState) {
  TempDir dir;
  const fs::path path = dir / "out.csv";
  auto def = file_sink(true, path, "id");
  const std::string state = interrupted(def, path, make_batches(3, 4), 2, 0, "");
  const auto info = instance_info("sink");
  for (size_t n = 0; n < state.size(); n += 7) {
    try {
      OperatorDriver sink(def, info, state.substr(0, n));
      ADD_FAILURE() << "restored from " << n << " of " << state.size() << " bytes";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(OperatorDriver::state_name(info)), std::string::npos)
          << e.what();
    }
  }
  // Layout: "csv_sink" (8 + 8 bytes), version (4), length (8), header flag, batch count (8),
  // then the batches, each after a presence byte.
  auto expect_error = [&](size_t at, char byte, const std::string& says) {
    std::string altered = state;
    altered[at] = byte;
    try {
      OperatorDriver sink(def, info, altered);
      ADD_FAILURE() << "restored with byte " << at << " altered";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  expect_error(28, 5, "flag");
  expect_error(36, 0x7f, "does not fit");
  expect_error(37, 2, "bad batch marker");
  // A jsonl sink does not take a csv sink's state.
  try {
    OperatorDriver sink(file_sink(false, dir / "out.jsonl", "id"), info, state);
    ADD_FAILURE() << "a jsonl_sink took a csv_sink's state";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not of a \"jsonl_sink\""), std::string::npos) << e.what();
  }
}

TEST(SinkCheckpointTest, StdoutSinkKeepsItsLimitAndHeaderAcrossARestore) {
  StdoutSinkOptions o;
  o.limit = 25;
  auto def = stdout_sink(o);
  const std::vector<BatchPtr> batches = make_batches(5, 10);
  ::testing::internal::CaptureStdout();
  {
    OperatorDriver sink(def, instance_info("print"));
    for (const BatchPtr& b : batches) sink.process(0, b);
    sink.finish();
  }
  const std::string expected = ::testing::internal::GetCapturedStdout();
  ::testing::internal::CaptureStdout();
  std::string state;
  {
    OperatorDriver sink(def, instance_info("print"));
    for (size_t i = 0; i < 2; ++i) sink.process(0, batches[i]);
    state = sink.snapshot();
  }
  {
    OperatorDriver sink(def, instance_info("print"), state);
    for (size_t i = 2; i < batches.size(); ++i) sink.process(0, batches[i]);
    sink.finish();
  }
  const std::string resumed = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(resumed, expected);
  EXPECT_EQ(std::count(expected.begin(), expected.end(), '\n'), 26);  // header + 25 rows
}

}  // namespace
}  // namespace tensair::ops

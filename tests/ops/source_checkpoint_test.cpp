// Checkpoints of the sources (text, CSV, binary, generator) and FileReader::seek: a source
// restored from a snapshot and run on emits exactly what the original emitted after the
// snapshot (records, batch boundaries, dead letters), at several snapshot points.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/ops/sources.hpp"
#include "testing/batch_equality.hpp"
#include "testing/files.hpp"
#include "testing/operator_driver.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::ops {
namespace {

using dataflow::DType;
using testing::instance_info;
using testing::OperatorDriver;
using testing::resume_source;
using testing::Resume;
using testing::TempDir;
using testing::total_rows;

namespace fs = std::filesystem;

std::string numbered_lines(int n, const std::string& prefix = "line ") {
  std::string text;
  for (int i = 0; i < n; ++i) text += prefix + std::to_string(i) + "\n";
  return text;
}

// Resumes `def` from snapshots after each of `points` produce() calls and checks the resumed
// run against the original's tail, and that the snapshot did not disturb the original.
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

// A snapshot in the middle leaves a tail that is neither empty nor the whole stream, so the
// comparisons above compare something.
void expect_proper_tail(const Resume& r) {
  const int64_t tail = total_rows(r.resumed.emitted(0));
  EXPECT_GT(tail, 0);
  EXPECT_LT(tail, total_rows(r.uninterrupted.emitted(0)));
}

// ---- FileReader::seek ------------------------------------------------------------------------

TEST(FileReaderSeekTest, ContinuesAtTheSavedPositionInPlainGzipAndXz) {
  TempDir dir;
  std::string text = numbered_lines(30000) + "last without newline";
  testing::write_file(dir / "a.txt", text);
  testing::write_gzip(dir / "a.txt.gz", text);
  testing::write_xz(dir / "a.txt.xz", text);
  for (const char* name : {"a.txt", "a.txt.gz", "a.txt.xz"}) {
    SCOPED_TRACE(name);
    for (int skip : {0, 1, 12345, 30000}) {
      FileReader first(dir / name);
      std::string line;
      for (int i = 0; i < skip; ++i) ASSERT_TRUE(first.read_line(line));
      FileReader second(dir / name);
      second.seek(first.position());
      EXPECT_EQ(second.position(), first.position());
      std::string a, b;
      int n = 0;
      for (;;) {
        const bool more_a = first.read_line(a);
        const bool more_b = second.read_line(b);
        ASSERT_EQ(more_a, more_b) << "after " << n << " lines";
        if (!more_a) break;
        ASSERT_EQ(a, b);
        ++n;
      }
      EXPECT_EQ(n, 30001 - skip);
    }
    // Seeking back (a reader that has read further) works too.
    FileReader r(dir / name);
    std::string line;
    for (int i = 0; i < 100; ++i) r.read_line(line);
    r.seek(8);  // "line 0\nl" | "ine 1"
    ASSERT_TRUE(r.read_line(line));
    EXPECT_EQ(line, "ine 1");
  }
}

TEST(FileReaderSeekTest, PastTheEndIsAnIoErrorNamingTheFile) {
  TempDir dir;
  std::string text = numbered_lines(100);
  testing::write_file(dir / "a.txt", text);
  testing::write_gzip(dir / "a.txt.gz", text);
  for (const char* name : {"a.txt", "a.txt.gz"}) {
    FileReader r(dir / name);
    EXPECT_NO_THROW(r.seek(text.size()));
    std::string line;
    EXPECT_FALSE(r.read_line(line));
    try {
      r.seek(text.size() + 1);
      ADD_FAILURE() << "no error for a position past the end of " << name;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find((dir / name).string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(text.size() + 1)), std::string::npos)
          << e.what();
    }
  }
}

// ---- text_source -----------------------------------------------------------------------------

TEST(SourceCheckpointTest, TextResumesExactlyInPlainAndGzipAcrossTwoPasses) {
  TempDir dir;
  // 1000 lines, batches of 64: pass 1 is 15 full batches and one of 40 (call 16 ends the pass),
  // pass 2 the same again (calls 17..32).
  const std::string text = numbered_lines(1000);
  testing::write_file(dir / "a.txt", text);
  testing::write_gzip(dir / "a.txt.gz", text);
  for (const char* name : {"a.txt", "a.txt.gz"}) {
    SCOPED_TRACE(name);
    TextSourceOptions o;
    o.path = dir / name;
    o.index_column = "n";
    o.source.batch_size = 64;
    o.source.replay = 2;
    auto def = text_source(o);
    expect_resumes_exactly(def, instance_info("text"), {0, 1, 7, 15, 16, 17, 31, 32, 40});
    Resume mid = resume_source(def, instance_info("text"), 7);
    expect_proper_tail(mid);
    // The line index restarts at 0 in the second pass and continues after a restore.
    const auto& first = *mid.resumed.emitted(0).front();
    EXPECT_EQ(first.column("n").at<int64_t>(0), 7 * 64);
    EXPECT_EQ(first.column("line").str(0), "line " + std::to_string(7 * 64));
  }
}

TEST(SourceCheckpointTest, TextResumesAtTheEndOfAFileThatFillsItsLastBatch) {
  // 256 lines in batches of 64: after 4 calls the reader stands at the end of the file, still
  // in the pass (the end is found by the next call).
  TempDir dir;
  testing::write_file(dir / "a.txt", numbered_lines(256));
  TextSourceOptions o;
  o.path = dir / "a.txt";
  o.source.batch_size = 64;
  o.source.replay = 2;
  expect_resumes_exactly(text_source(o), instance_info("text"), {3, 4, 5, 8, 9});
}

TEST(SourceCheckpointTest, ShardedInstancesWithALimitResumeEachOnItsOwn) {
  TempDir dir;
  testing::write_gzip(dir / "a.txt.gz", numbered_lines(500));
  TextSourceOptions o;
  o.path = dir / "a.txt.gz";
  o.source.batch_size = 50;
  o.source.replay = 3;
  o.source.limit = 1234;
  auto def = text_source(o);
  for (int instance = 0; instance < 2; ++instance) {
    expect_resumes_exactly(def, instance_info("text", instance, 2), {0, 2, 5, 6, 11, 12, 13, 40});
    Resume r = resume_source(def, instance_info("text", instance, 2), 6);
    expect_proper_tail(r);
    // The limit counts every instance's records: 617 of 1234 each.
    EXPECT_EQ(total_rows(r.head.emitted(0)) + total_rows(r.reference.emitted(0)), 617);
  }
}

TEST(SourceCheckpointTest, RestoreSeeksToTheSavedPositionInsteadOfReadingAgain) {
  // After the snapshot the file's first lines are rewritten with the same number of bytes but
  // fewer line breaks. A restore that re-read the file and skipped lines would now emit other
  // lines; one that seeks to the saved byte position emits the original tail.
  TempDir dir;
  std::string text = numbered_lines(300);
  testing::write_file(dir / "a.txt", text);
  TextSourceOptions o;
  o.path = dir / "a.txt";
  o.index_column = "n";
  o.source.batch_size = 32;
  auto def = text_source(o);
  OperatorDriver original(def, instance_info("text"));
  original.produce(3);
  const std::string state = original.snapshot();
  original.ctx().clear_records();
  original.run_to_end();
  std::string changed = text;
  for (size_t i = 0; i < 60; ++i) {
    if (changed[i] == '\n') changed[i] = '#';
  }
  testing::write_file(dir / "a.txt", changed);
  OperatorDriver restored(def, instance_info("text"), state);
  restored.run_to_end();
  EXPECT_TRUE(testing::same_records(original.ctx(), restored.ctx()));
  EXPECT_EQ(restored.ctx().emitted(0).front()->column("line").str(0), "line 96");
  EXPECT_EQ(restored.ctx().emitted(0).front()->column("n").at<int64_t>(0), 96);
}

TEST(SourceCheckpointTest, AFileShorterThanTheSavedPositionIsAnIoErrorNamingIt) {
  TempDir dir;
  for (bool gzip : {false, true}) {
    const fs::path path = dir / (gzip ? "a.txt.gz" : "a.txt");
    auto write = [&](const std::string& text) {
      gzip ? testing::write_gzip(path, text) : testing::write_file(path, text);
    };
    write(numbered_lines(400));
    TextSourceOptions o;
    o.path = path;
    o.source.batch_size = 100;
    auto def = text_source(o);
    OperatorDriver original(def, instance_info("text"));
    original.produce(3);
    const std::string state = original.snapshot();
    write(numbered_lines(100));
    try {
      OperatorDriver restored(def, instance_info("text"), state);
      ADD_FAILURE() << "restored over a shorter " << path;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
}

// ---- csv_source ------------------------------------------------------------------------------

TEST(SourceCheckpointTest, CsvBadLinesAfterTheSnapshotAreTheSameDeadLetters) {
  TempDir dir;
  std::string text = "id,x,name\n";
  for (int i = 0; i < 400; ++i) {
    if (i == 150)
      text += "150,1.5\n";  // too few fields
    else if (i == 222)
      text += "222,abc,\"x\n";  // unterminated quote
    else if (i == 301)
      text += "301,nope,z\n";  // not a number
    else if (i == 350)
      text += "\n";  // blank: not a record
    else
      text +=
          std::to_string(i) + "," + std::to_string(i) + ".25,\"n,\"\"" + std::to_string(i) + "\"\n";
  }
  testing::write_file(dir / "data.csv", text);
  testing::write_gzip(dir / "data.csv.gz", text);
  for (const char* name : {"data.csv", "data.csv.gz"}) {
    SCOPED_TRACE(name);
    CsvSourceOptions o;
    o.path = dir / name;
    o.columns = {
        {"id", DType::kInt64, {}}, {"x", DType::kFloat64, {}}, {"name", DType::kString, {}}};
    o.source.batch_size = 40;
    o.source.replay = 2;
    auto def = csv_source(o);
    expect_resumes_exactly(def, instance_info("csv"), {0, 2, 3, 9, 10, 11, 12, 19, 25});
    // After 2 calls (80 records) every bad line is still ahead: the restored source reports
    // them with their line numbers (the header is line 1), in both passes.
    Resume r = resume_source(def, instance_info("csv"), 2);
    expect_proper_tail(r);
    ASSERT_EQ(r.resumed.dead_letters().size(), 6u);
    const std::string file = fs::path(name).filename().string();
    EXPECT_EQ(r.resumed.dead_letters()[0].reason.rfind(file + ":152: 2 fields, expected 3", 0), 0u)
        << r.resumed.dead_letters()[0].reason;
    EXPECT_EQ(r.resumed.dead_letters()[1].reason, file + ":224: unterminated quote");
    EXPECT_EQ(r.resumed.dead_letters()[2].reason.rfind(file + ":303: column \"x\"", 0), 0u)
        << r.resumed.dead_letters()[2].reason;
    EXPECT_TRUE(r.head.dead_letters().empty());
  }
}

// ---- binary_source ---------------------------------------------------------------------------

TEST(SourceCheckpointTest, BinaryResumesAndReportsThePartialTail) {
  TempDir dir;
  std::string bytes = "HDR!";  // 4 header bytes
  for (int32_t i = 0; i < 333; ++i) {
    const float f = static_cast<float>(i) / 8.0f;
    bytes.append(reinterpret_cast<const char*>(&i), 4);
    bytes.append(reinterpret_cast<const char*>(&f), 4);
    bytes.append("pad", 3);
  }
  bytes.append("xyz", 3);  // a partial record
  testing::write_file(dir / "r.bin", bytes);
  testing::write_gzip(dir / "r.bin.gz", bytes);
  for (const char* name : {"r.bin", "r.bin.gz"}) {
    SCOPED_TRACE(name);
    BinarySourceOptions o;
    o.path = dir / name;
    o.fields = {{"i", DType::kInt32, {}}, {"f", DType::kFloat32, {}}};
    o.header_bytes = 4;
    o.record_bytes = 11;
    o.source.batch_size = 100;
    o.source.replay = 2;
    auto def = binary_source(o);
    expect_resumes_exactly(def, instance_info("bin"), {0, 1, 3, 4, 5, 8, 9});
    Resume r = resume_source(def, instance_info("bin"), 1);
    expect_proper_tail(r);
    ASSERT_EQ(r.resumed.dead_letters().size(), 2u);  // one per pass
    EXPECT_NE(r.resumed.dead_letters()[0].reason.find("record 333 truncated to 3 of 11 bytes"),
              std::string::npos)
        << r.resumed.dead_letters()[0].reason;
  }
}

// ---- generator -------------------------------------------------------------------------------

TEST(SourceCheckpointTest, GeneratorResumesItsSequenceAndRandomColumns) {
  GeneratorSourceOptions o;
  o.columns = {{"n", "sequence"}, {"u", "uniform[3]"}, {"z", "normal"}, {"k", "randint(7)"}};
  o.count = 500;
  o.seed = 42;
  o.source.batch_size = 64;
  o.source.replay = 2;
  auto def = generator_source(o);
  expect_resumes_exactly(def, instance_info("gen"), {0, 1, 7, 8, 9, 15});
  expect_resumes_exactly(def, instance_info("gen", 1, 3), {0, 2, 3, 6});
  expect_proper_tail(resume_source(def, instance_info("gen"), 7));
}

// ---- damaged states --------------------------------------------------------------------------

TEST(SourceCheckpointTest, TruncatedOrAlteredStateIsADataErrorNamingTheState) {
  TempDir dir;
  testing::write_file(dir / "a.txt", numbered_lines(200));
  TextSourceOptions o;
  o.path = dir / "a.txt";
  o.source.batch_size = 16;
  auto def = text_source(o);
  const auto info = instance_info("text");
  OperatorDriver original(def, info);
  original.produce(3);
  const std::string state = original.snapshot();
  auto expect_data_error = [&](const std::string& bad, const std::string& says) {
    try {
      OperatorDriver restored(def, info, bad);
      ADD_FAILURE() << "no error for a damaged state (" << says << ")";
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(OperatorDriver::state_name(info)), std::string::npos) << what;
      if (says.empty()) {
        EXPECT_TRUE(what.find("ends early") != std::string::npos ||
                    what.find("does not fit") != std::string::npos)
            << what;
      } else {
        EXPECT_NE(what.find(says), std::string::npos) << what;
      }
    }
  };
  // Cut anywhere: a read runs past the end ("ends early"), or a length does not fit.
  for (size_t n = 0; n < state.size(); ++n) expect_data_error(state.substr(0, n), "");
  expect_data_error(state + "x", "left over");
  // The layout name ("text_source") starts after its 8-byte length.
  std::string other = state;
  other[8] = 'T';
  expect_data_error(other, "not of a \"text_source\"");
  // The cursor's instance (right after the name and the 4-byte version).
  std::string instance = state;
  instance[8 + 11 + 4] = 1;
  expect_data_error(instance, "was saved by instance 1 of 1");
  // A flag byte (in_pass) other than 0 or 1.
  std::string flag = state;
  flag[8 + 11 + 4 + 8 + 24] = 7;
  expect_data_error(flag, "flag");
  // The state of another source type.
  CsvSourceOptions c;
  testing::write_file(dir / "c.csv", "a\n1\n");
  c.path = dir / "c.csv";
  try {
    OperatorDriver restored(csv_source(c), info, state);
    ADD_FAILURE() << "a csv_source took a text_source's state";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not of a \"csv_source\""), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tensair::ops

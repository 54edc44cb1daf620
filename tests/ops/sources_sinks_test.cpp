// Sources, functional operators and sinks, run as small graphs at 1, 2 and 3 in-process ranks.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>

#include "tensair/common/file_reader.hpp"
#include "tensair/ops/collect.hpp"
#include "tensair/ops/functional.hpp"
#include "tensair/ops/sinks.hpp"
#include "tensair/ops/sources.hpp"
#include "testing/files.hpp"
#include "testing/harness.hpp"
#include "testing/lambda_op.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::ops {
namespace {

using dataflow::Batch;
using dataflow::DType;
using dataflow::Graph;
using dataflow::Placement;
using dataflow::Routing;
using testing::TempDir;

namespace fs = std::filesystem;

using testing::read_file;
using testing::write_file;
using testing::write_gzip;

// Runs source -> collect(rank 0) at `ranks` ranks; returns the collected rows and the
// outcomes. With `out_dir`, dead letters go to out_dir/dead_letters.jsonl.
std::pair<Batch, std::vector<testing::RankOutcome>> run_source(
    int ranks, std::shared_ptr<const dataflow::OperatorDef> source,
    Placement placement = Placement::all(), const fs::path& out_dir = {}) {
  auto out = std::make_shared<Collection>();
  dataflow::ExecutorOptions options;
  options.out_dir = out_dir;
  auto outcomes = testing::run_graph(
      ranks,
      [&](Graph& g, int, int) {
        g.add("source", source, placement);
        g.add("out", collect(out), Placement::on(0));
        g.connect("source", "out", Routing::to_rank(0));
      },
      options);
  return {out->rows(), outcomes};
}

TEST(FileReaderTest, ReadsPlainGzipAndXzTheSame) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + "\r\n";
  text += "last without newline";
  write_file(dir / "a.txt", text);
  write_gzip(dir / "a.txt.gz", text);
  ASSERT_EQ(std::system(("xz -k -c " + (dir / "a.txt").string() + " > " + (dir / "a.txt.xz").string()).c_str()), 0);
  for (const char* name : {"a.txt", "a.txt.gz", "a.txt.xz"}) {
    FileReader r(dir / name);
    std::string line;
    int n = 0;
    while (r.read_line(line)) {
      if (n < 20000) {
        ASSERT_EQ(line, "line " + std::to_string(n)) << name;
      } else {
        EXPECT_EQ(line, "last without newline");
      }
      n++;
    }
    EXPECT_EQ(n, 20001) << name;
    r.rewind();
    ASSERT_TRUE(r.read_line(line));
    EXPECT_EQ(line, "line 0");
  }
  EXPECT_EQ(FileReader(dir / "a.txt.gz").format(), FileReader::Format::kGzip);
  EXPECT_EQ(FileReader(dir / "a.txt.xz").format(), FileReader::Format::kXz);
}

TEST(FileReaderTest, TruncatedCompressedFilesAreErrorsNamingTheFile) {
  TempDir dir;
  std::string text(200000, 'x');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = static_cast<char>('a' + i % 26);
  write_gzip(dir / "t.gz", text);
  std::string gz = read_file(dir / "t.gz");
  write_file(dir / "cut.gz", gz.substr(0, gz.size() / 2));
  FileReader r(dir / "cut.gz");
  char buf[4096];
  try {
    while (r.read(buf, sizeof buf) > 0) {
    }
    FAIL() << "no error for a truncated gzip file";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.gz: truncated gzip stream"), std::string::npos) << e.what();
  }
  try {
    FileReader missing(dir / "nope.txt");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos);
  }
}

// A file without a newline (/dev/zero, a binary file) once grew one line until std::bad_alloc.
TEST(FileReaderTest, ALineLongerThanTheLimitIsAnErrorNamingFileAndLine) {
  TempDir dir;
  write_file(dir / "l.txt", "short\n" + std::string(100, 'x') + "\r\n" + std::string(101, 'y'));
  for (bool gzip : {false, true}) {
    if (gzip) write_gzip(dir / "l.txt", read_file(dir / "l.txt"));
    FileReader r(dir / "l.txt");
    r.set_max_line_bytes(100);
    std::string line;
    ASSERT_TRUE(r.read_line(line));
    ASSERT_TRUE(r.read_line(line));  // 100 bytes and a '\r': at the limit
    EXPECT_EQ(line, std::string(100, 'x'));
    try {
      r.read_line(line);
      FAIL() << "no error for a 101-byte line";
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()),
                (dir / "l.txt").string() +
                    ": line 3 is longer than 100 bytes (is it a text file?)");
    }
  }
  // After a seek the line number is not known: the message gives the byte.
  FileReader r(dir / "l.txt");
  r.set_max_line_bytes(100);
  r.seek(108);
  std::string line;
  try {
    r.read_line(line);
    FAIL() << "no error for a 101-byte line";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("the line at byte 108 is longer than 100 bytes"),
              std::string::npos) << e.what();
  }
  EXPECT_EQ(FileReader(dir / "l.txt").max_line_bytes(), FileReader::kMaxLineBytes);
}

// /dev/zero as a CSV file: one line of zero bytes without end. Refused when the source is
// defined (its header is read then), as a file the user gave, exit code 2.
TEST(CsvSourceTest, AnEndlessLineIsAnErrorNotAnAllocationFailure) {
  if (!fs::exists("/dev/zero")) GTEST_SKIP() << "no /dev/zero";
  CsvSourceOptions o;
  o.path = "/dev/zero";
  try {
    csv_source(o);
    FAIL() << "/dev/zero accepted as a CSV file";
  } catch (const IoError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
    EXPECT_EQ(std::string(e.what()),
              "/dev/zero: line 1 is longer than " + std::to_string(FileReader::kMaxLineBytes) +
                  " bytes (is it a text file?)");
  }
}

TEST(TextSourceTest, EveryLineOnceWhetherShardedOrNot) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "w" + std::to_string(i) + "\n";
  write_gzip(dir / "lines.gz", text);
  for (int ranks : testing::rank_counts()) {
    TextSourceOptions o;
    o.path = dir / "lines.gz";
    o.index_column = "index";
    o.source.batch_size = 64;
    auto [rows, outcomes] = run_source(ranks, text_source(o));
    for (auto& oc : outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    ASSERT_EQ(rows.rows(), 1000) << "ranks " << ranks;
    std::vector<bool> seen(1000, false);
    for (int64_t r = 0; r < rows.rows(); ++r) {
      int64_t idx = rows.column("index").at<int64_t>(r);
      EXPECT_EQ(rows.column("line").str(r), "w" + std::to_string(idx));
      EXPECT_FALSE(seen[static_cast<size_t>(idx)]);
      seen[static_cast<size_t>(idx)] = true;
    }
    // Without sharding, each instance emits the whole file.
    o.source.shard = false;
    auto [all, outcomes2] = run_source(ranks, text_source(o));
    EXPECT_EQ(all.rows(), 1000 * ranks);
  }
}

TEST(TextSourceTest, ReplayAndLimit) {
  TempDir dir;
  write_file(dir / "abc.txt", "a\nb\nc\n");
  TextSourceOptions o;
  o.path = dir / "abc.txt";
  o.source.replay = 3;
  auto [rows, _] = run_source(1, text_source(o));
  ASSERT_EQ(rows.rows(), 9);
  EXPECT_EQ(rows.column("line").str(3), "a");
  o.source.replay = 0;  // forever, but limited
  o.source.limit = 7;
  auto [limited, __] = run_source(1, text_source(o));
  EXPECT_EQ(limited.rows(), 7);
}

TEST(TextSourceTest, MissingFileIsAConfigError) {
  TextSourceOptions o;
  o.path = "/nonexistent/corpus.txt.gz";
  try {
    text_source(o);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), "input file /nonexistent/corpus.txt.gz does not exist");
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
  }
}

TEST(SourceOptionsTest, ABatchTooLargeToBuildIsRefusedWhenTheSourceIsMade) {
  // uniform[100000000] with the default batch_size of 1024: 409.6 GB per batch, once a
  // std::bad_alloc (or the OOM killer) at run time.
  GeneratorSourceOptions o;
  o.columns = {{"x", "uniform[100000000]"}};
  try {
    generator_source(o);
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "a batch of 1024 records of 400000000 bytes is 409.6 GB, over the 2 GiB a batch may "
              "hold: lower batch_size or the record shape");
  }
  o.source.batch_size = 5;  // 2.0 GB: within the limit
  EXPECT_NO_THROW(generator_source(o));
  o.source.batch_size = 6;
  EXPECT_THROW(generator_source(o), ConfigError);
  // The same for a binary source's declared fields.
  BinarySourceOptions b;
  b.path = "/dev/null";
  b.fields = {dataflow::parse_column_spec("image:float64[4096,4096]")};  // 134 MB a record
  b.source.batch_size = 16;
  EXPECT_NO_THROW(binary_source(b));
  b.source.batch_size = 17;
  EXPECT_THROW(binary_source(b), ConfigError);
}

TEST(SourceOptionsTest, ImpossibleOptionsAreRefusedWithTheReason) {
  auto error_of = [](SourceOptions s) -> std::string {
    try {
      check_source_options(s);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(error_of({}), "accepted");
  SourceOptions s;
  s.batch_size = 0;
  EXPECT_EQ(error_of(s), "batch_size must be between 1 and 1048576, got 0");
  s.batch_size = 1000000000000;  // an endless source's batch once grew until std::bad_alloc
  EXPECT_EQ(error_of(s), "batch_size must be between 1 and 1048576, got 1000000000000");
  s = {};
  s.rate = -1;
  EXPECT_EQ(error_of(s), "rate must not be negative");
  s = {};
  s.burst = -5;
  EXPECT_EQ(error_of(s), "burst must not be negative (0: a tenth of a second's worth)");
  s = {};
  s.replay = -1;
  EXPECT_EQ(error_of(s), "replay must not be negative (0 replays forever)");
  s = {};
  s.limit = -2;
  EXPECT_EQ(error_of(s), "limit must not be negative (0: no limit)");
  // Every source checks them before it starts.
  TextSourceOptions t;
  t.path = "/dev/null";
  t.source.burst = -1;
  EXPECT_THROW(text_source(t), ConfigError);
  s = {};
  s.rate = 250;
  s.replay = 0;
  s.limit = 10;
  s.shard = false;
  EXPECT_EQ(source_options_text(s), "batch_size=1024 rate=250/s replay=forever limit=10 shard=false");
}

TEST(CsvSourceTest, ParsesTypesQuotesAndDeadLettersBadRows) {
  TempDir dir;
  write_file(dir / "t.csv",
             "id,name,score\n"
             "1,alice,0.5\n"
             "2,\"bob, jr\",1e3\n"
             "x,carol,2\n"          // bad int
             "4,dave\n"             // too few fields
             "5,\"eve \"\"e\"\"\",-3.25\n"
             "\n"
             "6,frank,+7\n");
  CsvSourceOptions o;
  o.path = dir / "t.csv";
  o.columns = {{"id", DType::kInt64, {}}, {"name", DType::kString, {}}, {"score", DType::kFloat32, {}}};
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_source(ranks, csv_source(o), Placement::on(0));
    for (auto& oc : outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    ASSERT_EQ(rows.rows(), 4);
    std::map<int64_t, std::pair<std::string, float>> got;
    for (int64_t r = 0; r < 4; ++r) {
      got[rows.column("id").at<int64_t>(r)] = {std::string(rows.column("name").str(r)),
                                               rows.column("score").at<float>(r)};
    }
    EXPECT_EQ(got[2].first, "bob, jr");
    EXPECT_FLOAT_EQ(got[2].second, 1000.f);
    EXPECT_EQ(got[5].first, "eve \"e\"");
    EXPECT_FLOAT_EQ(got[6].second, 7.f);
    EXPECT_EQ(testing::total(outcomes, "source", &dataflow::InstanceStats::dead_letters), 2u);
  }
}

// Each bad row is a dead letter naming file, line and column, with the line as its record.
TEST(CsvSourceTest, DeadLettersNameFileLineAndColumn) {
  TempDir dir;
  write_file(dir / "d.csv", "n,score\n1,0.5\n2,abc\n3\n4,1,2\n5,\"open\n6,7\n");
  CsvSourceOptions o;
  o.path = dir / "d.csv";
  o.columns = {{"n", DType::kInt64, {}}, {"score", DType::kFloat64, {}}};
  for (int ranks : testing::rank_counts()) {
    TempDir out;
    auto [rows, outcomes] = run_source(ranks, csv_source(o), Placement::on(0), out.path());
    for (auto& oc : outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    EXPECT_EQ(rows.rows(), 2);  // n = 1 and 6
    EXPECT_EQ(testing::total(outcomes, "source", &dataflow::InstanceStats::dead_letters), 4u);
    const std::string dead = read_file(out / "dead_letters.jsonl");
    for (const char* want :
         {R"("reason":"d.csv:3: column \"score\": cannot read \"abc\" as float64")"
          R"(,"record":"2,abc")",
          R"("reason":"d.csv:4: 1 fields, expected 2","record":"3")",
          R"("reason":"d.csv:5: 3 fields, expected 2","record":"4,1,2")",
          R"("reason":"d.csv:6: unterminated quote")"}) {
      EXPECT_NE(dead.find(want), std::string::npos) << want << "\n" << dead;
    }
  }
}

TEST(CsvSourceTest, ColumnsFromTheHeaderAndSelect) {
  TempDir dir;
  write_file(dir / "h.csv", "a,b,c\n1,2,3\n4,5,6\n");
  CsvSourceOptions o;
  o.path = dir / "h.csv";
  o.select = {"c", "a"};
  o.default_dtype = DType::kFloat32;
  auto [rows, _] = run_source(1, csv_source(o));
  ASSERT_EQ(rows.num_columns(), 2u);
  EXPECT_EQ(rows.columns()[0].name(), "c");
  EXPECT_FLOAT_EQ(rows.column("c").at<float>(1), 6.f);
  o.select = {"d"};
  EXPECT_THROW(csv_source(o), ConfigError);
}

TEST(BinarySourceTest, ReadsFixedRecordsAndDeadLettersATruncatedTail) {
  TempDir dir;
  std::string bytes = "HDR!";
  for (int32_t i = 0; i < 100; ++i) {
    float x[2] = {static_cast<float>(i), static_cast<float>(-i)};
    bytes.append(reinterpret_cast<const char*>(&i), 4);
    bytes.append(reinterpret_cast<const char*>(x), 8);
    bytes.append(1, static_cast<char>(i));
  }
  bytes.append("abc");  // 3 stray bytes: a truncated 14th-byte record
  write_file(dir / "r.bin", bytes);
  BinarySourceOptions o;
  o.path = dir / "r.bin";
  o.header_bytes = 4;
  o.fields = {{"id", DType::kInt32, {}}, {"x", DType::kFloat32, {2}}, {"b", DType::kUInt8, {}}};
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_source(ranks, binary_source(o));
    ASSERT_EQ(rows.rows(), 100);
    int64_t sum = 0;
    for (int64_t r = 0; r < 100; ++r) {
      int32_t id = rows.column("id").at<int32_t>(r);
      sum += id;
      EXPECT_FLOAT_EQ(rows.column("x").values<float>()[static_cast<size_t>(2 * r + 1)], static_cast<float>(-id));
      EXPECT_EQ(rows.column("b").at<uint8_t>(r), static_cast<uint8_t>(id));
    }
    EXPECT_EQ(sum, 4950);
    // Every instance reads the tail, so each counts it once.
    EXPECT_EQ(testing::total(outcomes, "source", &dataflow::InstanceStats::dead_letters), static_cast<uint64_t>(ranks));
  }
  // The dead letter's record is the tail's bytes in hex ("abc"), once empty.
  TempDir out;
  auto [rows, outcomes] = run_source(1, binary_source(o), Placement::all(), out.path());
  const std::string dead = read_file(out / "dead_letters.jsonl");
  EXPECT_NE(dead.find(R"("reason":"r.bin: record 100 truncated to 3 of 13 bytes")"
                      R"(,"record":"616263")"),
            std::string::npos)
      << dead;
}

TEST(GeneratorSourceTest, SameRecordsWhateverTheRankCount) {
  GeneratorSourceOptions o;
  o.columns = {{"id", "sequence"}, {"u", "uniform"}, {"n", "normal[3]"}, {"k", "randint(10)"}};
  o.count = 5000;
  o.seed = 42;
  std::map<int64_t, std::tuple<float, float, int64_t>> first;
  for (int ranks : testing::rank_counts()) {
    auto [rows, _] = run_source(ranks, generator_source(o));
    ASSERT_EQ(rows.rows(), 5000);
    double mean_u = 0, mean_n = 0, var_n = 0;
    std::map<int64_t, std::tuple<float, float, int64_t>> got;
    for (int64_t r = 0; r < rows.rows(); ++r) {
      float u = rows.column("u").at<float>(r);
      float n0 = rows.column("n").values<float>()[static_cast<size_t>(3 * r)];
      int64_t k = rows.column("k").at<int64_t>(r);
      ASSERT_GE(u, 0.f);
      ASSERT_LT(u, 1.f);
      ASSERT_GE(k, 0);
      ASSERT_LT(k, 10);
      mean_u += u;
      mean_n += n0;
      var_n += n0 * n0;
      got[rows.column("id").at<int64_t>(r)] = {u, n0, k};
    }
    EXPECT_NEAR(mean_u / 5000, 0.5, 0.02);
    EXPECT_NEAR(mean_n / 5000, 0.0, 0.05);
    EXPECT_NEAR(var_n / 5000, 1.0, 0.08);
    if (first.empty()) first = got;
    EXPECT_EQ(got, first) << "ranks " << ranks;
  }
  o.columns = {{"x", "poisson"}};
  EXPECT_THROW(generator_source(o), ConfigError);
}

TEST(FunctionalTest, TokenizeFilterSelectAndCallables) {
  TempDir dir;
  write_file(dir / "t.txt", "Hello, World! hello\nIt's 2 AM: hello-world\n");
  TextSourceOptions src;
  src.path = dir / "t.txt";
  auto out = std::make_shared<Collection>();
  auto outcomes = testing::run_graph(2, [&](Graph& g, int, int) {
    g.add("source", text_source(src), Placement::on(0));
    g.add("tok", tokenize({}));
    g.add("long", filter_compare({"word", ">=", std::string("hello")}));
    g.add("upper", map(
                       [](const Batch& b) {
                         dataflow::ColumnBuilder c({"n", DType::kInt64, {}});
                         for (int64_t r = 0; r < b.rows(); ++r) c.append<int64_t>(static_cast<int64_t>(b.column("word").str(r).size()));
                         return b.with_column(c.finish());
                       },
                       std::nullopt));
    g.add("sel", select({{"n", "word"}, {{"word", "token"}}}));
    g.add("out", collect(out), Placement::on(0));
    g.connect("source", "tok");
    g.connect("tok", "long");
    g.connect("long", "upper");
    g.connect("upper", "sel");
    g.connect("sel", "out", Routing::to_rank(0));
  });
  for (auto& o : outcomes) ASSERT_FALSE(o.error) << *o.error;
  Batch rows = out->rows();
  std::multiset<std::string> tokens;
  for (int64_t r = 0; r < rows.rows(); ++r) {
    tokens.insert(std::string(rows.column("token").str(r)));
    EXPECT_EQ(rows.column("n").at<int64_t>(r), static_cast<int64_t>(rows.column("token").str(r).size()));
  }
  // Tokens: hello world hello it s am hello world; kept: >= "hello".
  EXPECT_EQ(tokens, (std::multiset<std::string>{"hello", "hello", "hello", "world", "world", "it", "s"}));
  EXPECT_EQ(rows.columns()[0].name(), "n");
  EXPECT_THROW(tokenize({"line", "a+", true, "w"}), ConfigError);
  EXPECT_THROW(filter_compare({"x", "=~", 1.0}), ConfigError);
}

TEST(SinkTest, CsvAndJsonLinesWithQuotingSortingAndArrays) {
  TempDir dir;
  auto make = [] {
    dataflow::ColumnBuilder w({"word", DType::kString, {}});
    dataflow::ColumnBuilder c({"count", DType::kInt64, {}});
    dataflow::ColumnBuilder v({"v", DType::kFloat32, {2}});
    for (auto [word, n] : std::vector<std::pair<std::string, int64_t>>{{"zeta", 1}, {"a,b", 2}, {"q\"x", 3}}) {
      w.append_string(word);
      c.append(n);
      float xs[2] = {0.1f, static_cast<float>(n)};
      v.append_values(xs, 2);
    }
    return Batch({w.finish(), c.finish(), v.finish()});
  };
  FileSinkOptions csv;
  csv.path = dir / "o.csv";
  csv.sort_by = "word";
  FileSinkOptions jl;
  jl.path = dir / "o.jsonl";
  jl.columns = {"count", "word", "v"};
  for (auto& [def, path] : std::vector<std::pair<std::shared_ptr<const dataflow::OperatorDef>, fs::path>>{
           {csv_sink(csv), csv.path}, {jsonl_sink(jl), jl.path}}) {
    auto outcomes = testing::run_graph(1, [&](Graph& g, int, int) {
      g.add("src", testing::source_of(make()));
      g.add("sink", def);
      g.connect("src", "sink");
    });
    for (auto& o : outcomes) ASSERT_FALSE(o.error) << *o.error;
  }
  EXPECT_EQ(read_file(csv.path), "word,count,v\n\"a,b\",2,\"[0.1,2]\"\n\"q\"\"x\",3,\"[0.1,3]\"\nzeta,1,\"[0.1,1]\"\n");
  EXPECT_EQ(read_file(jl.path),
            "{\"count\":1,\"word\":\"zeta\",\"v\":[0.1,1]}\n{\"count\":2,\"word\":\"a,b\",\"v\":[0.1,2]}\n"
            "{\"count\":3,\"word\":\"q\\\"x\",\"v\":[0.1,3]}\n");
}

TEST(SinkTest, SeveralInstancesNeedRankInThePath) {
  TempDir dir;
  FileSinkOptions o;
  o.path = dir / "one.csv";
  auto outcomes = testing::run_graph(2, [&](Graph& g, int, int) {
    g.add("src", testing::source_of(testing::int64_batch({{"x", {1}}})), Placement::on(0));
    g.add("sink", csv_sink(o));
    g.connect("src", "sink");
  });
  bool reported = false;
  for (auto& o2 : outcomes) {
    ASSERT_TRUE(o2.error);
    if (o2.error->find("put {rank} in the path") != std::string::npos) reported = true;
    EXPECT_EQ(o2.exit_code, 2);
  }
  EXPECT_TRUE(reported);
  o.path = dir / "part-{rank}.csv";
  auto ok = testing::run_graph(2, [&](Graph& g, int, int) {
    g.add("src", testing::source_of(testing::int64_batch({{"x", {1, 2, 3, 4}}})), Placement::on(0));
    g.add("sink", csv_sink(o));
    g.connect("src", "sink");
  });
  for (auto& o2 : ok) ASSERT_FALSE(o2.error) << *o2.error;
  EXPECT_TRUE(fs::exists(dir / "part-0.csv"));
  EXPECT_TRUE(fs::exists(dir / "part-1.csv"));
}

}  // namespace
}  // namespace tensair::ops

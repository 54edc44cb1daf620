// Job files: what they build, and the one-line errors for every kind of mistake.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tensair/job/job.hpp"

namespace tensair::job {
namespace {

namespace fs = std::filesystem;

class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tensair_job_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "words.txt") << "a b\nc\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& text) {
    fs::path p = dir_ / "job.toml";
    std::ofstream(p) << text;
    return p;
  }
  Job load(const std::string& text, std::vector<std::string> overrides = {}) {
    LoadOptions o;
    o.overrides = std::move(overrides);
    o.out_dir = dir_ / "out";
    return load_job(write(text), o);
  }
  std::string error(const std::string& text, std::vector<std::string> overrides = {}) {
    try {
      Job j = load(text, std::move(overrides));
      j.graph.validate(2);
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), ExitCode::kConfig) << e.what();
      std::string m = e.what();
      // Paths vary per run; report them relative to the test folder.
      for (size_t at; (at = m.find(dir_.string())) != std::string::npos;) m.replace(at, dir_.string().size(), "DIR");
      return m;
    }
    return "(valid)";
  }

  fs::path dir_;
};

const char* kPipeline = R"([job]
name = "t"

[source]
type = "text_source"
path = "words.txt"
placement = 0

[split]
type = "tokenize"
from = "source"
pattern = "[a-z]+"

[sink]
type = "csv_sink"
from = "split"
routing = "to_rank"
rank = 0
placement = 0
path = "words.csv"
)";

TEST_F(JobTest, BuildsTheGraph) {
  Job j = load(kPipeline);
  EXPECT_EQ(j.name, "t");
  ASSERT_EQ(j.graph.operators().size(), 3u);
  EXPECT_EQ(j.graph.operators()[0].name, "source");  // file order
  EXPECT_EQ(j.graph.operators()[0].placement.to_string(), "rank 0");
  ASSERT_EQ(j.graph.edges().size(), 2u);
  EXPECT_EQ(j.graph.edges()[1].routing.to_string(), "to_rank(0)");
  EXPECT_NO_THROW(j.graph.validate(2));
  std::string d = j.graph.describe(2);
  EXPECT_NE(d.find("path=" + (dir_ / "words.txt").string()), std::string::npos) << d;
  EXPECT_NE(d.find("path=" + (dir_ / "out" / "words.csv").string()), std::string::npos) << d;
}

TEST_F(JobTest, OverridesSetValuesOfEveryType) {
  Job j = load(kPipeline, {"split.lowercase=false", "job.name=other", "source.batch_size=7",
                           "source.placement=[1]", "split.pattern=[a-c]+"});
  EXPECT_EQ(j.name, "other");
  EXPECT_EQ(j.graph.operators()[0].placement.to_string(), "rank 1");
  std::string d = j.graph.describe(2);
  EXPECT_NE(d.find("batch_size=7"), std::string::npos) << d;
  EXPECT_NE(d.find("pattern=[a-c]+ lowercase=false"), std::string::npos) << d;
}

TEST_F(JobTest, OverriddenInputPathsAreRelativeToTheWorkingDirectory) {
  fs::path old = fs::current_path();
  fs::create_directories(dir_ / "cwd");
  std::ofstream(dir_ / "cwd" / "other.txt") << "x\n";
  fs::current_path(dir_ / "cwd");
  Job j = load(kPipeline, {"source.path=other.txt"});
  fs::current_path(old);
  EXPECT_NE(j.graph.describe(1).find("path=" + (dir_ / "cwd" / "other.txt").string()), std::string::npos);
}

TEST_F(JobTest, MalformedTomlNamesLineAndColumn) {
  EXPECT_EQ(error("[job]\nname = \"x\n"), "DIR/job.toml:2:10: Error while parsing string: unescaped control characters other than TAB (U+0009) are explicitly prohibited");
}

TEST_F(JobTest, UnknownKeysAreErrorsWithTheirLine) {
  std::string bad = kPipeline;
  bad.replace(bad.find("pattern"), 7, "patern");
  EXPECT_EQ(error(bad), "DIR/job.toml:12: [split] unknown key \"patern\"");
  EXPECT_EQ(error(kPipeline, {"split.patern=x"}), "--set split.patern: unknown key \"patern\" in [split]");
  EXPECT_EQ(error("[job]\nnam = 1\n[a]\ntype=\"generator\"\ncolumns={x=\"sequence\"}\n"),
            "DIR/job.toml:2: [job] unknown key \"nam\"");
}

TEST_F(JobTest, UnknownOperatorTypeSuggestsTheClosest) {
  std::string bad = kPipeline;
  bad.replace(bad.find("\"tokenize\""), 10, "\"tokenise\"");
  std::string e = error(bad);
  EXPECT_EQ(e.rfind("DIR/job.toml:10: [split] key \"type\": unknown operator type \"tokenise\" (did you mean \"tokenize\"?); known: ", 0), 0u) << e;
}

TEST_F(JobTest, WrongTypesAndRangesNameTheKey) {
  EXPECT_EQ(error(kPipeline, {"source.batch_size=abc"}), "--set source.batch_size: expected an integer, got a string");
  EXPECT_EQ(error(kPipeline, {"source.batch_size=0"}),
            "--set source.batch_size: must be between 1 and 1048576, got 0");
  std::string bad = kPipeline;
  bad.replace(bad.find("placement = 0"), 13, "placement = \"rank0\"");
  EXPECT_EQ(error(bad), "DIR/job.toml:7: [source] key \"placement\": expected \"all\", a rank, or a list of ranks, got \"rank0\"");
}

// Output paths: relative ones stay inside --out, and one file has one writer.
TEST_F(JobTest, OutputPathsStayInsideTheOutputFolderAndHaveOneWriter) {
  EXPECT_EQ(error(kPipeline, {"sink.path=../../x.csv"}),
            "--set sink.path: \"../../x.csv\" leaves the output folder; relative output paths are "
            "inside --out (give an absolute path to write elsewhere)");
  EXPECT_NE(error(kPipeline, {"sink.path=a/../../x.csv"}).find("leaves the output folder"), std::string::npos);
  EXPECT_EQ(error(kPipeline, {"sink.path=a/../x.csv"}), "(valid)");
  EXPECT_EQ(error(kPipeline, {"sink.path=" + (dir_ / "elsewhere.csv").string()}), "(valid)");
  EXPECT_EQ(error(kPipeline, {"sink.path=metrics.jsonl"}),
            "--set sink.path: writes DIR/out/metrics.jsonl, as the job's metrics.jsonl does (one "
            "file, one writer)");
  std::string two = std::string(kPipeline) +
                    "\n[sink2]\ntype = \"csv_sink\"\nfrom = \"split\"\npath = \"./words.csv\"\n";
  EXPECT_EQ(error(two), "DIR/job.toml:25: [sink2] key \"path\": writes DIR/out/words.csv, as [sink] "
                        "key \"path\" does (one file, one writer)");
}

TEST_F(JobTest, MaxDeadLettersIsACountOrAFraction) {
  EXPECT_EQ(load(kPipeline, {"job.max_dead_letters=1000"}).executor.max_dead_letters, 1000u);
  EXPECT_EQ(load(kPipeline, {"job.max_dead_letters=0.01"}).executor.max_dead_letter_fraction, 0.01);
  const std::string message =
      ": expected a count (an integer >= 0; 0: no limit) or a fraction of each operator's records "
      "(a number between 0 and 1), e.g. 1000 or 0.01";
  for (const char* bad : {"-1", "1.5", "nan", "\"many\""}) {
    EXPECT_EQ(error(kPipeline, {std::string("job.max_dead_letters=") + bad}),
              "--set job.max_dead_letters" + message)
        << bad;
  }
}

TEST_F(JobTest, JobNameIsOnePlainFolderName) {
  for (const char* bad : {"../../x", "a/b", "..", ""}) {
    EXPECT_EQ(error(kPipeline, {std::string("job.name=\"") + bad + "\""}),
              std::string("--set job.name: must be a plain name without '/' (it names the output "
                          "folder out/<name>), got \"") + bad + "\"")
        << bad;
  }
  EXPECT_EQ(error(kPipeline, {"job.name=\"my run 2\""}), "(valid)");
}

TEST_F(JobTest, MissingInputFileAndMissingKeys) {
  EXPECT_EQ(error(kPipeline, {"source.path=/no/such/file.txt"}), "input file /no/such/file.txt does not exist");
  EXPECT_EQ(error("[a]\ntype = \"text_source\"\n"), "DIR/job.toml:1: [a] missing key \"path\"");
  EXPECT_EQ(error("[a]\npath = \"x\"\n"), "DIR/job.toml:1: [a] missing key \"type\" (the operator type, e.g. type = \"text_source\")");
}

TEST_F(JobTest, EdgeMistakes) {
  std::string bad = kPipeline;
  bad.replace(bad.find("from = \"source\""), 15, "from = \"sourc\"");
  EXPECT_EQ(error(bad), "DIR/job.toml:11: [split] key \"from\": unknown operator \"sourc\"");
  EXPECT_EQ(error(kPipeline, {"split.routing=hash"}),
            "--set split.routing: unknown routing \"hash\" (known: round_robin, least_loaded, forward, key_hash, broadcast, "
            "broadcast_others, to_rank)");
  EXPECT_EQ(error(kPipeline, {"split.routing=key_hash"}),
            "--set split.routing: key_hash routing needs the key column: key = \"<column>\"");
  EXPECT_EQ(error(kPipeline, {"split.routing=key_hash(nope)"}),
            "edge source.out -> split.in: key column \"nope\" is not among the columns of source.out (line: string)");
  EXPECT_EQ(error(kPipeline, {"sink.rank=1"}),
            "edge split.out -> sink.in: to_rank(1) but \"sink\" has no instance on rank 1 (placement: rank 0)");
  // The short forms name the key column or rank; a separate key or rank must agree with them.
  EXPECT_EQ(error(kPipeline, {"sink.routing=to_rank(1)"}),
            "DIR/job.toml:18: [sink] key \"rank\": 0 contradicts routing = \"to_rank(1)\"; give the rank once");
  EXPECT_NO_THROW(load(kPipeline, {"sink.routing=to_rank(0)"}));
  EXPECT_EQ(error(kPipeline, {"split.routing=key_hash(line)", "split.key=word"}),
            "--set split.key: \"word\" contradicts routing = \"key_hash(line)\"; give the key column once");
}

TEST_F(JobTest, TooFewRanksForThePlacement) {
  EXPECT_EQ(error(kPipeline, {"source.placement=5"}),
            "operator \"source\": placement on rank 5 needs at least 6 ranks, the job has 2");
}

TEST_F(JobTest, UnconnectedAndMismatchedColumns) {
  std::string no_sink = kPipeline;
  no_sink = no_sink.substr(0, no_sink.find("[sink]"));
  EXPECT_EQ(error(no_sink), "operator \"split\": output port \"out\" is not connected");
  EXPECT_EQ(error(kPipeline, {"split.column=text"}),
            "operator \"split\": needs column \"text\", which is not among the columns arriving (line: string)");
}

TEST_F(JobTest, MissingJobFile) {
  try {
    load_job(dir_ / "nope.toml", {});
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
    EXPECT_EQ(std::string(e.what()), "job file " + (dir_ / "nope.toml").string() + " does not exist");
  }
}

TEST_F(JobTest, TableEntriesBecomeColumnsInFileOrder) {
  const char* job = R"toml([gen]
type = "generator"
count = 10
columns = { zeta = "sequence", alpha = "randint(3)" }

[sum]
type = "reduce"
from = "gen"
group_by = "alpha"
aggregate = { total = "sum(zeta)", n = "count", biggest = "max(zeta)" }

[out]
type = "stdout_sink"
from = "sum"
)toml";
  auto names = [](const std::optional<dataflow::Schema>& s) {
    std::vector<std::string> n;
    for (const auto& c : *s) n.push_back(c.name);
    return n;
  };
  Job j = load(job);
  const auto& gen = j.graph.operators()[0];
  EXPECT_EQ(names(gen.outputs[0].schema), (std::vector<std::string>{"zeta", "alpha"}));
  const auto& sum = j.graph.operators()[1];
  EXPECT_EQ(names(sum.def->infer_outputs({gen.outputs[0].schema})[0]),
            (std::vector<std::string>{"alpha", "total", "n", "biggest"}));
  // An entry that only --set adds comes after those of the file.
  Job k = load(job, {"sum.aggregate.least=min(zeta)"});
  EXPECT_EQ(names(k.graph.operators()[1].def->infer_outputs({gen.outputs[0].schema})[0]),
            (std::vector<std::string>{"alpha", "total", "n", "biggest", "least"}));
}

TEST_F(JobTest, EveryOperatorTypeIsListed) {
  auto types = operator_types();
  auto has = [&](const std::string& n) {
    return std::any_of(types.begin(), types.end(), [&](const auto& t) { return t.first == n; });
  };
  for (const char* n : {"text_source", "csv_source", "binary_source", "generator", "tokenize", "filter", "select",
                        "csv_sink", "jsonl_sink", "stdout_sink"}) {
    EXPECT_TRUE(has(n)) << n;
  }
}

}  // namespace
}  // namespace tensair::job

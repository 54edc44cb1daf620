// tabular_source: the drift benchmark files (Elec2, Weather, SEA), separators, features,
// label columns, standardisation, dead letters and misaligned label files.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "io_test_util.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/io/tabular.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"

namespace tensair::io {
namespace {

using test::TempDir;

std::vector<int64_t> class_counts(const dataflow::Batch& b, int classes) {
  std::vector<int64_t> c(static_cast<size_t>(classes), 0);
  for (int64_t r = 0; r < b.rows(); ++r) c.at(static_cast<size_t>(b.column("y").at<int64_t>(r)))++;
  return c;
}

TEST(TabularTest, Elec2RowsAndLabels) {
  const auto dir = data_dir() / "drift" / "elec2";
  for (int ranks : testing::rank_counts()) {
    TabularOptions o;
    o.data = dir / "elec2_data.dat.gz";
    o.labels = dir / "elec2_label.dat";
    o.source.batch_size = 1000;
    auto r = test::run_source(ranks, tabular_source(o));
    ASSERT_EQ(r.error(), "");
    ASSERT_EQ(r.rows.rows(), 45312) << "ranks " << ranks;
    EXPECT_EQ(r.dead_letters(), 0u);
    // shared/data/drift/README.md: 0 = 19,237, 1 = 26,075.
    EXPECT_EQ(class_counts(r.rows, 2), (std::vector<int64_t>{19237, 26075}));
    EXPECT_EQ(r.rows.column("x").record_shape(), std::vector<int64_t>{8});
    std::vector<bool> seen(45312, false);
    for (int64_t k = 0; k < r.rows.rows(); ++k) {
      int64_t id = r.rows.column("id").at<int64_t>(k);
      ASSERT_FALSE(seen[static_cast<size_t>(id)]);
      seen[static_cast<size_t>(id)] = true;
      if (id == 1) {
        // Line 2 of elec2_data.dat: "0 2 0.021277 0.051699 0.415055 0.003467 0.422915 0.414912", label 0.
        auto x = r.rows.column("x").values<float>().subspan(static_cast<size_t>(k) * 8, 8);
        std::vector<float> want = {0, 2, 0.021277f, 0.051699f, 0.415055f, 0.003467f, 0.422915f, 0.414912f};
        for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(x[i], want[i]);
        EXPECT_EQ(r.rows.column("y").at<int64_t>(k), 0);
      }
    }
  }
  // Gama et al.'s feature set: drop date (0) and nswprice (3).
  TabularOptions o;
  o.data = dir / "elec2_data.dat.gz";
  o.labels = dir / "elec2_label.dat";
  o.features = {1, 2, 4, 5, 6, 7};
  o.source.limit = 3;
  auto r = test::run_source(1, tabular_source(o));
  ASSERT_EQ(r.rows.rows(), 3);
  EXPECT_EQ(r.rows.column("x").record_shape(), std::vector<int64_t>{6});
  auto x = r.rows.column("x").values<float>();
  EXPECT_FLOAT_EQ(x[6 + 1], 0.021277f);  // row 1, period
  EXPECT_FLOAT_EQ(x[6 + 2], 0.415055f);  // row 1, nswdemand
}

TEST(TabularTest, CommaSeparatedWeatherAndSea) {
  const auto d = data_dir() / "drift";
  struct Case {
    std::filesystem::path data, labels;
    int64_t rows, d;
    std::vector<int64_t> counts;
  };
  // Counts from shared/data/drift/README.md.
  for (const Case& c : {Case{d / "weather" / "NEweather_data.csv.gz", d / "weather" / "NEweather_class.csv", 18159, 8, {12461, 5698}},
                        Case{d / "sea" / "SEA_training_data.csv.gz", d / "sea" / "SEA_training_class.csv", 50000, 3, {30952, 19048}}}) {
    TabularOptions o;
    o.data = c.data;
    o.labels = c.labels;
    auto def = tabular_source(o);
    EXPECT_NE(def->describe().find("separator=comma"), std::string::npos) << def->describe();
    auto r = test::run_source(2, def);
    ASSERT_EQ(r.error(), "");
    EXPECT_EQ(r.rows.rows(), c.rows);
    EXPECT_EQ(r.rows.column("x").record_shape(), std::vector<int64_t>{c.d});
    EXPECT_EQ(class_counts(r.rows, 2), c.counts);
  }
}

TEST(TabularTest, LabelFileShorterOrLongerThanTheDataIsAnError) {
  TempDir dir;
  test::write_file(dir / "d.txt", "1 2\n3 4\n5 6\n7 8\n");
  test::write_file(dir / "short.txt", "0\n1\n0\n");
  test::write_file(dir / "long.txt", "0\n1\n0\n1\n1\n");
  test::write_file(dir / "ok.txt", "0\n1\n0\n1\n\n");  // a trailing blank line is fine
  TabularOptions o;
  o.data = dir / "d.txt";
  o.labels = dir / "short.txt";
  for (int ranks : testing::rank_counts()) {
    auto r = test::run_source(ranks, tabular_source(o));
    EXPECT_NE(r.error().find("short.txt has 3 lines but d.txt has more rows: row 3 (d.txt:4) has no label"),
              std::string::npos)
        << r.error();
    EXPECT_EQ(r.outcomes[0].exit_code, 1);
  }
  o.labels = dir / "long.txt";
  auto r = test::run_source(1, tabular_source(o));
  EXPECT_NE(r.error().find("long.txt has more rows than d.txt: line 5 of the labels has no data row"), std::string::npos)
      << r.error();
  o.labels = dir / "ok.txt";
  auto ok = test::run_source(1, tabular_source(o));
  ASSERT_EQ(ok.error(), "");
  EXPECT_EQ(ok.rows.rows(), 4);
  EXPECT_EQ(ok.rows.column("y").at<int64_t>(3), 1);
}

TEST(TabularTest, BadFieldsAreDeadLettersNamingFileAndLine) {
  TempDir dir;
  test::write_file(dir / "d.csv", "1,2,0\n3,x,1\n5,6\n7,8,1.0\n9,10,?\n11,12,1\n");
  TabularOptions o;
  o.data = dir / "d.csv";
  o.label_column = -1;
  for (int ranks : testing::rank_counts()) {
    TempDir out;
    auto r = test::run_source(ranks, tabular_source(o), out.path());
    ASSERT_EQ(r.error(), "");
    ASSERT_EQ(r.rows.rows(), 3);
    EXPECT_EQ(r.dead_letters(), 3u);
    std::string dead = test::read_file(out / "dead_letters.jsonl");
    EXPECT_NE(dead.find("d.csv:2: field 1: cannot read \\\"x\\\" as a number"), std::string::npos) << dead;
    EXPECT_NE(dead.find("d.csv:3: 2 fields, expected 3"), std::string::npos) << dead;
    EXPECT_NE(dead.find("d.csv:5: label field 2: cannot read \\\"?\\\" as an integer"), std::string::npos) << dead;
    std::map<int64_t, std::pair<float, int64_t>> got;
    for (int64_t k = 0; k < r.rows.rows(); ++k) {
      got[r.rows.column("id").at<int64_t>(k)] = {r.rows.column("x").values<float>()[static_cast<size_t>(2 * k)],
                                                 r.rows.column("y").at<int64_t>(k)};
    }
    EXPECT_EQ(got, (std::map<int64_t, std::pair<float, int64_t>>{{0, {1.f, 0}}, {3, {7.f, 1}}, {5, {11.f, 1}}}));
  }
  // A bad label in a label file names that file.
  test::write_file(dir / "x.txt", "1\n2\n");
  test::write_file(dir / "y.txt", "1\nyes\n");
  TabularOptions l;
  l.data = dir / "x.txt";
  l.labels = dir / "y.txt";
  TempDir out;
  auto r = test::run_source(1, tabular_source(l), out.path());
  EXPECT_EQ(r.rows.rows(), 1);
  EXPECT_NE(test::read_file(out / "dead_letters.jsonl").find("y.txt:2: cannot read label \\\"yes\\\""), std::string::npos);
}

// A label outside the declared classes (label 7 in a 2-class stream) and a feature that reads as
// nan or inf are dead letters naming file and line; the model could only name the id.
TEST(TabularTest, LabelsOutsideTheClassesAndNonFiniteFeaturesAreDeadLettersNamingTheLine) {
  TempDir dir;
  test::write_file(dir / "d.csv", "1,2,0\n3,4,7\nnan,6,1\n7,inf,0\n9,10,-1\n11,12,1\n");
  TabularOptions o;
  o.data = dir / "d.csv";
  o.label_column = -1;
  o.classes = 2;
  for (int ranks : testing::rank_counts()) {
    TempDir out;
    auto r = test::run_source(ranks, tabular_source(o), out.path());
    ASSERT_EQ(r.error(), "");
    EXPECT_EQ(r.rows.rows(), 2) << "ranks " << ranks;  // rows 0 and 5
    EXPECT_EQ(r.dead_letters(), 4u);
    const std::string dead = test::read_file(out / "dead_letters.jsonl");
    for (const char* want : {R"x(d.csv:2: label 7 is outside 0..1 (classes = 2)")x"
                             R"x(,"record":"3,4,7")x",
                             R"(d.csv:3: field 0: \"nan\" is not a finite number)",
                             R"(d.csv:4: field 1: \"inf\" is not a finite number)",
                             "d.csv:5: label -1 is outside 0..1 (classes = 2)"}) {
      EXPECT_NE(dead.find(want), std::string::npos) << want << "\n" << dead;
    }
  }
  // From a label file: the label file's name and line.
  test::write_file(dir / "x.txt", "1\n2\n3\n");
  test::write_file(dir / "y.txt", "1\n2\n0\n");
  TabularOptions l;
  l.data = dir / "x.txt";
  l.labels = dir / "y.txt";
  l.classes = 2;
  TempDir out;
  auto r = test::run_source(1, tabular_source(l), out.path());
  EXPECT_EQ(r.rows.rows(), 2);
  EXPECT_NE(test::read_file(out / "dead_letters.jsonl").find("y.txt:2: label 2 is outside 0..1"),
            std::string::npos);
  // Without `classes` the reader does not check labels (the model does, by id).
  l.classes = 0;
  EXPECT_EQ(test::run_source(1, tabular_source(l)).rows.rows(), 3);
  l.classes = -1;
  EXPECT_THROW(tabular_source(l), ConfigError);
}

TEST(TabularTest, StandardizeUsesRunningMeanAndStd) {
  TempDir dir;
  std::string text;
  std::vector<double> a, b;
  for (int i = 0; i < 200; ++i) {
    a.push_back(std::sin(i) * 10 + 3);
    b.push_back(i * 0.5);
    text += std::to_string(a.back()) + "\t" + std::to_string(b.back()) + "  " + std::to_string(i % 3) + "\n";
  }
  test::write_file(dir / "t.txt", text);
  TabularOptions o;
  o.data = dir / "t.txt";
  o.label_column = 2;
  o.standardize = true;
  auto r = test::run_source(1, tabular_source(o));
  ASSERT_EQ(r.rows.rows(), 200);
  auto x = r.rows.column("x").values<float>();
  // Reference: the mean and sample std of the first n values, computed directly.
  for (int n : {1, 2, 10, 200}) {
    for (int f = 0; f < 2; ++f) {
      const auto& v = f == 0 ? a : b;
      // The file holds the values printed with 6 decimals, as the reader sees them.
      std::vector<double> seen;
      for (int i = 0; i < n; ++i) seen.push_back(static_cast<float>(std::stod(std::to_string(v[static_cast<size_t>(i)]))));
      double mean = std::accumulate(seen.begin(), seen.end(), 0.0) / n;
      double ss = 0;
      for (double s : seen) ss += (s - mean) * (s - mean);
      double sd = n > 1 ? std::sqrt(ss / (n - 1)) : 0;
      double want = sd > 0 ? (seen.back() - mean) / sd : 0;
      EXPECT_NEAR(x[static_cast<size_t>((n - 1) * 2 + f)], want, 1e-4) << "row " << n - 1 << " feature " << f;
    }
  }
  EXPECT_EQ(r.rows.column("y").at<int64_t>(5), 2);
}

TEST(TabularTest, OptionErrors) {
  TempDir dir;
  test::write_file(dir / "d.txt", "1 2 3\n");
  TabularOptions o;
  o.data = dir / "d.txt";
  EXPECT_THROW(tabular_source(o), ConfigError);  // no labels
  o.label_column = 3;
  EXPECT_THROW(tabular_source(o), ConfigError);  // out of range
  o.label_column = 0;
  o.features = {0};
  EXPECT_THROW(tabular_source(o), ConfigError);  // feature is the label
  o.features = {2, 1};
  auto def = tabular_source(o);
  EXPECT_EQ(dataflow::schema_to_string(*def->outputs()[0].schema), "id: int64, x: float32[2], y: int64");
  o.labels = dir / "none.txt";
  o.label_column.reset();
  EXPECT_THROW(tabular_source(o), IoError);
}

TEST(TabularTest, JobFileKeys) {
  register_job_types();
  TempDir dir;
  const auto elec = data_dir() / "drift" / "elec2";
  test::write_file(dir / "job.toml", "[src]\ntype = \"tabular_source\"\ndata = \"" + (elec / "elec2_data.dat.gz").string() +
                                         "\"\nlabels = \"" + (elec / "elec2_label.dat").string() +
                                         "\"\nfeatures = [1, 2, 4, 5, 6, 7]\nstandardize = true\nlimit = 10\n"
                                         "[sink]\ntype = \"stdout_sink\"\nfrom = \"src\"\ncolumns = [\"id\"]\n");
  auto jb = job::load_job(dir / "job.toml", {});
  const auto& node = jb.graph.operators()[static_cast<size_t>(jb.graph.find("src"))];
  EXPECT_EQ(dataflow::schema_to_string(*node.outputs[0].schema), "id: int64, x: float32[6], y: int64");
  test::write_file(dir / "bad.toml", "[src]\ntype = \"tabular_source\"\ndata = \"" + (elec / "elec2_data.dat.gz").string() +
                                         "\"\n[sink]\ntype = \"stdout_sink\"\nfrom = \"src\"\n");
  try {
    job::load_job(dir / "bad.toml", {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("key \"labels\": missing"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tensair::io

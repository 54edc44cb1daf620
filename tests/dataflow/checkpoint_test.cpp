// Job-wide checkpoints: the barrier bookkeeping (SnapshotTracker), the coordinator's schedule,
// the checkpoint files, and whole jobs that fail or stop in the middle and resume: their output
// equals an uninterrupted run's, every record counted once. Ranks are in-process (LocalCluster)
// at 1, 2 and 3; tests/e2e kills real processes under mpirun.
#include "tensair/dataflow/checkpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "dataflow/checkpoint_coordinator.hpp"
#include "dataflow/inbox.hpp"
#include "dataflow/snapshot_tracker.hpp"
#include "tensair/dataflow/state.hpp"
#include "testing/harness.hpp"
#include "testing/lambda_op.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::dataflow {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using detail::CheckpointCoordinator;
using detail::SnapshotTracker;
using testing::lambda_op;
using testing::TempDir;

// SnapshotTracker -------------------------------------------------------------------------------

TEST(SnapshotTrackerTest, SnapshotsAtTheFirstBarrierAndRecordsTheOtherChannelsUntilTheirs) {
  SnapshotTracker t({1, 2, 3}, {true, true, true}, 0, false);
  EXPECT_FALSE(t.records(2));
  auto s = t.on_barrier(2, 1);
  EXPECT_EQ(s.snapshot, 1u);
  EXPECT_EQ(s.complete, 0u);
  EXPECT_TRUE(t.records(1));
  EXPECT_FALSE(t.records(2));  // its barrier came: what follows is after the cut
  EXPECT_TRUE(t.records(3));
  s = t.on_barrier(1, 1);
  EXPECT_EQ(s.snapshot, 0u);
  EXPECT_EQ(s.complete, 0u);
  // An end of stream ends the recording of its channel like a barrier would.
  EXPECT_TRUE(t.records(3));
  s = t.on_end_of_stream(3);
  EXPECT_EQ(s.complete, 1u);
  EXPECT_FALSE(t.records(1));
  EXPECT_EQ(t.done(), 1u);
  // The next checkpoint starts afresh on the channels still live.
  s = t.on_barrier(1, 2);
  EXPECT_EQ(s.snapshot, 2u);
  EXPECT_TRUE(t.records(2));
  EXPECT_FALSE(t.records(3));  // ended
}

TEST(SnapshotTrackerTest, OneInputCompletesAtOnceAndOldBarriersAreIgnored) {
  SnapshotTracker t({7}, {true}, /*done=*/4, false);
  EXPECT_EQ(t.on_barrier(7, 4).snapshot, 0u);  // the checkpoint it was restored from
  auto s = t.on_barrier(7, 5);
  EXPECT_EQ(s.snapshot, 5u);
  EXPECT_EQ(s.complete, 5u);
}

TEST(SnapshotTrackerTest, SourcesAndCycleMembersSnapshotOnTheTriggerOnceNoOutsideInputIsLive) {
  SnapshotTracker source({}, {}, 0, true);
  auto s = source.on_trigger(1);
  EXPECT_EQ(s.snapshot, 1u);
  EXPECT_EQ(s.complete, 1u);
  // A replica: train (outside) and exchange (cycle) inputs.
  SnapshotTracker replica({10, 20}, {true, false}, 0, true);
  EXPECT_EQ(replica.on_trigger(1).snapshot, 0u);  // its train input will bring the barrier
  s = replica.on_end_of_stream(10);               // ... or end: then it snapshots by itself
  EXPECT_EQ(s.snapshot, 1u);
  EXPECT_TRUE(replica.records(20));
  EXPECT_EQ(replica.on_barrier(20, 1).complete, 1u);
  // An operator on no cycle whose inputs all ended finishes instead; it reports "finished".
  SnapshotTracker sink({3}, {true}, 0, false);
  sink.on_trigger(1);
  EXPECT_EQ(sink.on_end_of_stream(3).snapshot, 0u);
  auto f = sink.on_finish();
  EXPECT_EQ(f.complete, 0u);
  EXPECT_EQ(f.finished, 1u);
}

TEST(SnapshotTrackerTest, FinishingCompletesARecordingInProgress) {
  SnapshotTracker t({1, 2}, {false, false}, 0, true);  // both on the cycle
  t.on_barrier(1, 3);
  EXPECT_TRUE(t.records(2));
  auto f = t.on_finish();  // the cycle terminated: nothing more will come
  EXPECT_EQ(f.complete, 3u);
  EXPECT_EQ(f.finished, 0u);
}

// Inbox: barriers overtake ----------------------------------------------------------------------

TEST(InboxTest, ABarrierOvertakesItsChannelsQueuedBatchesAndTakesThemAlong) {
  Inbox inbox({0, 5});
  auto data = [](int port, uint32_t channel, int64_t v) {
    InboxItem i;
    i.port = port;
    i.channel = channel;
    i.batch = share(testing::int64_batch({{"v", {v}}}));
    return i;
  };
  inbox.push(data(0, 1, 10));
  inbox.push(data(0, 2, 20));
  inbox.push(data(0, 1, 11));
  InboxItem end;
  end.kind = InboxItem::Kind::kEndOfStream;
  end.channel = 1;
  inbox.push(end);
  inbox.pause(0);  // a paused port still serves a barrier at its head
  InboxItem barrier;
  barrier.kind = InboxItem::Kind::kBarrier;
  barrier.channel = 1;
  barrier.id = 4;
  inbox.push(barrier);
  InboxItem out;
  ASSERT_EQ(inbox.pop(out, Clock::now() + std::chrono::seconds(5)), Inbox::Pop::kItem);
  ASSERT_EQ(out.kind, InboxItem::Kind::kBarrier);
  ASSERT_EQ(out.overtaken.size(), 2u);  // channel 1's two batches, not channel 2's
  EXPECT_EQ(out.overtaken[0]->column("v").at<int64_t>(0), 10);
  EXPECT_EQ(out.overtaken[1]->column("v").at<int64_t>(0), 11);
  EXPECT_TRUE(out.overtook_end);
  EXPECT_EQ(inbox.pop(out, Clock::now() + std::chrono::milliseconds(20)), Inbox::Pop::kTimeout);
  inbox.resume(0);
  // What it overtook is still delivered, in the channels' order.
  std::vector<int64_t> order;
  while (inbox.pop(out, Clock::now() + std::chrono::milliseconds(20)) == Inbox::Pop::kItem) {
    order.push_back(out.kind == InboxItem::Kind::kData ? out.batch->column("v").at<int64_t>(0) : -1);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{10, 20, 11, -1}));
}

// CheckpointCoordinator ------------------------------------------------------------------------

TEST(CheckpointCoordinatorTest, OneAtATimeAndTheStopComesAfterTheOneInFlight) {
  using Clock = CheckpointCoordinator::Clock;
  CheckpointOptions o;
  o.enabled = true;
  o.every_s = 10;
  const auto t0 = Clock::now();
  CheckpointCoordinator c(o, 2, 7, t0);
  EXPECT_FALSE(c.due(t0 + std::chrono::seconds(5)));
  auto first = c.due(t0 + std::chrono::seconds(11));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, 7u);
  EXPECT_EQ(first->reason, "interval");
  c.request_stop();
  EXPECT_FALSE(c.due(t0 + std::chrono::seconds(30)));  // 7 is in flight
  EXPECT_FALSE(c.rank_done(7, 0, {{"rank-0.state", 0, 10, 1}}, ""));
  EXPECT_FALSE(c.rank_done(7, 0, {}, ""));  // a rank reports once
  EXPECT_TRUE(c.rank_done(7, 1, {{"rank-1.state", 1, 12, 2}}, ""));
  EXPECT_EQ(c.current().files.size(), 2u);
  c.settled(t0 + std::chrono::seconds(31));
  auto stop = c.due(t0 + std::chrono::seconds(31));
  ASSERT_TRUE(stop);
  EXPECT_TRUE(stop->stop);
  EXPECT_EQ(stop->id, 8u);
  c.settled(t0 + std::chrono::seconds(32));
  EXPECT_FALSE(c.due(t0 + std::chrono::seconds(100)));  // nothing after the stop
}

TEST(CheckpointCoordinatorTest, ARequestStartsOneAndClosedStartsNone) {
  using Clock = CheckpointCoordinator::Clock;
  CheckpointOptions o;
  o.enabled = true;
  const auto t0 = Clock::now();
  CheckpointCoordinator c(o, 1, 1, t0);
  EXPECT_FALSE(c.due(t0 + std::chrono::hours(1)));  // not by time
  c.request();
  auto t = c.due(t0);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->reason, "records");
  EXPECT_TRUE(c.rank_done(1, 0, {}, "disk full"));
  EXPECT_EQ(c.current().error, "disk full");
  c.settled(t0);
  c.close();
  c.request();
  EXPECT_FALSE(c.due(t0));
}

// Checkpoint files -------------------------------------------------------------------------------

TEST(CheckpointFilesTest, ManifestsListVerifyAndPrune) {
  TempDir dir;
  for (uint64_t id : {1, 2, 3, 4}) {
    const fs::path folder = dir / checkpoint_folder_name(id);
    const std::string data = "state of checkpoint " + std::to_string(id);
    write_file_durably(folder / "rank-0.state", data);
    if (id == 4) continue;  // cut short: no manifest
    CheckpointManifest m;
    m.job = "j";
    m.id = id;
    m.ranks = 1;
    m.files.push_back({"rank-0.state", 0, data.size(), checksum(data)});
    write_file_durably(folder / kManifestName, m.to_json().dump());
  }
  EXPECT_EQ(checkpoint_folder_name(12), "ckpt-000012");
  EXPECT_EQ(parse_checkpoint_folder_name("ckpt-000012"), std::optional<uint64_t>(12));
  EXPECT_FALSE(parse_checkpoint_folder_name("ckpt-12x"));
  auto listed = list_checkpoints(dir.path());
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed.front().first, 3u);  // newest first; 4 has no manifest
  EXPECT_EQ(highest_checkpoint_id(dir.path()), 4u);
  CheckpointManifest m = read_manifest(listed.front().second);
  EXPECT_EQ(m.id, 3u);
  EXPECT_EQ(verify_checkpoint_file(listed.front().second, m.files[0]), "");
  // A flipped byte and a truncation are found.
  const fs::path f = listed.front().second / "rank-0.state";
  {
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(3);
    io.put('X');
  }
  EXPECT_EQ(verify_checkpoint_file(listed.front().second, m.files[0]),
            "rank-0.state fails its checksum (the file is damaged)");
  fs::resize_file(f, 4);
  EXPECT_NE(verify_checkpoint_file(listed.front().second, m.files[0])
                .find("has 4 bytes, the manifest says"),
            std::string::npos);
  // A damaged manifest is one line naming it.
  std::ofstream(listed.front().second / kManifestName) << "{\"format\": 1, \"job\": ";
  try {
    read_manifest(listed.front().second);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("is not valid JSON"), std::string::npos) << e.what();
  }
  // Pruning keeps the newest complete ones and drops what was cut short before them.
  auto removed = prune_checkpoints(dir.path(), 2);
  EXPECT_EQ(removed, std::vector<uint64_t>({1}));
  EXPECT_TRUE(fs::exists(dir / checkpoint_folder_name(4)));  // newer than every complete one
  EXPECT_FALSE(fs::exists(dir / checkpoint_folder_name(1)));
}

// A manifest's integers are checked for type and range before they are read: nlohmann's get<>
// would cast 3.7e22 into a uint32_t (undefined behaviour; found by fuzz_checkpoint).
TEST(CheckpointFilesTest, AManifestIntegerOfTheWrongTypeOrRangeIsOneLineNamingTheField) {
  TempDir dir;
  CheckpointManifest m;
  m.job = "j";
  m.id = 1;
  m.ranks = 1;
  m.files.push_back({"rank-0.state", 0, 16, 7});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"crc32", "manifest field \"crc32\" is 3.7063e+22, not an integer in 0..4294967295"},
      {"rank", "manifest field \"rank\" is -1.5, not an integer in -2147483648..2147483647"},
      {"bytes", "manifest field \"bytes\" is -3, not an integer in 0..18446744073709551615"},
      {"ranks",
       "manifest field \"ranks\" is 4294967296, not an integer in -2147483648..2147483647"},
  };
  for (const auto& [field, error] : cases) {
    SCOPED_TRACE(field);
    nlohmann::json j = m.to_json();
    nlohmann::json& target = field == "ranks" ? j : j["files"][0];
    if (field == "crc32") target[field] = 3.7063e22;
    if (field == "rank") target[field] = -1.5;
    if (field == "bytes") target[field] = -3;
    if (field == "ranks") target[field] = 4294967296LL;
    try {
      CheckpointManifest::from_json(j);
      ADD_FAILURE() << "accepted";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()), error);
    }
  }
  EXPECT_EQ(CheckpointManifest::from_json(m.to_json()).files.at(0).crc32, 7u);
}

TEST(CheckpointFilesTest, ADurableWriteThatCannotHappenNamesThePath) {
  TempDir dir;
  std::ofstream(dir / "plain") << "a file, not a folder";
  try {
    write_file_durably(dir / "plain" / "rank-0.state", "x");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(
        std::string(e.what()).find("cannot write " + (dir / "plain" / "rank-0.state.tmp").string()),
        std::string::npos)
        << e.what();
  }
}

// Whole jobs -------------------------------------------------------------------------------------

// The output of a job's sinks, as an exactly-once sink would leave it: rows per sink instance,
// cut back on restore to what its checkpointed snapshot says it had written (like a file sink
// truncating to its checkpointed length).
struct Store {
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> rows;  // "sink#instance" -> rows

  std::map<std::string, std::vector<std::string>> sorted() {
    std::lock_guard lock(mu);
    auto out = rows;
    for (auto& [k, v] : out) std::sort(v.begin(), v.end());
    return out;
  }
};

std::shared_ptr<const OperatorDef> store_sink(std::shared_ptr<Store> store) {
  struct Sink final : Operator {
    std::shared_ptr<Store> store;
    std::string key;
    void process(int, const BatchPtr& b, Context&) override {
      std::lock_guard lock(store->mu);
      auto& rows = store->rows[key];
      for (int64_t r = 0; r < b->rows(); ++r) {
        std::string row;
        for (const Column& c : b->columns())
          row += c.name() + "=" + std::to_string(c.as_int64(r)) + " ";
        rows.push_back(row);
      }
    }
    void snapshot(StateWriter& w, Context&) override {
      std::lock_guard lock(store->mu);
      w.put<uint64_t>(store->rows[key].size());
    }
    void restore(StateReader& r, Context&) override {
      const auto n = r.get<uint64_t>();
      std::lock_guard lock(store->mu);
      auto& rows = store->rows[key];
      if (rows.size() < n) r.fail("the store lost rows");
      rows.resize(n);
    }
  };
  return lambda_op({"store_sink", {{"in"}}, {}, [store](const InstanceInfo& info) {
                      auto s = std::make_unique<Sink>();
                      s->store = store;
                      s->key = info.name + "#" + std::to_string(info.instance);
                      return s;
                    }});
}

// Faults and stops injected into a run.
struct Control {
  std::atomic<int64_t> fail_after{
      -1};  // source instance 0 throws after this many batches (-1: never)
  std::atomic<int64_t> stop_after{-1};  // ... or sets `stop` to SIGINT
  std::atomic<int> stop{0};
  std::atomic<int64_t> produced{0};  // batches all source instances emitted in this run
};

// Values i, i + n, i + 2n, ... below `total` (instance i of n), `rows` per batch; 1 ms between
// batches, so checkpoints fall in the middle. Its state: the next value.
std::shared_ptr<const OperatorDef> counting_source(int64_t total, int64_t rows,
                                                   std::shared_ptr<Control> ctl) {
  struct Source final : Operator {
    int64_t next = 0, step = 1, total = 0, rows = 0, emitted = 0;
    bool first = false;
    uint64_t completed = 0;
    std::shared_ptr<Control> ctl;
    SourceState produce(Context& ctx) override {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      // A fault due before any checkpoint completed (a loaded machine) waits for one, so that
      // the run always has a checkpoint to resume from.
      if (first && completed == 0 && next < total &&
          ((ctl->fail_after >= 0 && emitted + 1 >= ctl->fail_after) ||
           (ctl->stop_after >= 0 && emitted + 1 >= ctl->stop_after)))
        return SourceState::kMore;
      std::vector<int64_t> v;
      while (next < total && static_cast<int64_t>(v.size()) < rows) {
        v.push_back(next);
        next += step;
      }
      if (!v.empty()) ctx.emit(0, testing::int64_batch({{"v", v}}));
      ++emitted;
      ctl->produced++;
      // Faults only once a checkpoint completed, so that there is one to resume from.
      if (first && completed > 0 && ctl->fail_after >= 0 && emitted >= ctl->fail_after) {
        throw DataError("injected failure");
      }
      if (first && completed > 0 && ctl->stop_after >= 0 && emitted >= ctl->stop_after)
        ctl->stop = SIGINT;
      return next < total ? SourceState::kMore : SourceState::kDone;
    }
    void on_checkpoint_complete(uint64_t, Context&) override { ++completed; }
    void snapshot(StateWriter& w, Context&) override {
      w.put<int64_t>(next);
      w.put<int64_t>(emitted);
    }
    void restore(StateReader& r, Context&) override {
      next = r.get<int64_t>();
      emitted = r.get<int64_t>();
    }
  };
  return lambda_op({"counting_source",
                    {},
                    {{"out", Schema{{"v", DType::kInt64, {}}}}},
                    [=](const InstanceInfo& info) {
                      auto s = std::make_unique<Source>();
                      s->next = info.instance;
                      s->step = info.instances;
                      s->total = total;
                      s->rows = rows;
                      s->ctl = ctl;
                      s->first = info.instance == 0;
                      return s;
                    }});
}

// v -> (v, v*v): stateless.
std::shared_ptr<const OperatorDef> square() {
  struct Square final : Operator {
    void process(int, const BatchPtr& b, Context& ctx) override {
      ColumnBuilder sq({"sq", DType::kInt64, {}});
      for (int64_t v : b->column("v").values<int64_t>()) sq.append<int64_t>(v * v);
      ctx.emit(0, b->with_column(sq.finish()));
    }
  };
  return lambda_op({"square", {{"in"}}, {{"out"}}, [](const InstanceInfo&) {
                      return std::make_unique<Square>();
                    }});
}

// Per key (v mod 7): the count and the sum of sq, emitted sorted by key at the end. Its state:
// the table.
std::shared_ptr<const OperatorDef> sum_by_key() {
  struct Sum final : Operator {
    std::map<int64_t, std::pair<int64_t, int64_t>> table;
    void process(int, const BatchPtr& b, Context&) override {
      auto v = b->column("v").values<int64_t>();
      auto sq = b->column("sq").values<int64_t>();
      for (size_t i = 0; i < v.size(); ++i) {
        auto& [n, s] = table[v[i] % 7];
        ++n;
        s += sq[i];
      }
    }
    void on_finish(Context& ctx) override {
      std::vector<int64_t> k, n, s;
      for (const auto& [key, e] : table) {
        k.push_back(key);
        n.push_back(e.first);
        s.push_back(e.second);
      }
      ctx.emit(0, testing::int64_batch({{"key", k}, {"n", n}, {"sum", s}}));
    }
    void snapshot(StateWriter& w, Context&) override {
      w.put<uint64_t>(table.size());
      for (const auto& [key, e] : table) {
        w.put(key);
        w.put(e.first);
        w.put(e.second);
      }
    }
    void restore(StateReader& r, Context&) override {
      for (uint64_t i = 0, n = r.get_count(24); i < n; ++i) {
        auto key = r.get<int64_t>();
        auto n_ = r.get<int64_t>();
        table[key] = {n_, r.get<int64_t>()};
      }
    }
  };
  return lambda_op({"sum_by_key", {{"in"}}, {{"out"}}, [](const InstanceInfo&) {
                      return std::make_unique<Sum>();
                    }});
}

constexpr int64_t kTotal = 6000;

// source (all ranks) -> square (round robin) -> records sink on rank 0, and
// square -> sum_by_key (by key) -> sums sink (forward).
void build_job(Graph& g, std::shared_ptr<Store> store, std::shared_ptr<Control> ctl) {
  g.add("source", counting_source(kTotal, 20, ctl));
  g.add("square", square());
  g.add("records", store_sink(store), Placement::on(0));
  g.add("sum", sum_by_key());
  g.add("sums", store_sink(store));
  g.connect("source", "square", Routing::round_robin());
  g.connect("square", "records", Routing::to_rank(0));
  g.connect("square", "sum", Routing::key_hash("v"));
  g.connect("sum", "sums", Routing::forward());
}

struct JobRun {
  std::vector<testing::RankOutcome> outcomes;
  std::optional<std::string> error() const {
    for (const auto& o : outcomes) {
      if (o.error) return o.error;
    }
    return std::nullopt;
  }
};

JobRun run_job(int ranks, const fs::path& out, std::shared_ptr<Store> store,
               std::shared_ptr<Control> ctl, bool checkpoints, const std::string& resume = "") {
  ExecutorOptions eo;
  eo.out_dir = out;
  eo.job_name = "ckpt_test";
  eo.metrics_interval_s = 60;
  eo.checkpoint.enabled = checkpoints;
  eo.checkpoint.every_s = 0.01;
  eo.resume = resume;
  eo.stop_signal = &ctl->stop;
  JobRun r;
  r.outcomes = testing::run_graph(
      ranks, [&](Graph& g, int, int) { build_job(g, store, ctl); }, eo);
  return r;
}

std::map<std::string, std::vector<std::string>> reference_output(int ranks) {
  TempDir dir;
  auto store = std::make_shared<Store>();
  auto ctl = std::make_shared<Control>();
  JobRun r = run_job(ranks, dir.path(), store, ctl, false);
  EXPECT_FALSE(r.error()) << *r.error();
  return store->sorted();
}

TEST(CheckpointJobTest, AFailureThenResumeGivesTheUninterruptedOutput) {
  for (int ranks : testing::rank_counts()) {
    const auto expected = reference_output(ranks);
    ASSERT_EQ(expected.at("records#0").size(), static_cast<size_t>(kTotal));
    for (int64_t fail_after : {5, 40, 90}) {  // instance 0 emits 100 to 300 batches
      TempDir dir;
      auto store = std::make_shared<Store>();
      auto ctl = std::make_shared<Control>();
      ctl->fail_after = fail_after;
      JobRun first = run_job(ranks, dir.path(), store, ctl, true);
      ASSERT_TRUE(first.error()) << ranks << " ranks: the injected failure did not happen";
      EXPECT_NE(first.error()->find("injected failure"), std::string::npos) << *first.error();
      ctl->fail_after = -1;
      ctl->produced = 0;
      JobRun second = run_job(ranks, dir.path(), store, ctl, true, "latest");
      ASSERT_FALSE(second.error()) << *second.error();
      for (const auto& o : second.outcomes) EXPECT_GT(o.outcome.resumed_from, 0u);
      // It resumed where the checkpoint was, not from the beginning.
      EXPECT_LT(ctl->produced.load(), kTotal / 20) << ranks << " ranks";
      EXPECT_EQ(store->sorted(), expected)
          << ranks << " ranks, failure after " << fail_after << " batches";
    }
  }
}

TEST(CheckpointJobTest, AStopTakesALastCheckpointDrainsAndResumesWhereItStopped) {
  for (int ranks : testing::rank_counts()) {
    const auto expected = reference_output(ranks);
    TempDir dir;
    auto store = std::make_shared<Store>();
    auto ctl = std::make_shared<Control>();
    ctl->stop_after = 30;
    JobRun first = run_job(ranks, dir.path(), store, ctl, true);
    ASSERT_FALSE(first.error()) << *first.error();
    for (const auto& o : first.outcomes) {
      EXPECT_EQ(o.outcome.status, RunOutcome::Status::kStopped);
      EXPECT_EQ(o.outcome.signal, SIGINT);
    }
    // The stop drained the job as an end of stream does: the sums of the records so far are out.
    {
      auto partial = store->sorted();
      EXPECT_LT(partial["records#0"].size(), static_cast<size_t>(kTotal));
      EXPECT_FALSE(partial["sums#0"].empty());
    }
    auto manifests = list_checkpoints(dir / "checkpoints");
    ASSERT_FALSE(manifests.empty());
    EXPECT_EQ(read_manifest(manifests.front().second).reason, "stop");
    ctl->stop_after = -1;
    ctl->stop = 0;
    JobRun second = run_job(ranks, dir.path(), store, ctl, true, "latest");
    ASSERT_FALSE(second.error()) << *second.error();
    EXPECT_EQ(store->sorted(), expected) << ranks << " ranks";
  }
}

TEST(CheckpointJobTest, ADamagedLatestCheckpointIsSkippedAndAnExplicitOneRefused) {
  const int ranks = testing::rank_counts().back();
  const auto expected = reference_output(ranks);
  TempDir dir;
  auto store = std::make_shared<Store>();
  auto ctl = std::make_shared<Control>();
  ctl->fail_after = 90;
  ASSERT_TRUE(run_job(ranks, dir.path(), store, ctl, true).error());
  auto manifests = list_checkpoints(dir / "checkpoints");
  ASSERT_GE(manifests.size(), 2u);
  const fs::path newest = manifests[0].second;
  // One flipped byte in the newest checkpoint's file of rank 0.
  {
    std::fstream io(newest / "rank-0.state", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(20);
    char c = 0;
    io.read(&c, 1);
    io.seekp(20);
    io.put(static_cast<char>(c ^ 0x5a));
  }
  // Named explicitly, it is refused with the reason.
  ctl->fail_after = -1;
  auto refused = run_job(ranks, dir.path(), store, ctl, true, newest.string());
  ASSERT_TRUE(refused.error());
  EXPECT_NE(refused.error()->find("cannot be used: "), std::string::npos) << *refused.error();
  EXPECT_NE(refused.error()->find("rank-0.state fails its checksum"), std::string::npos)
      << *refused.error();
  for (const auto& o : refused.outcomes) EXPECT_EQ(o.exit_code, 2);
  // As "latest", the previous one is used instead, and the output is still exact.
  JobRun resumed = run_job(ranks, dir.path(), store, ctl, true, "latest");
  ASSERT_FALSE(resumed.error()) << *resumed.error();
  for (const auto& o : resumed.outcomes) EXPECT_EQ(o.outcome.resumed_from, manifests[1].first);
  EXPECT_EQ(store->sorted(), expected);
}

TEST(CheckpointJobTest, ACheckpointOfAnotherRankCountOrNoneAtAllIsOneClearError) {
  if (testing::under_mpi()) GTEST_SKIP() << "needs two rank counts";
  TempDir dir;
  auto store = std::make_shared<Store>();
  auto ctl = std::make_shared<Control>();
  ctl->stop_after = 20;
  ASSERT_FALSE(run_job(2, dir.path(), store, ctl, true).error());
  ctl->stop = 0;
  ctl->stop_after = -1;
  auto other = run_job(3, dir.path(), store, ctl, true, "latest");
  ASSERT_TRUE(other.error());
  EXPECT_NE(other.error()->find("it was taken on 2 ranks and this run has 3"), std::string::npos)
      << *other.error();
  TempDir empty;
  auto none = run_job(1, empty.path(), store, ctl, true, "latest");
  ASSERT_TRUE(none.error());
  EXPECT_NE(none.error()->find("no checkpoint to resume from in"), std::string::npos)
      << *none.error();
}

}  // namespace
}  // namespace tensair::dataflow

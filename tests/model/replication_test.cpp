// Replication without threads or MPI: replicas exchange through a simulated link whose channels
// have credit, in a random but seeded order. Checks the exchange's guarantees: every update is
// applied once by every replica (versions and weights equal), memory per peer stays within one
// pending update and the credit, a snapshot taken mid-way restores a replica that carries on
// to the same end, and the sync and bounded-staleness rules.
#include "model/replication.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <deque>
#include <random>

#include "tensair/common/error.hpp"

namespace tensair::model {
namespace {

using dataflow::BatchPtr;

constexpr int64_t kParams = 6;

// N replicas, each with one parameter tensor, joined by channels (src -> dst) whose credit is
// `window` bytes: an offer is refused when a message is in flight and this one would go over.
class Sim {
 public:
  struct Replica final : ReplicaLink {
    Sim* sim = nullptr;
    int id = 0;
    std::unique_ptr<Replication> rep;
    at::Tensor w;
    int64_t folded_steps = 0;
    std::vector<std::pair<bool, int64_t>> sync_done;  // (own, samples)

    bool offer(int peer, const BatchPtr& m) override {
      auto& ch = sim->channel(id, peer);
      const size_t bytes = m->byte_size();
      if (ch.in_flight > 0 && ch.in_flight + bytes > sim->window) {
        ch.waiting = true;
        return false;
      }
      send(peer, m);
      return true;
    }
    void send(int peer, const BatchPtr& m) override {
      auto& ch = sim->channel(id, peer);
      ch.queue.push_back(m);
      ch.in_flight += m->byte_size();
      sim->max_in_flight = std::max(sim->max_in_flight, ch.in_flight);
    }
    void apply(const std::vector<at::Tensor>& values, Exchange payload) override {
      ASSERT_EQ(payload, Exchange::kUpdate);
      if (values[0].defined()) w = w + values[0];
    }
    void apply_mean_gradient(const std::vector<at::Tensor>& mean) override {
      if (mean[0].defined()) w = w - 0.1 * mean[0];
    }
    void folded(double, double, int64_t steps) override { folded_steps += steps; }
    void sync_step_done(bool own, double, double, int64_t samples, int64_t) override {
      sync_done.emplace_back(own, samples);
    }
    void peer_converged() override {}
    bool more_exchange_queued() const override { return false; }
  };

  struct Channel {
    std::deque<BatchPtr> queue;
    size_t in_flight = 0;
    bool waiting = false;
  };

  Sim(int n, ReplicationOptions o, size_t window_bytes) : window(window_bytes), n_(n) {
    channels_.resize(static_cast<size_t>(n * n));
    for (int i = 0; i < n; ++i) {
      auto r = std::make_unique<Replica>();
      r->sim = this;
      r->id = i;
      r->rep = std::make_unique<Replication>(o, i, n, std::vector<std::vector<int64_t>>{{kParams}});
      r->w = torch::zeros({kParams});
      replicas.push_back(std::move(r));
    }
  }

  Channel& channel(int src, int dst) { return channels_[static_cast<size_t>(src * n_ + dst)]; }

  // Delivers the oldest message of one channel; returns false when every channel is empty.
  bool deliver_one(std::mt19937& rng) {
    std::vector<int> busy;
    for (int c = 0; c < n_ * n_; ++c) {
      if (!channels_[static_cast<size_t>(c)].queue.empty()) busy.push_back(c);
    }
    if (busy.empty()) return false;
    const int c = busy[std::uniform_int_distribution<size_t>(0, busy.size() - 1)(rng)];
    const int src = c / n_, dst = c % n_;
    Channel& ch = channels_[static_cast<size_t>(c)];
    BatchPtr m = ch.queue.front();
    ch.queue.pop_front();
    replicas[static_cast<size_t>(dst)]->rep->on_message(m, *replicas[static_cast<size_t>(dst)]);
    // Credit comes back once the receiver processed it, as in the engine.
    ch.in_flight -= m->byte_size();
    if (ch.waiting) {
      ch.waiting = false;
      replicas[static_cast<size_t>(src)]->rep->on_credit(dst, *replicas[static_cast<size_t>(src)]);
    }
    return true;
  }

  // One own step of replica `i` with a random update; returns it.
  at::Tensor step(int i, std::mt19937& rng) {
    std::normal_distribution<float> d;
    at::Tensor delta = torch::empty({kParams});
    for (int64_t k = 0; k < kParams; ++k) delta[k] = d(rng);
    Replica& r = *replicas[static_cast<size_t>(i)];
    r.w = r.w + delta;  // the replica's own optimizer step
    Update u;
    u.values = {delta};
    u.samples = 4;
    u.loss_sum = 4;
    r.rep->own_step(std::move(u), r);
    return delta;
  }

  void drain(std::mt19937& rng) {
    while (deliver_one(rng)) {
    }
  }

  size_t window;
  size_t max_in_flight = 0;
  std::vector<std::unique_ptr<Replica>> replicas;

 private:
  int n_;
  std::vector<Channel> channels_;
};

ReplicationOptions dasgd() {
  ReplicationOptions o;
  o.mode = Mode::kDasgd;
  o.exchange = Exchange::kUpdate;
  return o;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(ReplicationTest, UpdatesFoldedForLackOfCreditArriveOnceAndReplicasEndEqual) {
  for (int n : {2, 3, 4}) {
    // A window of one message: a replica that steps faster than its peers drain must fold.
    Sim sim(n, dasgd(), /*window_bytes=*/1);
    std::mt19937 rng(42 + static_cast<unsigned>(n));
    at::Tensor total = torch::zeros({kParams});
    int64_t steps = 0, most_pending = 0;
    size_t largest_message = 0;
    for (int tick = 0; tick < 3000; ++tick) {
      // Replica 0 is five times as fast as the others.
      const int i = std::uniform_int_distribution<int>(0, n + 3)(rng);
      if (i < n + 4 && std::uniform_int_distribution<int>(0, 2)(rng) == 0) {
        sim.deliver_one(rng);
        continue;
      }
      total = total + sim.step(i < n ? i : 0, rng);
      ++steps;
      for (int b = 1; b < n; ++b)
        most_pending = std::max(most_pending, sim.replicas[0]->rep->pending_steps(b));
    }
    // Several updates waited as one: what a replica holds for a peer is one update, however many
    // steps it covers.
    EXPECT_GT(most_pending, 1) << n << " replicas";
    for (auto& r : sim.replicas) {
      largest_message =
          std::max<size_t>(largest_message, static_cast<size_t>(r->rep->stats().delta_bytes_max));
    }
    for (auto& r : sim.replicas) r->rep->train_ended(*r);
    sim.drain(rng);
    // In flight per channel: at most one message (the window), to the very end.
    EXPECT_LE(sim.max_in_flight, largest_message) << n << " replicas";
    int64_t folded = 0;
    for (auto& r : sim.replicas) {
      r->rep->finish(*r);
      EXPECT_EQ(r->rep->version(), steps) << n << " replicas, replica " << r->id;
      EXPECT_LT(max_diff(r->w, total), 1e-3) << n << " replicas, replica " << r->id;
      folded += r->rep->stats().deltas_folded;
      for (int b = 0; b < n; ++b) {
        if (b != r->id) EXPECT_EQ(r->rep->pending_steps(b), 0);
      }
    }
    EXPECT_GT(folded, 0) << "with a window of one message, the fast replica must have folded";
  }
}

TEST(ReplicationTest, ASnapshotTakenMidwayRestoresAReplicaThatEndsTheSame) {
  const int n = 3;
  Sim a(n, dasgd(), 1);
  std::mt19937 rng(7);
  at::Tensor total = torch::zeros({kParams});
  int64_t steps = 0;
  auto run = [&](Sim& sim, std::mt19937& g, int ticks) {
    for (int t = 0; t < ticks; ++t) {
      if (std::uniform_int_distribution<int>(0, 1)(g) == 0) {
        sim.deliver_one(g);
      } else {
        total = total + sim.step(std::uniform_int_distribution<int>(0, n - 1)(g), g);
        ++steps;
      }
    }
  };
  run(a, rng, 400);
  // Replica 1 restarts from its snapshot: a fresh Replication restored from the bytes.
  dataflow::StateWriter w;
  a.replicas[1]->rep->snapshot(w);
  const int64_t version = a.replicas[1]->rep->version();
  const std::string bytes = w.take();
  a.replicas[1]->rep =
      std::make_unique<Replication>(dasgd(), 1, n, std::vector<std::vector<int64_t>>{{kParams}});
  dataflow::StateReader r(bytes, "replica 1");
  a.replicas[1]->rep->restore(r);
  r.expect_end();
  EXPECT_EQ(a.replicas[1]->rep->version(), version);
  a.replicas[1]->rep->resume(*a.replicas[1]);
  run(a, rng, 400);
  for (auto& rep : a.replicas) rep->rep->train_ended(*rep);
  a.drain(rng);
  for (auto& rep : a.replicas) {
    rep->rep->finish(*rep);
    EXPECT_EQ(rep->rep->version(), steps) << "replica " << rep->id;
    EXPECT_LT(max_diff(rep->w, total), 1e-3) << "replica " << rep->id;
  }
  // A damaged state is one clear error.
  std::string cut = bytes.substr(0, bytes.size() / 2);
  Replication fresh(dasgd(), 1, n, {{kParams}});
  dataflow::StateReader bad(cut, "checkpoint 3, operator \"model\"");
  try {
    fresh.restore(bad);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("checkpoint 3, operator \"model\": ", 0), 0u) << e.what();
  }
}

TEST(ReplicationTest, SyncStepsWaitForEveryUnfinishedReplicaAndSkipFinishedOnes) {
  ReplicationOptions o;
  o.mode = Mode::kSync;
  Sim sim(2, o, 1 << 20);
  std::mt19937 rng(1);
  auto contribute = [&](int i, float g) {
    Update u;
    u.values = {torch::full({kParams}, g)};
    u.samples = 2;
    sim.replicas[static_cast<size_t>(i)]->rep->contribute(std::move(u),
                                                          *sim.replicas[static_cast<size_t>(i)]);
  };
  contribute(0, 1);
  sim.drain(rng);
  EXPECT_TRUE(sim.replicas[0]->rep->sync_waiting());  // replica 1's part is missing
  EXPECT_TRUE(sim.replicas[0]->sync_done.empty());
  contribute(1, 3);
  sim.drain(rng);
  for (auto& r : sim.replicas) {
    ASSERT_EQ(r->sync_done.size(), 1u);
    EXPECT_EQ(r->sync_done[0].second, 4);  // both replicas' samples
    EXPECT_FALSE(r->rep->sync_waiting());
    // Contributions are gradients summed over samples: (1 + 3) / 4 samples = 1; one step of 0.1.
    EXPECT_LT(max_diff(r->w, torch::full({kParams}, -0.1f)), 1e-6);
  }
  EXPECT_LT(max_diff(sim.replicas[0]->w, sim.replicas[1]->w), 1e-7);
  // Replica 1 finishes: replica 0's next step goes ahead alone.
  sim.replicas[1]->rep->train_ended(*sim.replicas[1]);
  sim.drain(rng);
  contribute(0, 1);
  sim.drain(rng);
  EXPECT_EQ(sim.replicas[0]->sync_done.size(), 2u);
  EXPECT_FALSE(sim.replicas[0]->rep->sync_waiting());
}

TEST(ReplicationTest, MaxStalenessHoldsTheReplicaThatRunsAhead) {
  ReplicationOptions o = dasgd();
  o.max_staleness = 1;  // 2 replicas: clock gap 0
  Sim sim(2, o, 1 << 20);
  std::mt19937 rng(3);
  EXPECT_EQ(sim.replicas[0]->rep->clock_gap(), 0);
  EXPECT_TRUE(sim.replicas[0]->rep->may_step());  // the first update needs nothing
  sim.step(0, rng);
  EXPECT_FALSE(sim.replicas[0]->rep->may_step());  // the second needs replica 1's first
  sim.step(1, rng);
  EXPECT_FALSE(sim.replicas[0]->rep->may_step());  // ... folded, not merely made
  sim.drain(rng);
  EXPECT_TRUE(sim.replicas[0]->rep->may_step());
  // A finished peer holds nobody back.
  sim.replicas[1]->rep->train_ended(*sim.replicas[1]);
  sim.drain(rng);
  for (int k = 0; k < 5; ++k) {
    EXPECT_TRUE(sim.replicas[0]->rep->may_step());
    sim.step(0, rng);
  }
  // A bound the replicas cannot keep is refused with the reason.
  ReplicationOptions tight = dasgd();
  tight.max_staleness = 2;
  try {
    Replication r(tight, 0, 3, {{kParams}});
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("max_staleness = 2 cannot be guaranteed with 3 replicas"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace tensair::model

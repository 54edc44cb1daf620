// Internal helpers shared by the io/ sources (which check and describe their common options
// with ops' check_source_options and source_options_text, and are defined with
// dataflow::operator_def): a deterministic RNG, and StagedSource, the produce() loop of a
// record source with sharding, replay, limit, rate and an optional shuffle buffer, and its
// checkpoints. Not a public header.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/hash.hpp"
#include "tensair/common/error.hpp"
#include "tensair/dataflow/operator_def.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/ops/operator_state.hpp"
#include "tensair/ops/sources.hpp"

namespace tensair::io::detail {

// The file name, for messages.
inline std::string file_name(const std::filesystem::path& p) { return p.filename().string(); }

// SplitMix64: a small, fast, deterministic generator (passes BigCrush); the same sequence on
// every platform, unlike the std:: distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) (n > 0), without modulo bias worth mentioning (multiply-high).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  // The whole state of the generator (for checkpoints): set_state(state()) continues the
  // sequence exactly.
  uint64_t state() const { return state_; }
  void set_state(uint64_t state) { state_ = state; }

 private:
  uint64_t state_;
};

// A seed from several values, stable across processes and builds.
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0) {
  return hash_u64(a ^ hash_u64(b ^ hash_u64(c + 0x2545f4914f6cdd1dULL)));
}

// The produce() loop of a source whose input is a sequence of records, read pass after pass
// (ops::SourceCursor: passes, replay, limit and which instance owns which record index).
// Owned records go through a staging buffer: with capacity 1 they leave in read order; with a
// larger capacity (a shuffle buffer) each emitted record is drawn uniformly from the buffer,
// which is refilled from the input, and drained at the end.
//
// Checkpoints: snapshot() writes the cursor, the shuffle generator, the staged records (in
// buffer order, through save_item: the record, or where to read it again) and the subclass's
// place in its input (save_input);
// restore() reads them back, so the restored source emits the same records in the same order
// and batches as the original (the token bucket restarts, as a rate is not a position).
template <class Item>
class StagedSource : public dataflow::Operator {
 public:
  enum class Read { kEnd, kSkipped, kItem };

  StagedSource(const ops::SourceOptions& options, dataflow::Schema schema, const dataflow::InstanceInfo& info,
               int64_t shuffle_buffer, uint64_t shuffle_seed)
      : opt_(options),
        schema_(std::move(schema)),
        bucket_(options.rate, options.burst),
        cursor_(options, info),
        capacity_(shuffle_buffer > 1 ? static_cast<size_t>(shuffle_buffer) : 1),
        shuffle_(shuffle_buffer > 1),
        rng_(mix_seed(shuffle_seed, static_cast<uint64_t>(info.instance), 0x5348554646ULL)) {}

  dataflow::SourceState produce(dataflow::Context& ctx) override {
    const int64_t want = bucket_.take(opt_.batch_size, ctx);
    dataflow::BatchBuilder out(schema_);
    while (out.rows() < want) {
      while (!input_done_ && buffer_.size() < capacity_) read_one(ctx);
      if (buffer_.empty()) break;
      size_t j = shuffle_ ? static_cast<size_t>(rng_.below(buffer_.size())) : 0;
      if (j != buffer_.size() - 1) std::swap(buffer_[j], buffer_.back());
      append(buffer_.back(), out, ctx);
      buffer_.pop_back();
    }
    if (out.rows() > 0) ctx.emit(0, out.finish());
    return input_done_ && buffer_.empty() ? dataflow::SourceState::kDone : dataflow::SourceState::kMore;
  }

  void snapshot(dataflow::StateWriter& state, dataflow::Context&) override {
    ops::put_layout(state, state_name(), kLayout);
    cursor_.save(state);
    state.put<uint64_t>(capacity_);
    state.put<uint64_t>(rng_.state());
    ops::put_flag(state, input_done_);
    state.put<uint64_t>(buffer_.size());
    for (const Item& item : buffer_) save_item(state, item);
    save_input(state);
  }

  void restore(dataflow::StateReader& state, dataflow::Context& ctx) override {
    ops::expect_layout(state, state_name(), kLayout);
    cursor_.load(state);
    const auto capacity = state.get<uint64_t>();
    if (capacity != capacity_) {
      state.fail("was saved with a staging buffer of " + std::to_string(capacity) +
                 " records, this source has " + std::to_string(capacity_));
    }
    rng_.set_state(state.get<uint64_t>());
    input_done_ = ops::get_flag(state);
    const uint64_t n = state.get_count(1);
    if (n > capacity_) {
      state.fail("holds " + std::to_string(n) + " staged records, more than the buffer's " +
                 std::to_string(capacity_));
    }
    buffer_.clear();
    buffer_.resize(static_cast<size_t>(n));
    for (Item& item : buffer_) load_item(state, item);
    load_input(state, cursor_.in_pass(), ctx);
    complete_items(buffer_, state, ctx);
  }

 protected:
  // Opens (or rewinds to) the start of the input; `pass` counts from 0.
  virtual void start_pass(int64_t pass, dataflow::Context& ctx) = 0;
  // Reads the next record. When `mine`, parses it into `item` and returns kItem, or reports it
  // to ctx.dead_letter and returns kSkipped; otherwise skips it cheaply (kSkipped). kEnd at the
  // end of the pass. `index` is the record's index (ops::SourceCursor).
  virtual Read read(bool mine, int64_t index, Item& item, dataflow::Context& ctx) = 0;
  // Appends a staged record to the batch being built.
  virtual void append(Item& item, dataflow::BatchBuilder& out, dataflow::Context& ctx) = 0;

  // Checkpoints. The name of the operator type (the layout's name in the state).
  virtual std::string_view state_name() const = 0;
  // One staged record; load_item checks what it reads (StateReader::fail).
  virtual void save_item(dataflow::StateWriter& state, const Item& item) const = 0;
  virtual void load_item(dataflow::StateReader& state, Item& item) const = 0;
  // The subclass's place in its input and its own members. load_input runs on a fresh
  // instance; when `in_pass` it reopens the input where the saved one stood (a pass is under
  // way), otherwise start_pass() comes first.
  virtual void save_input(dataflow::StateWriter& state) const = 0;
  virtual void load_input(dataflow::StateReader& state, bool in_pass, dataflow::Context& ctx) = 0;
  // After load_input: a source whose save_item writes where a record is rather than the record
  // (CIFAR-10: its file and number) reads the staged records back here.
  virtual void complete_items(std::vector<Item>& items, dataflow::StateReader& state,
                              dataflow::Context& ctx) {}

  const ops::SourceOptions& options() const { return opt_; }
  const dataflow::Schema& schema() const { return schema_; }

 private:
  // One step of reading: starts a pass, or reads one record into the buffer, or finds the end.
  void read_one(dataflow::Context& ctx) {
    if (ctx.cancelled()) throw Cancelled();
    switch (cursor_.next()) {
      case ops::SourceCursor::Next::kStop:
        input_done_ = true;
        return;
      case ops::SourceCursor::Next::kStartPass:
        start_pass(cursor_.pass(), ctx);
        cursor_.pass_started();
        return;
      case ops::SourceCursor::Next::kRead:
        break;
    }
    Read r = read(cursor_.mine(), cursor_.index(), item_, ctx);
    if (r == Read::kEnd) {
      cursor_.pass_ended(ctx.info().name);
      return;
    }
    cursor_.record_read();
    if (r == Read::kItem) buffer_.push_back(std::move(item_));
  }

  // 2: a CIFAR-10 source's staged records are saved as their places in the files.
  static constexpr uint32_t kLayout = 2;

  ops::SourceOptions opt_;
  dataflow::Schema schema_;
  ops::TokenBucket bucket_;
  ops::SourceCursor cursor_;
  size_t capacity_;
  bool shuffle_;
  Rng rng_;
  std::vector<Item> buffer_;
  Item item_{};  // the record being read
  bool input_done_ = false;
};

}  // namespace tensair::io::detail

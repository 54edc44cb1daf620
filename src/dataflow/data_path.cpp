// Channels: sending batches, markers and barriers, delivering them into inboxes, and credit.
#include "dataflow/executor_impl.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::dataflow::detail {

namespace {
void atomic_max(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}
}  // namespace

// Hands `batch` to the channel, which the credit has already admitted (or need not).
static void hand_over(Impl& impl, Instance& from, Channel& ch, const BatchPtr& batch) {
  if (ch.cycle) from.c.cycle_sent++;
  const uint64_t seq = ch.next_seq++;
  if (ch.dst_rank == impl.rank) {
    InboxItem item;
    item.port = ch.dst_port;
    item.channel = ch.id;
    item.batch = batch;
    item.bytes = batch->byte_size();
    impl.deliver(ch, std::move(item));
    return;
  }
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(FrameKind::kData);
  f.header.channel = ch.id;
  f.header.seq = seq;
  encode_batch(batch, f);
  impl.tp.send(ch.dst_rank, std::move(f));
}

void Impl::send(Instance& from, Channel& ch, const BatchPtr& batch, bool wait_for_credit) {
  const size_t charge = credit_charge(batch->byte_size());
  if (ch.gate) {
    if (wait_for_credit && !ch.cycle) {
      auto waited = ch.gate->acquire(charge);
      if (waited.count() > 0) {
        from.c.credit_waits++;
        from.c.credit_wait_ns += static_cast<uint64_t>(waited.count());
      }
    } else {
      ch.gate->force_acquire(charge);
    }
  }
  hand_over(*this, from, ch, batch);
}

bool Impl::offer(Instance& from, Channel& ch, const BatchPtr& batch) {
  TENSAIR_ASSERT(ch.gate != nullptr, "offer on a channel without credit");
  if (!ch.gate->try_acquire(credit_charge(batch->byte_size()))) return false;
  hand_over(*this, from, ch, batch);
  return true;
}

void Impl::deliver(Channel& ch, InboxItem item) {
  Instance* dst = local_by_global[static_cast<size_t>(ch.dst)];
  TENSAIR_ASSERT(dst != nullptr, "delivery to an instance on another rank");
  if (item.kind == InboxItem::Kind::kData) {
    const auto charge = static_cast<int64_t>(credit_charge(item.bytes));
    int64_t q = ch.queued_bytes.fetch_add(charge) + charge;
    atomic_max(ch.queued_peak, q);
  }
  dst->inbox->push(std::move(item));
}

void Impl::consumed(Channel& ch, size_t bytes, bool restored) {
  if (restored) return;  // re-delivered from a checkpoint: it holds no credit
  const size_t charge = credit_charge(bytes);
  int64_t left =
      ch.queued_bytes.fetch_sub(static_cast<int64_t>(charge)) - static_cast<int64_t>(charge);
  if (ch.src_rank == rank) {
    if (ch.gate) ch.gate->release(charge);
    return;
  }
  uint64_t pending = ch.pending_credit.fetch_add(charge) + charge;
  // Return credit in chunks, and everything as soon as the channel's queue is empty, so a
  // waiting sender never stalls on credit that is merely held back.
  if (pending >= ch.window / 4 || left == 0) {
    uint64_t give = ch.pending_credit.exchange(0);
    if (give > 0 && !cancelled.load()) control(ch.src_rank, FrameKind::kCredit, ch.id, give);
  }
}

void Impl::send_end_of_stream(Channel& ch) {
  const uint64_t seq = ch.next_seq++;
  if (ch.dst_rank == rank) {
    InboxItem item;
    item.kind = InboxItem::Kind::kEndOfStream;
    item.port = ch.dst_port;
    item.channel = ch.id;
    deliver(ch, std::move(item));
    return;
  }
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(FrameKind::kEndOfStream);
  f.header.channel = ch.id;
  f.header.seq = seq;
  tp.send(ch.dst_rank, std::move(f));
}

// A barrier travels in the channel's order like a batch, but takes no credit: it must never
// wait, and it is a few bytes.
void Impl::send_barrier(Instance& from, Channel& ch, uint64_t id) {
  if (ch.cycle) from.c.cycle_sent++;
  const uint64_t seq = ch.next_seq++;
  if (ch.dst_rank == rank) {
    InboxItem item;
    item.kind = InboxItem::Kind::kBarrier;
    item.port = ch.dst_port;
    item.channel = ch.id;
    item.id = id;
    deliver(ch, std::move(item));
    return;
  }
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(FrameKind::kBarrier);
  f.header.channel = ch.id;
  f.header.seq = seq;
  f.header.aux = id;
  tp.send(ch.dst_rank, std::move(f));
}

}  // namespace tensair::dataflow::detail

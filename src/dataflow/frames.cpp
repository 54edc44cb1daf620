// Every frame that arrives at this rank, on the transport's progress thread. A frame that does
// not fit the job (unknown channel, wrong sender, out of order, bad payload) ends the job with
// a TransportError naming the sender and the edge.
#include <cstring>

#include "dataflow/executor_impl.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::dataflow::detail {

std::vector<std::byte> text_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
  return v;
}

namespace {
std::string bytes_text(const runtime::InFrame& f) {
  return std::string(reinterpret_cast<const char*>(f.payload()), f.header.meta_bytes);
}
}  // namespace

void Impl::control(int dst, FrameKind kind, uint32_t channel, uint64_t aux,
                   std::vector<std::byte> meta, uint8_t flags) {
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(kind);
  f.header.flags = flags;
  f.header.channel = channel;
  f.header.aux = aux;
  f.meta = std::move(meta);
  tp.send(dst, std::move(f));
}

void Impl::on_frame(runtime::InFrame&& f) {
  const auto kind = static_cast<FrameKind>(f.header.kind);
  const int from = f.src_rank;
  auto bad = [&](const std::string& why) {
    throw TransportError("invalid frame from rank " + std::to_string(from) + ": " + why);
  };
  auto channel_of = [&]() -> Channel& {
    if (f.header.channel >= channels.size())
      bad("unknown channel " + std::to_string(f.header.channel));
    return *channels[f.header.channel];
  };
  auto edge_name = [&](const Channel& ch) {
    const Edge& e = graph.edges()[static_cast<size_t>(ch.edge)];
    return graph.output_name(e.from_op, e.from_port) + " -> " +
           graph.input_name(e.to_op, e.to_port);
  };
  auto json_meta = [&]() {
    json j = json::parse(bytes_text(f), nullptr, false);
    if (j.is_discarded() || !j.is_object()) bad("control message without its JSON");
    return j;
  };
  switch (kind) {
    case FrameKind::kData:
    case FrameKind::kEndOfStream:
    case FrameKind::kBarrier: {
      Channel& ch = channel_of();
      if (ch.dst_rank != rank || ch.src_rank != from) {
        bad("channel " + std::to_string(ch.id) + " does not run from rank " + std::to_string(from) +
            " to rank " + std::to_string(rank));
      }
      if (f.header.seq != ch.expected_seq) {
        bad("edge " + edge_name(ch) + ": frame " + std::to_string(f.header.seq) +
            " arrived where frame " + std::to_string(ch.expected_seq) + " was due");
      }
      ch.expected_seq++;
      InboxItem item;
      item.port = ch.dst_port;
      item.channel = ch.id;
      if (kind == FrameKind::kData) {
        try {
          item.batch = share(decode_batch(f.owner(), f.payload(), f.payload_size()));
        } catch (const Error& e) {
          bad("edge " + edge_name(ch) + ": " + e.what());
        }
        item.bytes = item.batch->byte_size();
      } else if (kind == FrameKind::kEndOfStream) {
        item.kind = InboxItem::Kind::kEndOfStream;
      } else {
        item.kind = InboxItem::Kind::kBarrier;
        item.id = f.header.aux;
      }
      deliver(ch, std::move(item));
      return;
    }
    case FrameKind::kCredit: {
      Channel& ch = channel_of();
      if (ch.src_rank != rank || ch.dst_rank != from || !ch.gate) {
        bad("credit for channel " + std::to_string(ch.id) + " that rank " + std::to_string(from) +
            " does not receive");
      }
      ch.gate->release(f.header.aux);
      return;
    }
    case FrameKind::kTermReady: {
      if (rank != 0 || f.header.channel >= static_cast<uint32_t>(cycles)) bad("unexpected ready");
      std::lock_guard lock(mu);
      termination.ready(static_cast<int>(f.header.channel), from);
      main_cv.notify_all();
      return;
    }
    case FrameKind::kTermProbe: {
      if (f.header.channel >= static_cast<uint32_t>(cycles)) bad("probe of unknown cycle");
      uint64_t counts[2] = {0, 0};
      for (auto& in : local) {
        if (in->scc != static_cast<int>(f.header.channel)) continue;
        counts[0] += in->c.cycle_sent.load();
        counts[1] += in->c.cycle_processed.load();
      }
      std::vector<std::byte> meta(sizeof counts);
      std::memcpy(meta.data(), counts, sizeof counts);
      control(0, FrameKind::kTermReport, f.header.channel, f.header.aux, std::move(meta));
      return;
    }
    case FrameKind::kTermReport: {
      if (rank != 0 || f.header.channel >= static_cast<uint32_t>(cycles) ||
          f.header.meta_bytes != 16) {
        bad("unexpected termination report");
      }
      uint64_t counts[2];
      std::memcpy(counts, f.payload(), sizeof counts);
      bool done = false;
      {
        std::lock_guard lock(mu);
        done = termination.report(static_cast<int>(f.header.channel), f.header.aux, counts[0],
                                  counts[1], Clock::now());
        main_cv.notify_all();
      }
      if (done) {
        for (int r = 0; r < world; ++r) control(r, FrameKind::kTermDone, f.header.channel, 0);
      }
      return;
    }
    case FrameKind::kTermDone: {
      if (f.header.channel >= static_cast<uint32_t>(cycles)) bad("end of unknown cycle");
      cycle_done(static_cast<int>(f.header.channel));
      return;
    }
    case FrameKind::kLog: {
      if (rank != 0) bad("log lines sent to a rank other than 0");
      std::string text = bytes_text(f);
      std::lock_guard lock(mu);
      received_logs.emplace_back(static_cast<LogStream>(f.header.flags & 1), std::move(text));
      main_cv.notify_all();
      return;
    }
    case FrameKind::kError: {
      if ((f.header.flags & 0x80) != 0) {  // a survivor saw a peer lost: so does this rank
        peer_lost_notice(static_cast<int>(f.header.channel), bytes_text(f));
        return;
      }
      fail(bytes_text(f), static_cast<ErrorKind>(f.header.flags & 0x7f),
           static_cast<ExitCode>(f.header.aux), from);
      return;
    }
    case FrameKind::kCkptTrigger: {
      if (from != 0) bad("checkpoint trigger from a rank other than 0");
      on_trigger(f.header.aux, (f.header.flags & 1) != 0, static_cast<int>(f.header.channel));
      return;
    }
    case FrameKind::kCkptRequest: {
      if (rank != 0) bad("checkpoint request sent to a rank other than 0");
      std::lock_guard lock(mu);
      if (coordinator) coordinator->request();
      main_cv.notify_all();
      return;
    }
    case FrameKind::kCkptRankDone: {
      if (rank != 0) bad("checkpoint report sent to a rank other than 0");
      on_rank_done(f.header.aux, from, json_meta());
      return;
    }
    case FrameKind::kCkptComplete: {
      if (from != 0) bad("checkpoint completion from a rank other than 0");
      on_checkpoint_complete(f.header.aux, json_meta());
      return;
    }
    case FrameKind::kStopRequest: {
      if (rank != 0) bad("stop request sent to a rank other than 0");
      begin_stop(static_cast<int>(f.header.aux));
      return;
    }
    case FrameKind::kStop: {
      if (from != 0) bad("stop from a rank other than 0");
      stop_sources(static_cast<int>(f.header.aux));
      return;
    }
    case FrameKind::kRankFinished: {
      if (rank != 0) bad("finish report sent to a rank other than 0");
      std::lock_guard lock(mu);
      ranks_finished++;
      main_cv.notify_all();
      return;
    }
    case FrameKind::kShutdown: {
      if (from != 0) bad("shutdown from a rank other than 0");
      std::lock_guard lock(mu);
      shutdown_ordered = true;
      main_cv.notify_all();
      return;
    }
    case FrameKind::kRestoreOffer: {
      if (rank != 0) bad("resume offer sent to a rank other than 0");
      on_restore_offer(from, json_meta());
      return;
    }
    case FrameKind::kRestoreDecision: {
      if (from != 0) bad("resume decision from a rank other than 0");
      json j = json_meta();
      std::lock_guard lock(mu);
      restore_decision = std::make_pair(f.header.aux, std::move(j));
      main_cv.notify_all();
      return;
    }
  }
  bad("unknown frame kind " + std::to_string(f.header.kind));
}

void Impl::on_transport_error(const std::string& message) {
  fail((world > 1 ? "[rank " + std::to_string(rank) + "] " : std::string()) + message,
       ErrorKind::kTransport, ExitCode::kFailure, rank);
}

}  // namespace tensair::dataflow::detail

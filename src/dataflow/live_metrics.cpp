// The engine's counters in the metrics registry (live_metrics.hpp).
#include "dataflow/live_metrics.hpp"

#include "dataflow/executor_impl.hpp"
#include "tensair/common/log.hpp"

namespace tensair::dataflow::detail {

void LiveMetrics::start(Impl& impl) {
  impl_ = &impl;
  collector_ = metrics::registry().add_collector([this] { collect(*impl_); });
  if (!impl.opt.metrics_port) return;
  serve::ServerOptions so;
  so.host = impl.opt.metrics_host;
  so.port = *impl.opt.metrics_port == 0 ? 0 : *impl.opt.metrics_port + impl.rank;
  so.what = "[job] metrics_port";
  server_ = std::make_unique<serve::HttpServer>(so);
  log().info("metrics at {}/metrics", server_->url());
}

void LiveMetrics::stop() {
  if (impl_) collect(*impl_);
  collector_.reset();
  server_.reset();
}

void LiveMetrics::checkpoint_completed(uint64_t id, double duration_s, uint64_t bytes) {
  auto& r = metrics::registry();
  r.gauge("tensair_checkpoint_last_duration_seconds",
          "Seconds from trigger to manifest of the newest completed checkpoint (rank 0)")
      .set(duration_s);
  r.gauge("tensair_checkpoint_last_bytes", "Bytes of all ranks' files of the newest checkpoint")
      .set(static_cast<double>(bytes));
  r.gauge("tensair_checkpoint_last_id", "Number of the newest completed checkpoint")
      .set(static_cast<double>(id));
  r.counter("tensair_checkpoints_completed_total", "Checkpoints completed by this run").inc();
  last_checkpoint_at_ = impl_ ? impl_->elapsed() : 0;
}

void LiveMetrics::collect(Impl& impl) {
  auto& r = metrics::registry();
  for (const auto& in : impl.local) {
    const InstanceStats s = in->stats();
    const auto& node = impl.graph.operators()[static_cast<size_t>(in->op)];
    const metrics::Labels l = {{"operator", s.name},
                               {"op_type", node.def->type()},
                               {"instance", std::to_string(s.instance)},
                               {"rank", std::to_string(s.rank)}};
    auto total = [&](const char* name, const char* help, double v) {
      r.counter(name, help, l).set_total(v);
    };
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    total("tensair_operator_records_in_total", "Records received by the operator instance",
          d(s.records_in));
    total("tensair_operator_records_out_total", "Records emitted by the operator instance",
          d(s.records_out));
    total("tensair_operator_bytes_in_total", "Column bytes received", d(s.bytes_in));
    total("tensair_operator_bytes_out_total", "Column bytes emitted", d(s.bytes_out));
    total("tensair_operator_batches_in_total", "Batches received", d(s.batches_in));
    total("tensair_operator_batches_out_total", "Batches emitted", d(s.batches_out));
    total("tensair_operator_credit_waits_total", "Emits that waited for credit", d(s.credit_waits));
    total("tensair_operator_credit_wait_seconds_total", "Seconds spent waiting for credit",
          s.credit_wait_s);
    total("tensair_operator_offers_refused_total", "Non-blocking offers refused for want of credit",
          d(in->c.offers_refused.load()));
    total("tensair_operator_dead_letters_total", "Records sent to dead_letters.jsonl",
          d(s.dead_letters));
    total("tensair_operator_busy_seconds_total", "Seconds inside the operator's own code",
          s.busy_s);
    r.gauge("tensair_operator_queue_depth", "Batches waiting in the instance's inbox", l)
        .set(static_cast<double>(in->inbox->depth()));
    r.gauge("tensair_operator_queued_bytes",
            "Bytes waiting or in process on the instance's input channels", l)
        .set(static_cast<double>(in->queued_bytes()));
  }
  const runtime::TransportStats ts = impl.tp.stats();
  const metrics::Labels rl = {{"rank", std::to_string(impl.rank)}};
  r.counter("tensair_transport_frames_sent_total", "Frames sent to other ranks", rl)
      .set_total(static_cast<double>(ts.frames_sent));
  r.counter("tensair_transport_frames_received_total", "Frames received from other ranks", rl)
      .set_total(static_cast<double>(ts.frames_received));
  r.counter("tensair_transport_bytes_sent_total", "Bytes sent to other ranks", rl)
      .set_total(static_cast<double>(ts.bytes_sent));
  r.counter("tensair_transport_bytes_received_total", "Bytes received from other ranks", rl)
      .set_total(static_cast<double>(ts.bytes_received));
  r.gauge("tensair_job_uptime_seconds", "Seconds since this rank started the job", rl)
      .set(impl.elapsed());
  const double at = last_checkpoint_at_.load();
  if (at >= 0) {
    r.gauge("tensair_checkpoint_age_seconds",
            "Seconds since the newest checkpoint completed (rank 0)")
        .set(impl.elapsed() - at);
  }
}

}  // namespace tensair::dataflow::detail

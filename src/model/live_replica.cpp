// Serving and snapshots of a training replica (live_replica.hpp).
#include "model/live_replica.hpp"

#include <nlohmann/json.hpp>

#include "tensair/common/log.hpp"

namespace tensair::model {

namespace {
metrics::Labels labels_of(const dataflow::InstanceInfo& info) {
  return {{"operator", info.name},
          {"instance", std::to_string(info.instance)},
          {"rank", std::to_string(info.rank)}};
}
}  // namespace

LiveReplica::LiveReplica(const ModelOptions& o, const dataflow::InstanceInfo& info)
    : o_(o), info_(info) {
  if (o.serve_port) {
    served_ = std::make_shared<ServedModel>(o, info.name, labels_of(info));
    serve::ServerOptions so;
    so.host = o.serve_host;
    so.port = *o.serve_port == 0 ? 0 : *o.serve_port + info.instance;
    so.max_request_bytes = static_cast<size_t>(o.serve_max_request_bytes);
    so.what = "serve_port (instance " + std::to_string(info.instance) + ")";
    server_ = std::make_unique<serve::HttpServer>(so);
    server_->add_model(info.name, served_);
  }
  if (o.snapshot_every.on() && info.instance == 0)
    writer_ = std::make_unique<SnapshotWriter>(o.snapshot_dir, info.name, o.snapshot_keep);
}

LiveReplica::~LiveReplica() {
  server_.reset();  // no request is running once the server has joined its threads
  served_.reset();
}

bool LiveReplica::due(const Every& every, int64_t version, int64_t last_version,
                      Clock::time_point last_time, Clock::time_point now) {
  if (version == last_version) return false;  // nothing new
  if (last_version < 0) return true;
  if (every.versions > 0) return version - last_version >= every.versions;
  return std::chrono::duration<double>(now - last_time).count() >= every.seconds;
}

void LiveReplica::tick(const Network& net, int64_t version, int64_t step, dataflow::Context& ctx,
                       bool force) {
  if (!active()) return;
  const Clock::time_point now = Clock::now();
  const bool serve =
      served_ && (force ? version != served_version_
                        : due(o_.serve_every, version, served_version_, served_time_, now));
  const bool snap =
      writer_ && (force ? version != snapshot_version_
                        : due(o_.snapshot_every, version, snapshot_version_, snapshot_time_, now));
  if (serve || snap) {
    auto copy = std::make_shared<PublishedModel>();
    copy->module = net.copy_for_inference();
    copy->version = version;
    copy->step = step;
    if (serve) {
      served_->publish(copy);
      served_version_ = version;
      served_time_ = now;
    }
    if (snap) {
      writer_->submit(copy);
      snapshot_version_ = version;
      snapshot_time_ = now;
    }
  }
  if (server_ && !announced_) {
    announced_ = true;
    // The address on stderr (port 0 picks one: scripts read it here) and in metrics.jsonl.
    log().info("operator \"{}\" instance {}: serving at {}/v2/models/{}", info_.name,
               info_.instance, server_->url(), info_.name);
    ctx.log_event({{"kind", "serve"}, {"url", server_->url()}, {"port", server_->port()}});
  }
  if (writer_) log_written(ctx);
}

void LiveReplica::finish(const Network& net, int64_t version, int64_t step,
                         dataflow::Context& ctx) {
  tick(net, version, step, ctx, /*force=*/true);
  if (!writer_) return;
  writer_->flush();
  log_written(ctx);
}

void LiveReplica::log_written(dataflow::Context& ctx) {
  for (const WrittenSnapshot& w : writer_->take_written()) {
    if (!w.error.empty()) {
      log().warn("operator \"{}\": {}", info_.name, w.error);
      ctx.log_event(
          {{"kind", "model_snapshot_failed"}, {"version", w.version}, {"error", w.error}});
      continue;
    }
    ctx.log_event({{"kind", "model_snapshot"},
                   {"path", w.path.string()},
                   {"version", w.version},
                   {"bytes", w.bytes},
                   {"write_s", w.write_s},
                   {"skipped", writer_->skipped()}});
  }
}

}  // namespace tensair::model

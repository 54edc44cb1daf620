// The job's HTTP endpoint over cpp-httplib (http_server.hpp). cpp-httplib stays inside this
// file: nothing else in TensAIR includes <httplib.h>.
//
// Invariants
// - models_ is guarded by mu_; a request copies the model's shared_ptr out and computes without
//   the lock, so add/remove never wait for an inference, and a removed model lives until its
//   last request has answered.
// - Every handler body runs inside guarded(), which turns any exception into 500
//   {"error": "internal error"} (the text goes to the log): no exception text reaches a client
//   and none escapes into cpp-httplib's threads.
#include "tensair/serve/http_server.hpp"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve/kserve_json.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/metrics_registry.hpp"

namespace tensair::serve {

using nlohmann::json;

namespace {

constexpr const char* kJson = "application/json";

void json_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}}.dump(), kJson);
}

const char* status_phrase(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "not found (paths: /v2/health/live, /v2/health/ready, /v2, /v2/models/<name>, "
             "/v2/models/<name>/ready, /v2/models/<name>/infer, /metrics)";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request URI too long";
    default:
      return status >= 500 ? "internal error" : "request refused";
  }
}

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  httplib::Server server;
  std::thread listener;
  std::atomic<bool> listen_returned{false};
  int port = 0;

  std::mutex mu;
  std::map<std::string, std::shared_ptr<InferenceBackend>> models;  // guarded by mu

  std::shared_ptr<InferenceBackend> find(const std::string& name) {
    std::lock_guard lock(mu);
    auto it = models.find(name);
    return it == models.end() ? nullptr : it->second;
  }

  void count(const std::string& model, int status, double seconds) {
    auto& reg = metrics::registry();
    const metrics::Labels labels = {{"model", model}, {"code", std::to_string(status)}};
    reg.counter("tensair_serve_requests_total",
                "Inference requests answered, by model and HTTP status", labels)
        .inc();
    reg.counter("tensair_serve_request_seconds_total",
                "Time spent answering inference requests (sum over requests), by model and status",
                labels)
        .inc(seconds);
  }

  template <class F>
  void guarded(const httplib::Request& req, httplib::Response& res, F&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      log().warn("{}: {} {}: {}", options.what, req.method, req.path, e.what());
      json_error(res, 500, "internal error");
    } catch (...) {
      log().warn("{}: {} {}: unknown exception", options.what, req.method, req.path);
      json_error(res, 500, "internal error");
    }
  }

  void infer(const httplib::Request& req, httplib::Response& res, const std::string& name) {
    const auto start = std::chrono::steady_clock::now();
    auto model = find(name);
    if (!model) {
      json_error(res, 404, "unknown model \"" + name + "\"");
      return;
    }
    std::string error;
    std::optional<InferRequest> request = parse_infer_request(req.body, error);
    InferOutcome outcome;
    if (!request) {
      outcome.status = 400;
      outcome.error = error;
    } else if (!model->ready()) {
      outcome.status = 503;
      outcome.error = "model \"" + name + "\" has no weights published yet";
    } else {
      outcome = model->infer(std::move(request->inputs));
      for (const std::string& want : request->outputs) {
        bool known = false;
        for (const HostTensor& t : outcome.outputs) known = known || t.name == want;
        if (outcome.status == 200 && !known) {
          outcome.status = 400;
          outcome.error = "unknown output \"" + want + "\"";
        }
      }
    }
    if (outcome.status != 200) {
      json_error(res, outcome.status, outcome.error);
    } else {
      res.set_content(infer_response(name, request->id, outcome, request->outputs).dump(), kJson);
    }
    count(name, res.status == -1 ? 200 : res.status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  void routes() {
    server.Get("/v2/health/live", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] { res.set_content(json{{"live", true}}.dump(), kJson); });
    });
    server.Get("/v2/health/ready", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] {
        bool ready = true;
        {
          std::lock_guard lock(mu);
          for (const auto& [n, m] : models) ready = ready && m->ready();
        }
        res.status = ready ? 200 : 503;
        res.set_content(json{{"ready", ready}}.dump(), kJson);
      });
    });
    server.Get("/v2", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] {
        res.set_content(
            json{{"name", "tensair"}, {"version", "0.1.0"}, {"extensions", json::array()}}.dump(),
            kJson);
      });
    });
    server.Get(R"(/v2/models/([^/]+)/ready)", [this](const httplib::Request& req,
                                                     httplib::Response& res) {
      guarded(req, res, [&] {
        auto model = find(req.matches[1]);
        if (!model)
          return json_error(res, 404, "unknown model \"" + std::string(req.matches[1]) + "\"");
        res.status = model->ready() ? 200 : 503;
        res.set_content(
            json{{"name", std::string(req.matches[1])}, {"ready", model->ready()}}.dump(), kJson);
      });
    });
    server.Get(
        R"(/v2/models/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
          guarded(req, res, [&] {
            auto model = find(req.matches[1]);
            if (!model)
              return json_error(res, 404, "unknown model \"" + std::string(req.matches[1]) + "\"");
            res.set_content(metadata_json(model->metadata(), model->version()).dump(), kJson);
          });
        });
    server.Post(R"(/v2/models/([^/]+)/infer)",
                [this](const httplib::Request& req, httplib::Response& res) {
                  guarded(req, res, [&] { infer(req, res, req.matches[1]); });
                });
    server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] {
        res.set_content(metrics::registry().render(), "text/plain; version=0.0.4; charset=utf-8");
      });
    });
    // Every other error (unknown path, 413, a body cut short) gets a JSON body too.
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty()) json_error(res, res.status, status_phrase(res.status));
    });
  }
};

HttpServer::HttpServer(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  const int threads = std::max(1, s.options.threads);
  s.server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.server.set_payload_max_length(s.options.max_request_bytes);
  s.server.set_keep_alive_max_count(1000);
  s.server.set_tcp_nodelay(true);
  // cpp-httplib's default sets SO_REUSEPORT, with which a second job bound to the same port
  // silently shares it (the kernel splits connections between them): SO_REUSEADDR only, so a
  // port in use is an error naming it, and a restarted job can rebind at once.
  s.server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s.routes();
  const std::string where = s.options.host + ":" + std::to_string(s.options.port);
  if (s.options.port == 0) {
    s.port = s.server.bind_to_any_port(s.options.host);
    if (s.port <= 0)
      throw IoError(s.options.what + ": cannot listen on " + s.options.host + " (any port)");
  } else {
    if (s.options.port < 0 || s.options.port > 65535)
      throw IoError(
          s.options.what + ": port " + std::to_string(s.options.port) + " is outside 0..65535",
          ExitCode::kConfig);
    if (!s.server.bind_to_port(s.options.host, s.options.port))
      throw IoError(s.options.what + ": cannot listen on " + where +
                    " (in use, or not an address of this host)");
    s.port = s.options.port;
  }
  s.listener = std::thread([&s] {
    s.server.listen_after_bind();
    s.listen_returned = true;
  });
  // cpp-httplib 0.11's stop() does nothing until the listening loop has started (it would then
  // run forever): the server is only handed out once it runs.
  while (!s.server.is_running() && !s.listen_returned)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

HttpServer::~HttpServer() {
  impl_->server.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

int HttpServer::port() const { return impl_->port; }
const std::string& HttpServer::host() const { return impl_->options.host; }
std::string HttpServer::url() const {
  return "http://" + impl_->options.host + ":" + std::to_string(impl_->port);
}

void HttpServer::add_model(const std::string& name, std::shared_ptr<InferenceBackend> model) {
  std::lock_guard lock(impl_->mu);
  impl_->models[name] = std::move(model);
}

void HttpServer::remove_model(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  impl_->models.erase(name);
}

}  // namespace tensair::serve

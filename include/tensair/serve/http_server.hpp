// The HTTP endpoint of a job: the KServe v2 / Triton REST subset for served models, and
// Prometheus metrics (docs/serving.md).
//
//   GET  /v2/health/live            200 {"live": true} while the server runs
//   GET  /v2/health/ready           200 {"ready": true} when every model has weights published,
//                                   else 503 {"ready": false}
//   GET  /v2                        server metadata (name, version, extensions)
//   GET  /v2/models/<name>          model metadata: name, versions, platform, inputs, outputs
//   GET  /v2/models/<name>/ready    200 / 503 as above, for one model
//   POST /v2/models/<name>/infer    KServe v2 JSON inference (kserve_json.hpp)
//   GET  /metrics                   metrics::registry() in Prometheus text format 0.0.4
//
// Every error is a JSON body {"error": "..."} with a 4xx status (400 bad JSON or tensors, 404
// unknown model or path, 405 wrong method, 413 body over the limit) or 500/503; a handler that
// throws answers 500 {"error": "internal error"} and the exception text goes to the log only.
//
// Threading: the server listens and answers on its own threads (a pool of `threads`); a
// request blocks one of them while its model computes. add_model/remove_model may be called
// from any thread at any time. The destructor stops listening and joins every thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "tensair/serve/inference.hpp"

namespace tensair::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                          // 0: the system picks a free port (see port())
  size_t max_request_bytes = 32u << 20;  // larger bodies get 413 without being parsed
  int threads = 16;                      // connections served at once (keep-alive holds one)
  std::string what = "server";           // for messages: e.g. "operator \"model\" serve_port"
};

class HttpServer {
 public:
  // Binds and starts serving. Throws IoError naming host:port and `what` when it cannot bind.
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;  // the bound port
  const std::string& host() const;
  std::string url() const;  // "http://host:port"

  void add_model(const std::string& name, std::shared_ptr<InferenceBackend> model);
  void remove_model(const std::string& name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tensair::serve

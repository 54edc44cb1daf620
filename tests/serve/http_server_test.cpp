// The HTTP endpoint with a stand-in model: the KServe v2 routes, and every malformed request
// answered with a 4xx and a JSON {"error"} (the live model is tested in tests/e2e/serving_test.sh).
#include "tensair/serve/http_server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace tensair::serve {
namespace {

using nlohmann::json;

// y = 2 x for x: FP32[n, 2]; throws on n == 7 (a model bug must not reach the client as text).
class Doubler final : public InferenceBackend {
 public:
  ModelMetadata metadata() const override {
    return {
        "doubler", "test", {{"x", DataType::kFp32, {-1, 2}}}, {{"y", DataType::kFp32, {-1, 2}}}};
  }
  bool ready() const override { return true; }
  int64_t version() const override { return 3; }
  InferOutcome infer(std::vector<HostTensor> in) override {
    if (in.size() != 1 || in[0].name != "x" || in[0].shape.size() != 2 || in[0].shape[1] != 2)
      return {400, "input x: expected FP32[n,2]", {}, 0, 0};
    if (in[0].shape[0] == 7) throw std::runtime_error("secret internal detail");
    HostTensor y = in[0];
    y.name = "y";
    for (double& v : y.reals) v *= 2;
    return {200, "", {y}, 3, 9};
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.max_request_bytes = 1 << 20;
    server_ = std::make_unique<HttpServer>(o);
    server_->add_model("doubler", std::make_shared<Doubler>());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  // Status and parsed body of a POST to the model's infer route.
  std::pair<int, json> infer(const std::string& body, const std::string& model = "doubler") {
    auto r = client_->Post(("/v2/models/" + model + "/infer").c_str(), body, "application/json");
    if (!r) return {-1, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpServerTest, HealthAndMetadata) {
  auto live = client_->Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  auto ready = client_->Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(json::parse(ready->body)["ready"], true);
  auto meta = client_->Get("/v2/models/doubler");
  ASSERT_TRUE(meta);
  json m = json::parse(meta->body);
  EXPECT_EQ(m["name"], "doubler");
  EXPECT_EQ(m["versions"], json::array({"3"}));
  EXPECT_EQ(m["inputs"][0]["shape"], json::array({-1, 2}));
  EXPECT_EQ(m["outputs"][0]["datatype"], "FP32");
}

TEST_F(HttpServerTest, InfersFlatAndNestedData) {
  auto [status, body] = infer(
      R"({"id":"a","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]})");
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["id"], "a");
  EXPECT_EQ(body["model_version"], "3");
  EXPECT_EQ(body["outputs"][0]["data"], json::array({2.0, 4.0, 6.0, 8.0}));
  EXPECT_EQ(body["outputs"][0]["shape"], json::array({2, 2}));
  std::tie(status, body) =
      infer(R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[0.5,1]}]})");
  EXPECT_EQ(status, 200);
}

TEST_F(HttpServerTest, MalformedRequestsGet4xxWithAJsonError) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"{not json", 400},
      {"[1,2]", 400},
      {R"({"inputs":[]})", 400},
      {R"({"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"BYTES","data":["a","b"]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[1.5,2]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[[1,2]]]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[-1,2],"datatype":"FP32","data":[1,2]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,"2"]}]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],
           "outputs":[{"name":"nope"}]})",
       400},
  };
  for (const auto& [body, want] : cases) {
    auto [status, reply] = infer(body);
    EXPECT_EQ(status, want) << body;
    ASSERT_TRUE(reply.is_object() && reply.contains("error")) << body << " -> " << reply.dump();
    EXPECT_TRUE(reply["error"].is_string());
  }
  auto [status, reply] =
      infer(R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]})", "nope");
  EXPECT_EQ(status, 404);
  EXPECT_EQ(reply["error"], "unknown model \"nope\"");
  auto unknown = client_->Get("/v2/nothing/here");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(json::parse(unknown->body).contains("error"));
}

TEST_F(HttpServerTest, ABodyOverTheLimitGets413) {
  const std::string big(100u << 20, ' ');  // 100 MB, against a 1 MiB limit
  auto [status, reply] = infer(big);
  EXPECT_EQ(status, 413);
  EXPECT_TRUE(reply.contains("error")) << reply.dump();
  // The server is still there.
  EXPECT_EQ(client_->Get("/v2/health/live")->status, 200);
}

TEST_F(HttpServerTest, AModelExceptionIsA500WithoutItsText) {
  std::string data = "[";
  for (int i = 0; i < 14; ++i) data += (i ? ",1" : "1");
  auto [status, reply] =
      infer(R"({"inputs":[{"name":"x","shape":[7,2],"datatype":"FP32","data":)" + data + "]}]}");
  EXPECT_EQ(status, 500);
  EXPECT_EQ(reply["error"], "internal error");
}

TEST_F(HttpServerTest, MetricsAreServedAsPrometheusText) {
  infer(R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]})");
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(m->body.find("# TYPE tensair_serve_requests_total counter"), std::string::npos);
  EXPECT_NE(m->body.find("tensair_serve_requests_total{model=\"doubler\",code=\"200\"}"),
            std::string::npos);
}

TEST(HttpServerBindTest, APortInUseIsOneLineNamingIt) {
  HttpServer first(ServerOptions{});
  ServerOptions o;
  o.port = first.port();
  o.what = "operator \"m\" serve_port";
  try {
    HttpServer second(o);
    FAIL() << "bound twice";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("operator \"m\" serve_port: cannot listen on 127.0.0.1:" +
                                         std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tensair::serve

#include "kafka_mock_command.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/kafka/kafka.hpp"

namespace tensair::apps {
namespace {

struct MockArgs {
  int port = 0;
  int brokers = 1;
  std::vector<std::string> topics;
  std::string bootstrap_file;
};

// Copies bytes both ways between two connected sockets until either side closes.
void pump(int a, int b) {
  char buf[65536];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        closed = true;
        break;
      }
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(fds[1 - i].fd, buf + done, static_cast<size_t>(n - done));
        if (w <= 0) {
          closed = true;
          break;
        }
        done += w;
      }
    }
    if (closed) break;
  }
  ::close(a);
  ::close(b);
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Accepts on 127.0.0.1:port and relays every connection to 127.0.0.1:target (a thread each).
void start_relay(int port, int target) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in a = loopback(port);
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 64) != 0) {
    throw IoError("kafka-mock: cannot listen on 127.0.0.1:" + std::to_string(port) + ": " +
                  std::strerror(errno));
  }
  std::thread([s, target] {
    for (;;) {
      const int c = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in t = loopback(target);
      if (u < 0 || ::connect(u, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
        ::close(c);
        if (u >= 0) ::close(u);
        continue;
      }
      std::thread(pump, c, u).detach();
    }
  }).detach();
}

int run(const MockArgs& args) {
  // Block the stop signals before any thread starts, so that sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    kafka::MockCluster cluster(args.brokers);
    for (const std::string& t : args.topics) {
      const size_t colon = t.rfind(':');
      int parts = 1;
      std::string name = t;
      if (colon != std::string::npos) {
        name = t.substr(0, colon);
        try {
          parts = std::stoi(t.substr(colon + 1));
        } catch (const std::exception&) {
          parts = 0;
        }
      }
      if (name.empty() || parts < 1) {
        throw ConfigError("--topic \"" + t + "\": expected NAME or NAME:PARTITIONS (at least 1)");
      }
      cluster.create_topic(name, parts);
    }
    std::string bootstrap = cluster.bootstrap();
    if (args.port > 0) {
      const std::string first = bootstrap.substr(0, bootstrap.find(','));
      start_relay(args.port, std::stoi(first.substr(first.rfind(':') + 1)));
      bootstrap = "127.0.0.1:" + std::to_string(args.port);
    }
    if (!args.bootstrap_file.empty()) {
      const std::string tmp = args.bootstrap_file + ".tmp";
      std::ofstream(tmp) << bootstrap << "\n";
      std::rename(tmp.c_str(), args.bootstrap_file.c_str());
    }
    std::printf("kafka-mock: bootstrap %s\n", bootstrap.c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    std::printf("kafka-mock: stopped (signal %d)\n", sig);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "tensair: error: %s\n", e.what());
    return static_cast<int>(e.exit_code());
  }
}

}  // namespace

void add_kafka_mock_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<MockArgs>();
  CLI::App* cmd = app.add_subcommand(
      "kafka-mock", "start a local Kafka-protocol broker (librdkafka's mock cluster) for demos and tests");
  cmd->add_option("--port", args->port, "bootstrap port on 127.0.0.1 (default: the broker's own)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--brokers", args->brokers, "brokers in the cluster (default 1)")->check(CLI::Range(1, 16));
  cmd->add_option("--topic", args->topics, "create a topic, NAME or NAME:PARTITIONS (repeatable)");
  cmd->add_option("--bootstrap-file", args->bootstrap_file, "also write the bootstrap address here");
  cmd->callback([args, &exit_code] { exit_code = run(*args); });
}

}  // namespace tensair::apps

#include "report_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/drift/run_matching.hpp"

extern char** environ;

#ifndef TENSAIR_REPORT_SCRIPT_DEFAULT
#define TENSAIR_REPORT_SCRIPT_DEFAULT "scripts/report.py"
#endif

namespace tensair::apps {

namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultPython = "/usr/bin/python3";

struct ReportArgs {
  std::string out;
  std::string x;
  bool open = false;
};

int fail(const std::string& what, ExitCode code) {
  std::fprintf(stderr, "tensair: error: %s\n", what.c_str());
  return static_cast<int>(code);
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// This process's rank as the launcher announced it (0 without a launcher).
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  }
  return 0;
}

struct ChildResult {
  int spawn_error = 0;  // errno of a failed spawn (the program could not be started)
  int status = 0;       // waitpid status
  std::string out, err;
};

// Runs argv[0] (a path) with `argv`, capturing its stdout and stderr. Never throws.
ChildResult run_captured(const std::vector<std::string>& argv) {
  ChildResult r;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    r.spawn_error = errno;
    return r;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.spawn_error = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    r.spawn_error = rc;
    close(out_pipe[0]);
    close(err_pipe[0]);
    return r;
  }
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

// The last non-empty line of `text`, without a leading "error: ".
std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  size_t begin = text.rfind('\n', end);
  std::string line = text.substr(begin == std::string::npos ? 0 : begin + 1, end + 1 - (begin == std::string::npos ? 0 : begin + 1));
  if (line.rfind("error: ", 0) == 0) line.erase(0, 7);
  return line;
}

// The first executable `name` on PATH, or "".
std::string find_on_path(const std::string& name) {
  const std::string path = env_or("PATH", "/usr/bin:/bin");
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + name;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

int run_report(const ReportArgs& a) {
  if (launcher_rank() != 0) return 0;  // under mpirun: one report, from rank 0
  std::error_code ec;
  const fs::path out = a.out;
  if (!fs::exists(out, ec)) return fail("output folder " + a.out + " does not exist", ExitCode::kConfig);
  if (!fs::is_directory(out, ec)) {
    return fail(a.out + " is not a folder (expected a run's output folder)", ExitCode::kConfig);
  }
  if (!fs::exists(out / "metrics.jsonl", ec)) {
    return fail((out / "metrics.jsonl").string() + " does not exist (write it with `tensair run JOB --out " + a.out +
                    "`)",
                ExitCode::kConfig);
  }
  // The drift matches, by the one rule (tensair/drift/run_matching.hpp), for the script to show.
  try {
    drift::write_run_matches(out);
  } catch (const Error& e) {
    return fail(e.what(), e.exit_code());
  }
  const std::string script = env_or("TENSAIR_REPORT_SCRIPT", TENSAIR_REPORT_SCRIPT_DEFAULT);
  if (!fs::is_regular_file(script, ec)) {
    return fail("report script " + script + " does not exist (set TENSAIR_REPORT_SCRIPT to scripts/report.py)",
                ExitCode::kFailure);
  }
  const std::string python = env_or("TENSAIR_PYTHON", kDefaultPython);
  std::vector<std::string> argv = {python, script, a.out};
  if (!a.x.empty()) {
    argv.push_back("--x");
    argv.push_back(a.x);
  }
  ChildResult r = run_captured(argv);
  if (r.spawn_error != 0) {
    return fail("cannot run " + python + ": " + std::strerror(r.spawn_error) +
                    " (scripts/bootstrap.sh installs python3 and python3-matplotlib)",
                ExitCode::kFailure);
  }
  if (WIFSIGNALED(r.status)) {
    return fail("the report script was killed by signal " + std::to_string(WTERMSIG(r.status)), ExitCode::kFailure);
  }
  const int code = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : 1;
  if (code != 0) {
    std::string why = last_line(r.err);
    if (why.empty()) why = "the report script " + script + " exited with code " + std::to_string(code);
    return fail(why, code == 2 ? ExitCode::kConfig : ExitCode::kFailure);
  }
  if (!r.err.empty()) std::fputs(r.err.c_str(), stderr);  // the script's warnings, if any
  int plots = 0;
  for (size_t p = r.out.find(".png\n"); p != std::string::npos; p = r.out.find(".png\n", p + 1)) ++plots;
  const fs::path md = fs::absolute(out / "report.md", ec);
  if (plots > 0) {
    std::printf("tensair: report written to %s (%d plot%s in %s)\n", md.string().c_str(), plots,
                plots == 1 ? "" : "s", (md.parent_path() / "report").string().c_str());
  } else {
    std::printf("tensair: report written to %s (no plots: the run logged no model metrics)\n", md.string().c_str());
  }
  std::fflush(stdout);
  if (a.open) {
    const std::string opener = find_on_path("xdg-open");
    if (opener.empty()) {
      std::fprintf(stderr, "tensair: no xdg-open on this machine; open %s yourself\n", md.string().c_str());
      return 0;
    }
    ChildResult o = run_captured({opener, md.string()});
    if (o.spawn_error != 0 || !WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) {
      std::fprintf(stderr, "tensair: xdg-open could not open %s (%s); open it yourself\n", md.string().c_str(),
                   o.spawn_error ? std::strerror(o.spawn_error) : last_line(o.err).c_str());
    }
  }
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* report = app.add_subcommand(
      "report", "write OUT/report.md with plots (loss, accuracy, drift, throughput, staleness) from a run's metrics");
  report->add_option("out", args->out, "the run's output folder (tensair run --out OUT)")->required();
  report->add_option("--x", args->x, "x axis of the stream plots: time (seconds, default) or step")
      ->check(CLI::IsMember({"time", "step"}));
  report->add_flag("--open", args->open, "open report.md with xdg-open afterwards");
  report->callback([args, &exit_code] { exit_code = run_report(*args); });
}

}  // namespace tensair::apps

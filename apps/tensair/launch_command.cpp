#include "launch_command.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include "tensair/common/error.hpp"
#include "tensair/common/stop_signals.hpp"
#include "tensair/dataflow/checkpoint.hpp"
#include "tensair/job/job.hpp"

namespace tensair::apps {
namespace {

std::atomic<int> g_signal{0};
std::atomic<pid_t> g_child{0};

// First signal: a clean stop of the job (SIGUSR1 to mpirun, which forwards it to the ranks).
// Second: terminate it (mpirun then kills its ranks).
void on_signal(int sig) {
  int expected = 0;
  const pid_t child = g_child.load();
  if (g_signal.compare_exchange_strong(expected, sig)) {
    if (child > 0) ::kill(child, SIGUSR1);
    return;
  }
  if (child > 0) ::kill(child, SIGTERM);
}

void install_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM}) sigaction(sig, &sa, nullptr);
}

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string self_path() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "tensair";
  buf[n] = '\0';
  return buf;
}

// Starts argv in its own process group and waits for it; returns its exit code (128 + N when it
// died of signal N).
int run_child(const std::vector<std::string>& argv) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw IoError("cannot start " + argv[0] + ": fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);  // a terminal's Ctrl-C reaches the launcher only
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM}) sigaction(sig, &sa, nullptr);
    ::execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "tensair: error: launch: cannot run %s\n", argv[0].c_str());
    ::_exit(127);
  }
  g_child = pid;
  // A signal that arrived before the child existed is passed on now.
  if (g_signal.load() != 0) ::kill(pid, SIGUSR1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) break;
  }
  g_child = 0;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

bool is_clean_stop(int code) {
  return code == 128 + SIGINT || code == 128 + SIGTERM || code == 128 + SIGUSR1;
}

}  // namespace

void add_launch_options(CLI::App* cmd, LaunchArgs& args) {
  cmd->add_option("-n,--np", args.np, "ranks to start (default 1)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--restarts", args.restarts,
                  "restarts after a failure, from the latest checkpoint (default 0)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option(
      "--launcher", args.launcher,
      "the command that starts the ranks, \"{np}\" standing for N (default \"mpirun --bind-to none -np {np}\"), "
      "e.g. \"srun -n {np}\"");
  add_job_arguments(cmd, args.run);
  add_run_options(cmd, args.run);
}

int launch_command(const LaunchArgs& args) {
  // Where the job's checkpoints are, to know whether a restart can resume.
  std::filesystem::path checkpoints;
  std::string job_name;
  try {
    job::LoadOptions load;
    load.overrides = args.run.overrides;
    load.job_table_only = true;
    job::Job head = job::load_job(args.run.job_file, load);
    job_name = head.name;
    load.out_dir = args.run.out_dir.empty() ? std::filesystem::path("out") / head.name
                                            : std::filesystem::path(args.run.out_dir);
    head = job::load_job(args.run.job_file, load);
    if (head.executor.checkpoint.enabled) checkpoints = head.executor.checkpoint.dir;
  } catch (const Error& e) {
    std::fprintf(stderr, "tensair: error: %s\n", e.what());
    return static_cast<int>(e.exit_code());
  }
  if (args.restarts > 0 && checkpoints.empty()) {
    std::fprintf(stderr,
                 "tensair: launch: warning: job \"%s\" has no [checkpoint] table, so a restart "
                 "starts it from the "
                 "beginning\n",
                 job_name.c_str());
  }
  std::vector<std::string> prefix =
      split_words(args.launcher.empty() ? std::string("mpirun --bind-to none -np {np}") : args.launcher);
  for (auto& w : prefix) {
    for (size_t at; (at = w.find("{np}")) != std::string::npos;)
      w.replace(at, 4, std::to_string(args.np));
  }
  if (prefix.empty()) {
    std::fprintf(stderr, "tensair: error: --launcher is empty\n");
    return 2;
  }
  install_handlers();
  std::string resume = args.run.resume;
  int code = 0;
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> argv = prefix;
    argv.push_back(self_path());
    argv.push_back("run");
    argv.push_back(args.run.job_file);
    for (const auto& o : args.run.overrides) {
      argv.push_back("--set");
      argv.push_back(o);
    }
    if (!args.run.out_dir.empty()) argv.insert(argv.end(), {"--out", args.run.out_dir});
    if (!resume.empty()) argv.insert(argv.end(), {"--resume", resume});
    if (args.run.progress) argv.push_back("--progress");
    if (args.run.no_progress) argv.push_back("--no-progress");
    std::fprintf(stderr, "tensair: launch: attempt %d of %d: %s\n", attempt + 1, args.restarts + 1,
                 joined(argv).c_str());
    code = run_child(argv);
    if (g_signal.load() != 0) {
      // Stopped on request: not a failure, whatever the ranks' codes were.
      const int sig = g_signal.load();
      std::fprintf(stderr, "tensair: launch: the job stopped on %s (exit %d)\n", signal_name(sig),
                   code);
      return 128 + sig;
    }
    if (code == 0) return 0;
    if (code == static_cast<int>(ExitCode::kConfig) || is_clean_stop(code)) return code;
    if (attempt >= args.restarts) {
      std::fprintf(stderr,
                   "tensair: launch: the job failed (exit %d); no restart left (--restarts %d)\n",
                   code, args.restarts);
      return code;
    }
    auto complete = checkpoints.empty() ? decltype(dataflow::list_checkpoints(checkpoints)){}
                                        : dataflow::list_checkpoints(checkpoints);
    if (complete.empty()) {
      resume.clear();
      std::fprintf(stderr,
                   "tensair: launch: the job failed (exit %d); restarting from the beginning "
                   "(restart %d of %d)\n",
                   code, attempt + 1, args.restarts);
    } else {
      resume = "latest";
      std::fprintf(stderr,
                   "tensair: launch: the job failed (exit %d); restarting from checkpoint %s "
                   "(restart %d of %d)\n",
                   code, dataflow::checkpoint_folder_name(complete.front().first).c_str(),
                   attempt + 1, args.restarts);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace tensair::apps

// Errors that end a job. Every job-ending problem throws one of these; the CLI and the Python
// entry point catch once, print `tensair: error: <what>` and exit with exit_code().
//
// Layers add context on the way up with Error::with_context ("operator \"model\": ..."), so the
// user sees one line that says what went wrong and where. Expected per-record failures (a bad
// CSV row, an undecodable record) are not errors: they go to the dead-letter output.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace tensair {

// Process exit codes. kConfig is also used for missing or unreadable input files named in a
// job, since both are mistakes the user fixes in the job file or on the command line.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,  // the job failed while running (I/O, transport, model, a worker's exception)
  kConfig = 2,   // bad command line, bad job file, missing input file: nothing was run
};

// The kinds of Error, so that an error crossing a thread or a rank (as a message) is rethrown
// as the same C++ type it was raised as.
enum class ErrorKind : uint8_t {
  kError = 0,      // Error itself
  kConfig = 1,     // ConfigError
  kIo = 2,         // IoError
  kTransport = 3,  // TransportError
  kData = 4,       // DataError
  kModel = 5,      // ModelError
  kCancelled = 6,  // Cancelled
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ExitCode code = ExitCode::kFailure)
      : std::runtime_error(what), code_(code) {}
  ExitCode exit_code() const { return code_; }
  virtual ErrorKind kind() const { return ErrorKind::kError; }

  // The rank the error arose on, when it reached this process from another rank (the job's
  // error path carries it there); -1 when it arose in this process. The CLI prints an error
  // only on the rank it arose on, so a job's error is one line, not one per rank.
  int origin_rank() const { return origin_rank_; }
  bool from_other_rank() const { return origin_rank_ >= 0; }

  // Returns a copy of this error (same dynamic kind and exit code) whose message is
  // "<context>: <message>". Use when rethrowing across a layer or operator boundary.
  [[noreturn]] void rethrow_with_context(const std::string& context) const;

  // Throws an error of `kind` with `what` and `code`; `origin_rank` >= 0 marks it as having
  // arisen on that (other) rank.
  [[noreturn]] static void raise(ErrorKind kind, const std::string& what, ExitCode code,
                                 int origin_rank = -1);

 private:
  ExitCode code_;
  int origin_rank_ = -1;
};

// A bad job file, command line or parameter value. Exit code 2.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what, ExitCode::kConfig) {}
  ErrorKind kind() const override { return ErrorKind::kConfig; }
};

// A file that cannot be opened, read or written. Exit code 2 when raised at start-up for a
// missing input (the constructor flag), 1 otherwise.
class IoError : public Error {
 public:
  explicit IoError(const std::string& what, ExitCode code = ExitCode::kFailure)
      : Error(what, code) {}
  ErrorKind kind() const override { return ErrorKind::kIo; }
};

// MPI failures and frames that fail validation (bad magic, checksum, length, channel).
class TransportError : public Error {
 public:
  explicit TransportError(const std::string& what) : Error(what) {}
  ErrorKind kind() const override { return ErrorKind::kTransport; }
};

// A record batch or payload that fails validation where it cannot be dead-lettered.
class DataError : public Error {
 public:
  explicit DataError(const std::string& what) : Error(what) {}
  ErrorKind kind() const override { return ErrorKind::kData; }
};

// The model layer: shape mismatches, NaN policy stops, bad checkpoints.
class ModelError : public Error {
 public:
  explicit ModelError(const std::string& what) : Error(what) {}
  ErrorKind kind() const override { return ErrorKind::kModel; }
};

// Thrown inside worker threads when the job is being cancelled (another worker or rank
// failed). Never shown to the user: the original error is.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
  ErrorKind kind() const override { return ErrorKind::kCancelled; }
};

}  // namespace tensair

// Programmer errors: conditions that no input can trigger. Throws tensair::Error with the
// source location so a broken invariant still ends the job cleanly.
#define TENSAIR_ASSERT(cond, msg)                                                       \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      throw ::tensair::Error(std::string("internal error at ") + __FILE__ + ":" +       \
                             std::to_string(__LINE__) + ": " + (msg) + " (" #cond ")"); \
    }                                                                                   \
  } while (0)

// A Transport moves validated byte frames between the ranks of one job; it knows nothing of
// operators, batches or tensors.
//
// Threading: send() may be called from any thread. Incoming frames are handed to the handler
// given to start(), on the transport's own progress thread, one at a time, and in the order
// each source rank sent them (per-source FIFO). The handler must not block for long: it runs on
// the thread that moves every other frame. All MPI calls of MpiTransport happen on that thread.
//
// Lifecycle: construct, then one or more runs of start(handlers), send()..., shutdown(); then
// destroy. shutdown() is collective: it returns once every rank has called it and every frame
// sent to this rank has been handed to the handler, and no rank returns from it before all
// ranks have drained, so frames of a next run never mix with this one. No send() may follow
// shutdown() until the next start().
//
// Errors: a frame that fails validation, or a failed MPI call, is reported once through the
// error handler (on the progress thread); the transport keeps running so that the job can stop
// through the normal shutdown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensair/runtime/frame.hpp"

namespace tensair::runtime {

struct TransportStats {
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
};

class Transport {
 public:
  using FrameHandler = std::function<void(InFrame&& frame)>;
  using ErrorHandler = std::function<void(const std::string& message)>;

  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Starts the progress thread. Both handlers are called on it.
  virtual void start(FrameHandler on_frame, ErrorHandler on_error) = 0;

  // Queues a frame for `dst_rank` (which may be this rank: the frame is then delivered through
  // the handler like any other, without MPI). Never blocks on the receiver.
  virtual void send(int dst_rank, OutFrame frame) = 0;

  // Test hook: sends `bytes` to `dst_rank` as one frame message, exactly as given (no framing,
  // no checksum), so tests can check that receivers reject what fails validation.
  virtual void send_raw(int dst_rank, std::vector<std::byte> bytes) = 0;
  // Test hook: `header_message` as a frame's header message and each of `parts` as one of its
  // part messages, exactly as given, so tests can send a multi-part frame whose header lies.
  // Transports without part messages (LocalCluster) send the header message alone.
  virtual void send_raw_parts(int dst_rank, std::vector<std::byte> header_message,
                              std::vector<std::vector<std::byte>> parts) {
    send_raw(dst_rank, std::move(header_message));
  }

  // Collective end of communication; see the file comment.
  virtual void shutdown() = 0;

  // Failure detection. The progress thread sends a heartbeat to every peer it has sent nothing
  // to for a while and notes when anything arrives from each; a peer silent for `timeout_s`,
  // or whose process has gone (peers on this host are also checked by process id), is reported
  // once through `on_lost` (on the progress thread). Call before start(); it applies to every
  // later run. The default (LocalCluster, whose ranks cannot fail alone) watches nothing.
  using PeerLostHandler = std::function<void(int rank, const std::string& what)>;
  virtual void watch_peers(double timeout_s, PeerLostHandler on_lost) {}
  // Leaves without the collective shutdown, after peers were lost (`lost`: those this rank
  // knows of): what is queued for the other peers is still sent for up to a second, then the
  // progress thread stops, nothing more is sent or received, and the transport cannot start
  // again. Destroying an abandoned transport does not finalise MPI (that would wait for the
  // lost peer forever).
  virtual void abandon(const std::vector<int>& lost) {}
  virtual bool abandoned() const { return false; }

  virtual TransportStats stats() const = 0;

  // Largest frame (header + payload) this transport accepts; larger incoming frames are
  // rejected as invalid, larger outgoing frames are an error at send().
  virtual size_t max_frame_bytes() const = 0;
};

// Tuning of the MPI progress thread.
struct MpiTransportOptions {
  size_t max_frame_bytes = size_t{4} << 30;  // 4 GiB
  size_t pack_threshold = 64 * 1024;  // frames up to this size travel as one packed message
  int spin_us = 200;                  // busy-poll this long after the last activity
  int max_sleep_us = 1000;            // then sleep, doubling up to this, between polls
};

// The MPI transport. The constructor initialises MPI (MPI_THREAD_SERIALIZED or better) unless
// it is already initialised (mpi4py, a host program), and the destructor finalises it only if
// the constructor initialised it; both must run on the process's main thread. Communication
// uses a private duplicate of MPI_COMM_WORLD. Without mpirun this is an MPI singleton: one rank.
std::unique_ptr<Transport> make_mpi_transport(MpiTransportOptions options = {});

// True when this process was started by mpirun/srun with more than one rank, judged from the
// environment before MPI is initialised. Lets `tensair` decide cheaply which messages to print.
int launcher_world_size();

// An in-process cluster of `world_size` ranks connected by memory queues, for tests: each rank
// runs its own executor (on its own threads) exactly as it would under mpirun. Frames are packed
// and validated as on the wire. The cluster must outlive its transports' use.
class LocalCluster {
 public:
  explicit LocalCluster(int world_size);
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  int world_size() const;
  Transport& transport(int rank);

  struct Hub;  // shared state of the cluster (local_transport.cpp)

 private:
  std::shared_ptr<Hub> hub_;
};

}  // namespace tensair::runtime

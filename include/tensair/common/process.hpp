// Process-wide settings every TensAIR program applies at start-up.
#pragma once

namespace tensair {

// Keeps the buffers of a training step (LibTorch's activations and gradients) in the heap
// instead of returning them to the kernel after every use: glibc's defaults mmap and munmap
// every block above 128 KiB and trim the heap eagerly, which made a CIFAR CNN step 3.4x slower
// here. Sets M_TRIM_THRESHOLD to 2 GiB (the largest value mallopt takes) and M_MMAP_THRESHOLD to
// 4 MiB: blocks of that size and more (model-sized replica updates, snapshots, big batches) are
// mmap'd and go back to the kernel when freed. With the threshold at 32 MiB they fragmented the
// never-trimmed arenas: in tests/e2e/exchange_memory_test.sh the slow rank's RSS climbed from
// ~300 to ~600 MiB over a minute while its live heap stayed ~90 MiB; at 4 MiB it stays flat,
// and bench_model's CIFAR CNN (4 MiB activations at batch 32) ran as fast (bench/README.md).
// A threshold of 1 MiB with glibc's trimming was ~30 % slower. The user's GLIBC_TUNABLES or
// MALLOC_* variables win over all of this. Returns a description for logs and benchmark
// headers, e.g. "glibc malloc, mmap_threshold=4MiB trim_threshold=2GiB (mallopt)".
const char* tune_allocator();

// The description tune_allocator() returned (or "glibc malloc, defaults" before it ran).
const char* allocator_description();

}  // namespace tensair

// Process-wide settings every TensAIR program applies at start-up.
#pragma once

namespace tensair {

// Keeps large buffers (LibTorch's training tensors, big frames) in the heap instead of
// returning them to the kernel after every use: glibc's defaults mmap and munmap every block
// above 128 KiB and trim the heap eagerly, which made a CIFAR CNN step 3.4x slower here. Sets
// M_MMAP_THRESHOLD to 32 MiB (glibc's maximum) and M_TRIM_THRESHOLD to 2 GiB (the largest value mallopt takes), unless the user
// set GLIBC_TUNABLES or MALLOC_* variables, which then win. Returns a description for logs and
// benchmark headers, e.g. "glibc malloc, mmap_threshold=32MiB trim_threshold=2GiB (mallopt)".
const char* tune_allocator();

// The description tune_allocator() returned (or "glibc malloc, defaults" before it ran).
const char* allocator_description();

}  // namespace tensair

// Job-file types of the dataset readers (io/). See docs/io.md for every key.
#pragma once

namespace tensair::io {

// Registers cifar10_source, tabular_source, skipgram_source and w2v_pairs_source with
// tensair::job::register_operator_type. Idempotent; call once at start-up, before loading a job.
void register_job_types();

}  // namespace tensair::io

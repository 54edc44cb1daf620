// TensAIR's public C++ API in one include.
#pragma once

#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/process.hpp"
#include "tensair/dataflow/batch.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/dataflow/graph.hpp"
#include "tensair/dataflow/operator.hpp"
#include "tensair/job/job.hpp"
#include "tensair/ops/collect.hpp"
#include "tensair/ops/functional.hpp"
#include "tensair/ops/sinks.hpp"
#include "tensair/ops/sources.hpp"
#include "tensair/runtime/transport.hpp"

#include "testing/operator_driver.hpp"

#include "testing/batch_equality.hpp"

namespace tensair::testing {

using dataflow::BatchPtr;
using dataflow::InstanceInfo;
using dataflow::OperatorDef;

InstanceInfo instance_info(const std::string& name, int instance, int instances) {
  InstanceInfo info;
  info.name = name;
  info.instance = instance;
  info.instances = instances;
  return info;
}

namespace {
InstanceInfo typed(InstanceInfo info, const OperatorDef& def) {
  info.type = def.type();
  return info;
}
}  // namespace

OperatorDriver::OperatorDriver(std::shared_ptr<const OperatorDef> def, InstanceInfo info)
    : def_(std::move(def)), ctx_(typed(std::move(info), *def_)) {
  op_ = def_->instantiate(ctx_.info());
  op_->open(ctx_);
}

OperatorDriver::OperatorDriver(std::shared_ptr<const OperatorDef> def, InstanceInfo info,
                               const std::string& state)
    : def_(std::move(def)), ctx_(typed(std::move(info), *def_)) {
  op_ = def_->instantiate(ctx_.info());
  dataflow::StateReader reader(state, state_name(ctx_.info()));
  op_->restore(reader, ctx_);
  reader.expect_end();
  op_->open(ctx_);
}

std::string OperatorDriver::state_name(const InstanceInfo& info) {
  return "test checkpoint, state of \"" + info.name + "\" instance " +
         std::to_string(info.instance);
}

int OperatorDriver::produce(int calls) {
  int made = 0;
  while (made < calls && !done_) {
    done_ = op_->produce(ctx_) == dataflow::SourceState::kDone;
    ++made;
  }
  return made;
}

void OperatorDriver::run_to_end(int max_calls) {
  produce(max_calls);
  EXPECT_TRUE(done_) << "the source did not finish within " << max_calls << " produce() calls";
}

void OperatorDriver::process(int port, BatchPtr batch) { op_->process(port, batch, ctx_); }
void OperatorDriver::input_done(int port) { op_->on_input_done(port, ctx_); }
void OperatorDriver::timer() { op_->on_timer(ctx_); }
void OperatorDriver::finish() { op_->on_finish(ctx_); }

std::string OperatorDriver::snapshot() {
  dataflow::StateWriter w;
  op_->snapshot(w, ctx_);
  return w.take();
}

Resume resume_source(const std::shared_ptr<const OperatorDef>& def, const InstanceInfo& info,
                     int calls) {
  Resume r;
  {
    OperatorDriver original(def, info);
    r.calls = original.produce(calls);
    r.state = original.snapshot();
    r.head = original.ctx();
    original.ctx().clear_records();
    original.run_to_end();
    r.reference = original.ctx();
  }
  {
    OperatorDriver restored(def, info, r.state);
    restored.run_to_end();
    r.resumed = restored.ctx();
  }
  {
    OperatorDriver whole(def, info);
    whole.run_to_end();
    r.uninterrupted = whole.ctx();
  }
  return r;
}

namespace {

void feed(OperatorDriver& driver, const std::vector<Input>& inputs, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (inputs[i].batch) {
      driver.process(inputs[i].port, inputs[i].batch);
    } else {
      driver.input_done(inputs[i].port);
    }
  }
}

}  // namespace

Resume resume_operator(const std::shared_ptr<const OperatorDef>& def, const InstanceInfo& info,
                       const std::vector<Input>& inputs, size_t at) {
  Resume r;
  {
    OperatorDriver original(def, info);
    feed(original, inputs, 0, at);
    r.state = original.snapshot();
    r.head = original.ctx();
    original.ctx().clear_records();
    feed(original, inputs, at, inputs.size());
    original.finish();
    r.reference = original.ctx();
  }
  {
    OperatorDriver restored(def, info, r.state);
    feed(restored, inputs, at, inputs.size());
    restored.finish();
    r.resumed = restored.ctx();
  }
  {
    OperatorDriver whole(def, info);
    feed(whole, inputs, 0, inputs.size());
    whole.finish();
    r.uninterrupted = whole.ctx();
  }
  return r;
}

namespace {

::testing::AssertionResult same_events(const std::vector<nlohmann::json>& expected,
                                       const std::vector<nlohmann::json>& actual) {
  if (expected != actual) {
    return ::testing::AssertionFailure()
           << "events differ: expected " << nlohmann::json(expected).dump() << ", got "
           << nlohmann::json(actual).dump();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_dead_letters(const std::vector<DeadLetter>& expected,
                                             const std::vector<DeadLetter>& actual) {
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "expected " << expected.size() << " dead letters, got " << actual.size();
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!(expected[i] == actual[i])) {
      return ::testing::AssertionFailure()
             << "dead letter " << i << ": expected \"" << expected[i].reason << "\", got \""
             << actual[i].reason << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult same_records(const RecordingContext& expected,
                                        const RecordingContext& actual) {
  std::map<int, bool> ports;
  for (const auto& [port, batches] : expected.all_emitted()) ports[port] = true;
  for (const auto& [port, batches] : actual.all_emitted()) ports[port] = true;
  for (const auto& [port, unused] : ports) {
    auto r = batch_lists_equal(expected.emitted(port), actual.emitted(port));
    if (!r) return ::testing::AssertionFailure() << "port " << port << ": " << r.message();
  }
  if (auto r = same_dead_letters(expected.dead_letters(), actual.dead_letters()); !r) return r;
  return same_events(expected.events(), actual.events());
}

::testing::AssertionResult concatenation_is(const RecordingContext& head,
                                            const RecordingContext& tail,
                                            const RecordingContext& whole) {
  RecordingContext joined(whole.info());
  for (const RecordingContext* part : {&head, &tail}) {
    for (const auto& [port, batches] : part->all_emitted()) {
      for (const BatchPtr& b : batches) joined.emit(port, b);
    }
    for (const DeadLetter& d : part->dead_letters()) joined.dead_letter(d.reason, d.record);
    for (const nlohmann::json& e : part->events()) joined.log_event(e);
  }
  return same_records(whole, joined);
}

}  // namespace tensair::testing

// The kafka-mock command of the tensair CLI:
//
//   tensair kafka-mock [--port P] [--brokers N] [--topic NAME:PARTITIONS ...]
//                      [--bootstrap-file FILE]
//
// Starts a local Kafka-protocol broker (librdkafka's mock cluster, in this process) for demos and
// tests, creates the topics, prints "kafka-mock: bootstrap HOST:PORT" on stdout (and writes
// HOST:PORT to FILE), and serves until SIGINT or SIGTERM, then exits 0. The mock brokers listen on
// loopback ports the kernel picks; with --port P the bootstrap address is 127.0.0.1:P, a relay
// to the first broker (clients then connect to the brokers the metadata names). The mock keeps
// everything in memory and, in librdkafka 2.0, does not hide aborted transactions from
// read_committed readers (docs/kafka.md).
#pragma once

#include <CLI/CLI.hpp>

namespace tensair::apps {

// Adds the `kafka-mock` subcommand; when parsed, its callback runs the command (during
// app.parse()) and stores its exit code in `exit_code`.
void add_kafka_mock_command(CLI::App& app, int& exit_code);

}  // namespace tensair::apps

// cgbench's results: rows of a table, printed for people and written as JSON.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace cgbench {

struct Row {
  std::string name;
  std::optional<double> cgcore;  // cgcore's figure (engine, fs layer or mount)
  std::optional<double> kernel;  // the host kernel's figure on the same work
  std::optional<double> ratio;   // kernel / cgcore for times (higher: cgcore faster)
  std::string unit;              // "ns", "us", "ms", "x", "bytes", "allocs", "ops/s"
  std::string note;              // printed in the table (e.g. why a figure is missing)
  std::string target;            // the bar, if this row carries one ("ratio >= 20")
  std::optional<bool> met;       // whether the bar is met (unset: no bar / not measured)
};

// A time row: ratio = kernel / cgcore when both are there.
Row time_row(std::string name, std::optional<double> cgcore, std::optional<double> kernel,
             std::string unit, std::string note = "");
// A row without a kernel figure.
Row value_row(std::string name, std::optional<double> cgcore, std::string unit,
              std::string note = "");

// Rows passed between cgbench's processes: one line per row, tab-separated.
std::string serialize(const std::vector<Row>& rows);
std::vector<Row> deserialize(const std::string& text);

// The table, for a terminal.
void print_table(const std::vector<Row>& rows, FILE* out);
// [{"name", "cgcore", "kernel", "ratio", "unit"}...]; false on an I/O error.
bool write_json(const std::vector<Row>& rows, const std::string& path);

}  // namespace cgbench

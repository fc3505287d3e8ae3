#include "bench/cgbench/report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace cgbench {

Row time_row(std::string name, std::optional<double> cgcore, std::optional<double> kernel,
             std::string unit, std::string note) {
  Row r;
  r.name = std::move(name);
  r.cgcore = cgcore;
  r.kernel = kernel;
  if (cgcore && kernel && *cgcore > 0) r.ratio = *kernel / *cgcore;
  r.unit = std::move(unit);
  r.note = std::move(note);
  return r;
}

Row value_row(std::string name, std::optional<double> cgcore, std::string unit, std::string note) {
  return time_row(std::move(name), cgcore, std::nullopt, std::move(unit), std::move(note));
}

namespace {

std::string num(const std::optional<double>& v) {
  if (!v) return "-";
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", *v);
  return buf;
}

std::optional<double> parse_num(const std::string& s) {
  if (s == "-") return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

// Escapes tabs and newlines out of a free-text field.
std::string clean(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n') c = ' ';
  return s;
}

// A figure for the table: 3 significant digits, plain notation.
std::string human(const std::optional<double>& v) {
  if (!v) return "-";
  double x = *v;
  char buf[64];
  double a = std::fabs(x);
  if (a == 0)
    snprintf(buf, sizeof buf, "0");
  else if (a >= 1000)
    snprintf(buf, sizeof buf, "%.0f", x);
  else if (a >= 100)
    snprintf(buf, sizeof buf, "%.1f", x);
  else if (a >= 10)
    snprintf(buf, sizeof buf, "%.2f", x);
  else if (a >= 0.01)
    snprintf(buf, sizeof buf, "%.3f", x);
  else
    snprintf(buf, sizeof buf, "%.2g", x);
  return buf;
}

std::string json_num(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return "null";
  char buf[64];
  snprintf(buf, sizeof buf, "%.6g", *v);
  return buf;
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string serialize(const std::vector<Row>& rows) {
  std::string out;
  for (const Row& r : rows) {
    out += clean(r.name) + "\t" + num(r.cgcore) + "\t" + num(r.kernel) + "\t" + num(r.ratio) +
           "\t" + clean(r.unit) + "\t" + (r.met ? (*r.met ? "1" : "0") : "-") + "\t" +
           clean(r.target) + "\t" + clean(r.note) + "\n";
  }
  return out;
}

std::vector<Row> deserialize(const std::string& text) {
  std::vector<Row> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    size_t pos = 0;
    for (;;) {
      size_t t = line.find('\t', pos);
      f.push_back(line.substr(pos, t == std::string::npos ? std::string::npos : t - pos));
      if (t == std::string::npos) break;
      pos = t + 1;
    }
    if (f.size() < 8) continue;
    Row r;
    r.name = f[0];
    r.cgcore = parse_num(f[1]);
    r.kernel = parse_num(f[2]);
    r.ratio = parse_num(f[3]);
    r.unit = f[4];
    if (f[5] != "-") r.met = f[5] == "1";
    r.target = f[6];
    r.note = f[7];
    rows.push_back(std::move(r));
  }
  return rows;
}

void print_table(const std::vector<Row>& rows, FILE* out) {
  size_t wname = 4;
  for (const Row& r : rows) wname = std::max(wname, r.name.size());
  fprintf(out, "%-*s %12s %12s %9s  %-6s %-22s %s\n", static_cast<int>(wname), "name", "cgcore",
          "kernel", "ratio", "unit", "target", "note");
  for (const Row& r : rows) {
    std::string cg = human(r.cgcore);
    if (!r.cgcore && !r.note.empty() && r.note.rfind("n/a", 0) == 0) cg = "n/a";
    std::string target = r.target;
    if (!target.empty()) target += r.met ? (*r.met ? " MET" : " MISSED") : " (n/a)";
    fprintf(out, "%-*s %12s %12s %9s  %-6s %-22s %s\n", static_cast<int>(wname), r.name.c_str(),
            cg.c_str(), human(r.kernel).c_str(), human(r.ratio).c_str(), r.unit.c_str(),
            target.c_str(), r.note.c_str());
  }
}

bool write_json(const std::vector<Row>& rows, const std::string& path) {
  FILE* f = fopen(path.c_str(), "w");
  if (!f) return false;
  fprintf(f, "[\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    fprintf(f, "  {\"name\": %s, \"cgcore\": %s, \"kernel\": %s, \"ratio\": %s, \"unit\": %s}%s\n",
            json_str(r.name).c_str(), json_num(r.cgcore).c_str(), json_num(r.kernel).c_str(),
            json_num(r.ratio).c_str(), json_str(r.unit).c_str(), i + 1 < rows.size() ? "," : "");
  }
  fprintf(f, "]\n");
  return fclose(f) == 0;
}

}  // namespace cgbench

// --compare: runs another engine's benchmark command and reads its tokens/s. llama-bench's
// output forms are recognised: -o json (an array of objects with n_prompt, n_gen, avg_ts), -o jsonl
// (one such object per line) and -o md (a "| ... | pp512 | 123.45 ± 1.20 |" table).
#pragma once

#include <moe/core/error.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/wait.h>

namespace moe::bench_tool {

struct CommandResult {
  int status = 0;      // exit status (128 + signal when killed by one)
  std::string output;  // its stdout (stderr passes through to ours)
};

// Runs `cmd` through /bin/sh -c (popen) and collects its stdout (at most 64 MiB). kIo when it
// cannot be started; a non-zero status is returned, not thrown.
inline CommandResult run_command(const std::string& cmd) {
  std::fflush(nullptr);  // our buffered output first, so the streams stay in order
  FILE* p = ::popen(cmd.c_str(), "r");
  require(p != nullptr, ErrorCode::kIo, "--compare: cannot run '{}'", cmd);
  CommandResult r;
  char buf[65536];
  std::size_t n = 0;
  constexpr std::size_t kMaxOutput = std::size_t{64} << 20;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    if (r.output.size() < kMaxOutput) r.output.append(buf, n);
  }
  const int st = ::pclose(p);
  if (st == -1) r.status = 127;
  else if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
  else if (WIFSIGNALED(st)) r.status = 128 + WTERMSIG(st);
  else r.status = 1;
  return r;
}

// The last non-empty line of `text` (at most 200 characters), for messages.
inline std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  if (line.size() > 200) line = line.substr(line.size() - 200);
  return std::string(line);
}

namespace detail {

inline std::optional<double> number_field(const nlohmann::json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// avg_ts of the row for (n_prompt, n_gen) among `rows` (objects); the only row when there is one.
inline std::optional<double> pick_row(const std::vector<nlohmann::json>& rows, long n_prompt, long n_gen) {
  std::optional<double> only;
  int with_ts = 0;
  for (const auto& r : rows) {
    if (!r.is_object()) continue;
    const auto ts = number_field(r, "avg_ts");
    if (!ts) continue;
    ++with_ts;
    only = ts;
    const auto p = number_field(r, "n_prompt"), g = number_field(r, "n_gen");
    if (p && g && static_cast<long>(*p) == n_prompt && static_cast<long>(*g) == n_gen) return ts;
  }
  return with_ts == 1 ? only : std::nullopt;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace detail

// Tokens/s of the test (n_prompt, n_gen) in a llama-bench output (json, jsonl or md), or nullopt
// when none is found. A pp test is (N, 0), a tg test (0, N), as llama-bench reports them.
inline std::optional<double> parse_llama_bench(std::string_view out, long n_prompt, long n_gen) {
  // -o json: the outermost array.
  const auto open = out.find('['), close = out.rfind(']');
  if (open != std::string_view::npos && close != std::string_view::npos && close > open) {
    const nlohmann::json j = nlohmann::json::parse(out.substr(open, close - open + 1), nullptr, false);
    if (j.is_array()) return detail::pick_row(std::vector<nlohmann::json>(j.begin(), j.end()), n_prompt, n_gen);
  }
  // -o jsonl: one object per line.
  std::vector<nlohmann::json> rows;
  std::optional<double> md;
  const std::string pp = fmt::format("pp{}", n_prompt), tg = fmt::format("tg{}", n_gen);
  const std::string_view want = n_gen == 0 ? std::string_view(pp) : std::string_view(tg);
  std::size_t pos = 0;
  while (pos < out.size()) {
    const auto nl = out.find('\n', pos);
    const std::string_view line = detail::trim(out.substr(pos, nl == std::string_view::npos ? out.size() - pos : nl - pos));
    pos = nl == std::string_view::npos ? out.size() : nl + 1;
    if (line.starts_with('{')) {
      nlohmann::json o = nlohmann::json::parse(line, nullptr, false);
      if (o.is_object()) rows.push_back(std::move(o));
    } else if (line.starts_with('|') && !md) {
      // -o md: the cell "ppN"/"tgN" (llama-bench may add " @ dM"), then "t/s ± sd" in the last cell.
      std::vector<std::string_view> cells;
      std::string_view rest = line.substr(1);
      while (!rest.empty()) {
        const auto bar = rest.find('|');
        cells.push_back(detail::trim(rest.substr(0, bar)));
        if (bar == std::string_view::npos) break;
        rest = rest.substr(bar + 1);
      }
      if (!cells.empty() && cells.back().empty()) cells.pop_back();
      bool match = false;
      for (std::size_t c = 0; c + 1 < cells.size(); ++c) {
        if (cells[c] == want || (cells[c].starts_with(want) && cells[c].substr(want.size()).starts_with(" @"))) match = true;
      }
      if (match) {
        const std::string last(cells.back());
        char* end = nullptr;
        const double v = std::strtod(last.c_str(), &end);
        if (end != last.c_str() && v > 0) md = v;
      }
    }
  }
  if (auto ts = detail::pick_row(rows, n_prompt, n_gen)) return ts;
  return md;
}

}  // namespace moe::bench_tool

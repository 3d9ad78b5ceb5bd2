// The Python methods a template may call on a value, as transformers' ImmutableSandboxedEnvironment
// allows them: str methods (strip/lstrip/rstrip with chars, split/rsplit with maxsplit,
// startswith/endswith with tuples, replace with count, find/index/count in code points, ...),
// dict.get/items/keys/values, list.index/count. Methods that would modify a list or dict are
// refused as the sandbox refuses them.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include "moe/chat/runtime.hpp"
#include "moe/chat/text.hpp"

namespace moe::chat {

namespace methods_detail {

inline bool is_str_method(std::string_view n) {
  static constexpr std::string_view kNames[] = {
      "capitalize", "casefold", "center",    "count",      "endswith",  "find",         "index",        "isalnum",
      "isalpha",    "isdigit",  "isnumeric", "isdecimal",  "islower",   "isspace",      "istitle",      "isupper",
      "join",       "ljust",    "lower",     "lstrip",     "partition", "removeprefix", "removesuffix", "replace",
      "rfind",      "rindex",   "rjust",     "rpartition", "rsplit",    "rstrip",       "split",        "splitlines",
      "startswith", "strip",    "swapcase",  "title",      "upper",     "zfill",        "format"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}
inline bool is_dict_method(std::string_view n) {
  return n == "get" || n == "items" || n == "keys" || n == "values" || n == "copy";
}
inline bool is_list_method(std::string_view n) { return n == "index" || n == "count" || n == "copy"; }
// Methods the immutable sandbox refuses (they modify the object).
inline bool is_mutating_method(std::string_view n) {
  static constexpr std::string_view kNames[] = {"append",  "extend", "insert", "pop",    "remove",
                                                "reverse", "sort",   "clear",  "update", "setdefault",
                                                "popitem", "add",    "discard"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

inline const std::string& str_arg(Runtime& rt, const Value* v, std::string_view method, std::string_view param) {
  if (v == nullptr) rt.fail("str.{}() is missing the argument '{}'", method, param);
  if (!v->is_string()) rt.fail("str.{}() argument '{}' must be str, not {}", method, param, v->type_name());
  return v->as_string();
}

inline std::int64_t int_arg(Runtime& rt, const Value* v, std::int64_t fallback, std::string_view method) {
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) rt.fail("{}() needs an integer argument, got {}", method, v->type_name());
  return v->to_int();
}

// Python str.split / rsplit.
inline List split(Runtime& rt, const std::string& s, const Value* sep, std::int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep == nullptr || sep->is_none()) {
    // Runs of whitespace separate; leading/trailing whitespace yields no empty parts.
    std::vector<std::pair<std::size_t, std::size_t>> words;  // byte ranges
    std::size_t i = 0;
    while (i < s.size()) {
      std::size_t j = i;
      if (text::is_space(text::decode(s, j))) {
        i = j;
        continue;
      }
      const std::size_t start = i;
      i = j;
      while (i < s.size()) {
        std::size_t k = i;
        if (text::is_space(text::decode(s, k))) break;
        i = k;
      }
      words.emplace_back(start, i);
    }
    if (maxsplit < 0 || static_cast<std::size_t>(maxsplit) >= words.size()) {
      for (auto [a, b] : words) parts.push_back(s.substr(a, b - a));
    } else if (!from_right) {
      for (std::size_t w = 0; w < static_cast<std::size_t>(maxsplit); ++w)
        parts.push_back(s.substr(words[w].first, words[w].second - words[w].first));
      std::string rest(text::strip(std::string_view(s).substr(words[static_cast<std::size_t>(maxsplit)].first), nullptr,
                                   false, true));
      parts.push_back(std::move(rest));
    } else {
      const std::size_t keep = words.size() - static_cast<std::size_t>(maxsplit);
      parts.push_back(
          std::string(text::strip(std::string_view(s).substr(0, words[keep - 1].second), nullptr, true, false)));
      for (std::size_t w = keep; w < words.size(); ++w)
        parts.push_back(s.substr(words[w].first, words[w].second - words[w].first));
    }
  } else {
    const std::string& d = str_arg(rt, sep, from_right ? "rsplit" : "split", "sep");
    if (d.empty()) rt.fail("empty separator");
    if (!from_right) {
      std::size_t start = 0;
      std::int64_t n = 0;
      while (maxsplit < 0 || n < maxsplit) {
        const std::size_t at = s.find(d, start);
        if (at == std::string::npos) break;
        parts.push_back(s.substr(start, at - start));
        start = at + d.size();
        ++n;
      }
      parts.push_back(s.substr(start));
    } else {
      std::size_t end = s.size();
      std::int64_t n = 0;
      std::vector<std::string> rev;
      while (maxsplit < 0 || n < maxsplit) {
        if (end < d.size()) break;
        const std::size_t at = s.rfind(d, end - d.size());
        if (at == std::string::npos) break;
        rev.push_back(s.substr(at + d.size(), end - at - d.size()));
        end = at;
        ++n;
      }
      parts.push_back(s.substr(0, end));
      parts.insert(parts.end(), rev.rbegin(), rev.rend());
    }
  }
  rt.check_items(parts.size());
  List out;
  out.reserve(parts.size());
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  rt.charge_bytes(s.size());
  return out;
}

// Python str.replace(old, new, count): an empty `old` inserts `new` around every code point.
inline std::string replace(Runtime& rt, const std::string& s, const std::string& from, const std::string& to,
                           std::int64_t count) {
  std::string out;
  std::int64_t done = 0;
  auto limit_ok = [&] { return count < 0 || done < count; };
  auto grow = [&] { rt.check_string_size(out.size()); };
  if (from.empty()) {
    std::size_t i = 0;
    while (i <= s.size()) {
      if (limit_ok()) {
        out += to;
        ++done;
      }
      if (i == s.size()) break;
      const std::size_t len = text::sequence_length(static_cast<unsigned char>(s[i]));
      out.append(s, i, len);
      i += len;
      grow();
    }
    return out;
  }
  std::size_t start = 0;
  while (limit_ok()) {
    const std::size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += to;
    start = at + from.size();
    ++done;
    grow();
  }
  out.append(s, start, std::string::npos);
  return out;
}

// Python's str.title(): the first cased letter after an uncased one is upper, others lower.
inline std::string py_title(const std::string& s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (text::is_ascii_alpha(u)) {
      c = prev_cased ? static_cast<char>(text::is_ascii_upper(u) ? u - 'A' + 'a' : u)
                     : static_cast<char>(text::is_ascii_lower(u) ? u - 'a' + 'A' : u);
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

inline std::string py_capitalize(const std::string& s) {
  std::string out = text::to_lower(s);
  if (!out.empty() && text::is_ascii_lower(static_cast<unsigned char>(out[0])))
    out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

// Python str.center / ljust / rjust (widths in code points).
inline std::string pad(Runtime& rt, const std::string& s, std::int64_t width, const std::string& fill, int where) {
  const auto len = static_cast<std::int64_t>(text::length(s));
  if (width <= len) return s;
  const std::int64_t total = width - len;
  std::int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  rt.check_string_size(s.size() + static_cast<std::size_t>(total) * fill.size());
  std::string out;
  for (std::int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (std::int64_t i = left; i < total; ++i) out += fill;
  return out;
}

inline bool matches_affix(Runtime& rt, const std::string& s, const Value* arg, bool prefix, std::string_view method) {
  auto test = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg != nullptr && arg->is_list()) {
    for (const Value& v : arg->as_list()) {
      if (!v.is_string()) rt.fail("tuple for {} must only contain str, not {}", method, v.type_name());
      if (test(v.as_string())) return true;
    }
    return false;
  }
  return test(str_arg(rt, arg, method, prefix ? "prefix" : "suffix"));
}

inline std::size_t code_point_index(const std::string& s, std::size_t byte) {
  return text::length(std::string_view(s).substr(0, byte));
}

}  // namespace methods_detail

// Calls method `name` of str `self`.
inline Value call_str_method(Runtime& rt, const std::string& self, std::string_view name, CallArgs& args) {
  using namespace methods_detail;
  ArgReader r(rt, args, name);
  rt.charge_bytes(self.size());
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value* chars = r.get(0, "chars");
    r.finish(1);
    const std::string* set = nullptr;
    if (chars != nullptr && !chars->is_none()) set = &str_arg(rt, chars, name, "chars");
    return Value::string(std::string(text::strip(self, set, name != "rstrip", name != "lstrip")));
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = r.get(0, "sep");
    const Value* maxsplit = r.get(1, "maxsplit");
    r.finish(2);
    return rt.make_list(split(rt, self, sep, int_arg(rt, maxsplit, -1, name), name == "rsplit"));
  }
  if (name == "splitlines") {
    const Value* keep = r.get(0, "keepends");
    r.finish(1);
    const bool keepends = keep != nullptr && keep->truthy();
    List out;
    std::size_t start = 0, i = 0;
    while (i < self.size()) {
      std::size_t j = i;
      const char32_t c = text::decode(self, j);
      const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                       c == 0x85 || c == 0x2028 || c == 0x2029;
      if (!brk) {
        i = j;
        continue;
      }
      if (c == '\r' && j < self.size() && self[j] == '\n') ++j;
      out.push_back(Value::string(self.substr(start, (keepends ? j : i) - start)));
      start = i = j;
    }
    if (start < self.size()) out.push_back(Value::string(self.substr(start)));
    return rt.make_list(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* a = r.get(0, name == "startswith" ? "prefix" : "suffix");
    r.finish(1);
    return Value::boolean(matches_affix(rt, self, a, name == "startswith", name));
  }
  if (name == "upper" || name == "lower" || name == "casefold" || name == "title" || name == "capitalize" ||
      name == "swapcase") {
    r.finish(0);
    if (name == "upper") return Value::string(text::to_upper(self));
    if (name == "title") return Value::string(py_title(self));
    if (name == "capitalize") return Value::string(py_capitalize(self));
    if (name == "swapcase") {
      std::string out(self);
      for (char& c : out) {
        const auto u = static_cast<unsigned char>(c);
        if (text::is_ascii_upper(u))
          c = static_cast<char>(u - 'A' + 'a');
        else if (text::is_ascii_lower(u))
          c = static_cast<char>(u - 'a' + 'A');
      }
      return Value::string(std::move(out));
    }
    return Value::string(text::to_lower(self));
  }
  if (name == "replace") {
    const Value* from = r.get(0, "old");
    const Value* to = r.get(1, "new");
    const Value* count = r.get(2, "count");
    r.finish(3);
    return rt.make_string(replace(rt, self, str_arg(rt, from, name, "old"), str_arg(rt, to, name, "new"),
                                  int_arg(rt, count, -1, "replace")));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const Value* sub = r.get(0, "sub");
    r.finish(1);
    const std::string& needle = str_arg(rt, sub, name, "sub");
    if (name == "count") {
      if (needle.empty()) return Value::integer(static_cast<std::int64_t>(text::length(self) + 1));
      std::int64_t n = 0;
      for (std::size_t at = self.find(needle); at != std::string::npos; at = self.find(needle, at + needle.size())) ++n;
      return Value::integer(n);
    }
    const bool right = name[0] == 'r';
    const std::size_t at = right ? self.rfind(needle) : self.find(needle);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") rt.fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(static_cast<std::int64_t>(code_point_index(self, at)));
  }
  if (name == "join") {
    const Value* items = r.get(0, "iterable");
    r.finish(1);
    if (items == nullptr) rt.fail("str.join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& v : rt.iterate(*items)) {
      if (!v.is_string()) rt.fail("sequence item: expected str instance, {} found", v.type_name());
      if (!first) out += self;
      first = false;
      out += v.as_string();
      rt.check_string_size(out.size());
    }
    return rt.make_string(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string& a = str_arg(rt, r.get(0, name == "removeprefix" ? "prefix" : "suffix"), name, "affix");
    r.finish(1);
    if (name == "removeprefix" && self.compare(0, a.size(), a) == 0 && a.size() <= self.size())
      return Value::string(self.substr(a.size()));
    if (name == "removesuffix" && a.size() <= self.size() && self.compare(self.size() - a.size(), a.size(), a) == 0)
      return Value::string(self.substr(0, self.size() - a.size()));
    return Value::string(self);
  }
  if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
    const Value* width = r.get(0, "width");
    const Value* fill = name == "zfill" ? nullptr : r.get(1, "fillchar");
    r.finish(name == "zfill" ? 1 : 2);
    if (width == nullptr) rt.fail("{}() is missing the argument 'width'", name);
    const std::int64_t w = int_arg(rt, width, 0, name);
    if (name == "zfill") {
      const bool sign = !self.empty() && (self[0] == '-' || self[0] == '+');
      std::string body = pad(rt, sign ? self.substr(1) : self, sign ? w - 1 : w, "0", 1);
      return Value::string(sign ? self.substr(0, 1) + body : body);
    }
    const std::string f = fill == nullptr ? std::string(" ") : str_arg(rt, fill, name, "fillchar");
    if (text::length(f) != 1) rt.fail("The fill character must be exactly one character long");
    return Value::string(pad(rt, self, w, f, name == "center" ? 0 : name == "ljust" ? -1 : 1));
  }
  if (name == "partition" || name == "rpartition") {
    const std::string& sep = str_arg(rt, r.get(0, "sep"), name, "sep");
    r.finish(1);
    if (sep.empty()) rt.fail("empty separator");
    const std::size_t at = name == "partition" ? self.find(sep) : self.rfind(sep);
    if (at == std::string::npos) {
      if (name == "partition") return rt.make_list({Value::string(self), Value::string(""), Value::string("")}, true);
      return rt.make_list({Value::string(""), Value::string(""), Value::string(self)}, true);
    }
    return rt.make_list(
        {Value::string(self.substr(0, at)), Value::string(sep), Value::string(self.substr(at + sep.size()))}, true);
  }
  if (name.substr(0, 2) == "is") {
    r.finish(0);
    if (self.empty()) return Value::boolean(false);
    if (name == "islower" || name == "isupper") {
      bool cased = false;
      for (char c : self) {
        const auto u = static_cast<unsigned char>(c);
        if (name == "islower" ? text::is_ascii_upper(u) : text::is_ascii_lower(u)) return Value::boolean(false);
        cased = cased || text::is_ascii_alpha(u);
      }
      return Value::boolean(cased);
    }
    if (name == "istitle") return Value::boolean(py_title(self) == self && py_title(self) != text::to_lower(self));
    std::size_t i = 0;
    while (i < self.size()) {
      const char32_t c = text::decode(self, i);
      bool ok = false;
      if (name == "isspace")
        ok = text::is_space(c);
      else if (name == "isalpha")
        ok = text::is_ascii_alpha(c) || c >= 0x80;  // non-ASCII letters: approximated
      else if (name == "isalnum")
        ok = text::is_ascii_alpha(c) || text::is_ascii_digit(c) || c >= 0x80;
      else
        ok = text::is_ascii_digit(c);  // isdigit / isnumeric / isdecimal
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(true);
  }
  if (name == "format") rt.fail("str.format() is not supported in chat templates");
  rt.fail("'str' object has no attribute '{}'", name);
}

inline Value call_dict_method(Runtime& rt, const Value& self, std::string_view name, CallArgs& args) {
  ArgReader r(rt, args, name);
  const Dict& d = self.as_dict();
  if (name == "get") {
    const Value* key = r.get(0, "key");
    const Value* fallback = r.get(1, "default");
    r.finish(2);
    if (key == nullptr) rt.fail("get expected at least 1 argument, got 0");
    if (key->is_string())
      if (const Value* v = d.find(key->as_string())) return *v;
    return fallback ? *fallback : Value::none();
  }
  r.finish(0);
  rt.charge(1 + d.size());
  if (name == "copy") return self;
  List out;
  out.reserve(d.size());
  for (const auto& [k, v] : d.items()) {
    if (name == "keys")
      out.push_back(Value::string(k));
    else if (name == "values")
      out.push_back(v);
    else
      out.push_back(Value::list({Value::string(k), v}, true));
  }
  return rt.make_list(std::move(out));
}

inline Value call_list_method(Runtime& rt, const Value& self, std::string_view name, CallArgs& args) {
  ArgReader r(rt, args, name);
  if (name == "copy") {
    r.finish(0);
    return self;
  }
  const Value* x = r.get(0, "value");
  r.finish(1);
  if (x == nullptr) rt.fail("list.{}() takes exactly one argument", name);
  const List& items = self.as_list();
  rt.charge(1 + items.size());
  std::int64_t n = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!equals(items[i], *x)) continue;
    if (name == "index") return Value::integer(static_cast<std::int64_t>(i));
    ++n;
  }
  if (name == "index") rt.fail("{} is not in list", repr(*x));
  return Value::integer(n);
}

// The bound method `name` of `self`, or Undefined (with jinja2's message) when there is none.
inline Value bound_method(const Value& self, std::string_view name) {
  using namespace methods_detail;
  std::string key(name);
  if (self.is_string() && is_str_method(name)) {
    return Value::callable(
        "str." + key, [self, key](Runtime& rt, CallArgs& a) { return call_str_method(rt, self.as_string(), key, a); });
  }
  if (self.is_dict() && is_dict_method(name)) {
    return Value::callable("dict." + key,
                           [self, key](Runtime& rt, CallArgs& a) { return call_dict_method(rt, self, key, a); });
  }
  if (self.is_list() && is_list_method(name)) {
    return Value::callable("list." + key,
                           [self, key](Runtime& rt, CallArgs& a) { return call_list_method(rt, self, key, a); });
  }
  if ((self.is_list() || self.is_dict()) && is_mutating_method(name))
    return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, self.type_name()));
  return Value::undefined(fmt::format("'{}' has no attribute '{}'",
                                      self.is_none() ? std::string("None") : std::string(self.type_name()) + " object",
                                      name));
}

}  // namespace moe::chat

// jinja2's built-in filters (jinja2/filters.py) with their Python semantics, plus transformers'
// tojson (json.dumps with ensure_ascii/indent/separators/sort_keys). Strings are coerced with
// str() (None prints "None", Undefined ""), iteration follows Python (dicts give keys, strings
// characters, Undefined nothing).
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>

#include "moe/chat/json_format.hpp"
#include "moe/chat/methods.hpp"
#include "moe/chat/runtime.hpp"

namespace moe::chat {

using FilterFn = Value (*)(Runtime&, const Value&, CallArgs&);

namespace filters_detail {

inline bool flag(const Value* v, bool fallback) { return v == nullptr ? fallback : v->truthy(); }

// jinja2's attribute path for sort/map/selectattr/...: "a.b.0" (items first, then attributes).
inline Value attribute_path(Runtime& rt, const Value& item, const Value& attribute) {
  if (attribute.is_int()) return rt.get_item(item, attribute);
  const std::string path = to_str(attribute);
  Value v = item;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (v.is_undefined()) return v;
    v = numeric && part.size() < 18 ? rt.get_item(v, Value::integer(std::stoll(part)))
                                    : rt.get_item(v, Value::string(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// Sort key of an item for sort/unique/min/max/dictsort: lowercased when it is a string and the
// comparison ignores case (jinja2's ignore_case).
inline Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(text::to_lower(v.as_string()));
  return v;
}

inline int checked_compare(Runtime& rt, const Value& a, const Value& b) {
  const auto c = compare(a, b);
  if (!c) rt.fail("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
  return *c;
}

inline std::vector<Value> attributes_of(Runtime& rt, const Value& item, const Value* attribute) {
  if (attribute == nullptr || attribute->is_none()) return {item};
  if (attribute->is_string()) {
    std::vector<Value> keys;
    const std::string& s = attribute->as_string();
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = s.find(',', start);
      keys.push_back(attribute_path(
          rt, item,
          Value::string(std::string(text::strip(
              s.substr(start, comma == std::string::npos ? std::string::npos : comma - start), nullptr, true, true)))));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return keys;
  }
  return {attribute_path(rt, item, *attribute)};
}

inline List sorted(Runtime& rt, const Value& seq, bool reverse, bool case_sensitive, const Value* attribute) {
  List items = rt.iterate(seq);
  std::vector<std::vector<Value>> keys;
  keys.reserve(items.size());
  for (const Value& it : items) {
    auto k = attributes_of(rt, it, attribute);
    for (Value& x : k) x = sort_key(x, case_sensitive);
    keys.push_back(std::move(k));
  }
  std::vector<std::size_t> order(items.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  rt.charge(1 + items.size() * 8);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    for (std::size_t k = 0; k < keys[a].size(); ++k) {
      const int c = checked_compare(rt, keys[a][k], keys[b][k]);
      if (c != 0) return reverse ? c > 0 : c < 0;
    }
    return false;
  });
  List out;
  out.reserve(items.size());
  for (std::size_t i : order) out.push_back(items[i]);
  return out;
}

// Python's round(x, n) for floats: ties to even on the scaled value.
inline double round_half_even(double x, std::int64_t digits) {
  const double scale = std::pow(10.0, static_cast<double>(digits));
  const double y = x * scale;
  if (!std::isfinite(y)) return x;
  double r = std::round(y);
  if (std::fabs(y - std::trunc(y)) == 0.5) r = 2.0 * std::round(y / 2.0);
  return r / scale;
}

inline Value parse_int(Runtime& rt, const Value& v, const Value& fallback, std::int64_t base) {
  if (v.is_int()) return v;
  if (v.is_bool()) return Value::integer(v.to_int());
  if (v.is_float()) {
    const double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::integer(static_cast<std::int64_t>(d));
  }
  if (v.is_string()) {
    std::string s(text::strip(v.as_string(), nullptr, true, true));
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (s.empty()) return fallback;
    errno = 0;
    char* end = nullptr;
    const long long x = std::strtoll(s.c_str(), &end, static_cast<int>(base));
    if (end != nullptr && *end == '\0' && errno == 0) return Value::integer(x);
    // jinja2 falls back to int(float(s)).
    end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (end != nullptr && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18)
      return Value::integer(static_cast<std::int64_t>(d));
  }
  (void)rt;
  return fallback;
}

inline Value parse_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value::number(v.to_double());
  if (v.is_string()) {
    const std::string s(text::strip(v.as_string(), nullptr, true, true));
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end != nullptr && *end == '\0') return Value::number(d);
  }
  return fallback;
}

// jinja2's do_title: the first letter of each word (split at whitespace, - ( { [ <) upper, the
// rest lower.
inline std::string jinja_title(const std::string& s) {
  std::string out(s);
  bool start = true;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    const bool sep = u == ' ' || u == '\t' || u == '\n' || u == '\r' || u == '\f' || u == '\v' || u == '-' ||
                     u == '(' || u == '{' || u == '[' || u == '<';
    if (sep) {
      start = true;
      continue;
    }
    if (start) {
      if (text::is_ascii_lower(u)) c = static_cast<char>(u - 'a' + 'A');
    } else if (text::is_ascii_upper(u)) {
      c = static_cast<char>(u - 'A' + 'a');
    }
    start = false;
  }
  return out;
}

// jinja2's do_indent (3.x): lines after the first (and the first with first=True) get `indent`;
// blank lines only with blank=True.
inline std::string indent_text(Runtime& rt, const std::string& s, const std::string& indent, bool first, bool blank) {
  std::vector<std::string_view> lines;
  std::string_view rest(s);
  // Python's splitlines on s + "\n" (jinja2 appends the newline so a trailing one survives).
  std::string with_nl = s + "\n";
  std::string_view sv(with_nl);
  std::size_t start = 0;
  for (std::size_t i = 0; i < sv.size();) {
    std::size_t j = i;
    const char32_t c = text::decode(sv, j);
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (brk) {
      lines.push_back(sv.substr(start, i - start));
      if (c == '\r' && j < sv.size() && sv[j] == '\n') ++j;
      start = j;
    }
    i = j;
  }
  (void)rest;
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    const bool add = (i > 0 || first) && (blank || !lines[i].empty() || (i == 0 && first));
    if (add) out += indent;
    out += lines[i];
    rt.check_string_size(out.size());
  }
  return out;
}

inline Value select_impl(Runtime& rt, const Value& seq, CallArgs& args, bool select, bool by_attribute,
                         std::string_view what) {
  std::size_t next = 0;
  Value attr;
  if (by_attribute) {
    if (args.positional.empty()) rt.fail("{}() needs the attribute name", what);
    attr = args.positional[0];
    next = 1;
  }
  std::string test;
  if (next < args.positional.size()) {
    const Value& t = args.positional[next++];
    if (!t.is_string()) rt.fail("{}(): the test name must be a string, got {}", what, t.type_name());
    test = t.as_string();
    if (!rt.has_test(test)) rt.fail("no test named '{}'", test);
  }
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end());
  test_args.keyword = args.keyword;
  List out;
  for (const Value& item : rt.iterate(seq)) {
    const Value v = by_attribute ? attribute_path(rt, item, attr) : item;
    CallArgs a = test_args;
    const bool ok = test.empty() ? v.truthy() : rt.apply_test(test, v, a);
    if (ok == select) out.push_back(item);
  }
  return rt.make_list(std::move(out));
}

inline std::string join_values(Runtime& rt, const Value& seq, const std::string& sep, const Value* attribute) {
  std::string out;
  bool first = true;
  for (const Value& item : rt.iterate(seq)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attribute && !attribute->is_none() ? attribute_path(rt, item, *attribute) : item);
    rt.check_string_size(out.size());
  }
  return out;
}

// Python's printf-style formatting (`"%s: %d" % (a, b)`, the format filter): conversions
// s r d i f e g x X o c and %%, with flags (-+ 0#), width and precision, and %(name)s keys
// into a dict argument.
inline std::string percent_format(Runtime& rt, const std::string& f, const Value& args) {
  const List positional = args.is_tuple() ? args.as_list() : List{args};  // only a tuple spreads
  std::size_t next = 0;
  std::string out;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out.push_back(f[i]);
      continue;
    }
    if (++i >= f.size()) rt.fail("incomplete format");
    const Value* arg = nullptr;
    Value keyed;
    if (f[i] == '(') {
      const std::size_t close = f.find(')', i);
      if (close == std::string::npos) rt.fail("incomplete format key");
      if (!args.is_dict()) rt.fail("format requires a mapping");
      const Value* v = args.as_dict().find(std::string_view(f).substr(i + 1, close - i - 1));
      if (v == nullptr) rt.fail("KeyError: '{}'", f.substr(i + 1, close - i - 1));
      keyed = *v;
      arg = &keyed;
      i = close + 1;
    }
    std::string spec = "{:";
    std::string flags;
    while (i < f.size() && std::string_view("-+ 0#").find(f[i]) != std::string_view::npos) flags.push_back(f[i++]);
    std::string width, precision;
    while (i < f.size() && f[i] >= '0' && f[i] <= '9') width.push_back(f[i++]);
    if (i < f.size() && f[i] == '.') {
      ++i;
      while (i < f.size() && f[i] >= '0' && f[i] <= '9') precision.push_back(f[i++]);
      if (precision.empty()) precision = "0";
    }
    if (i >= f.size()) rt.fail("incomplete format");
    const char conv = f[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (arg == nullptr) {
      if (next >= positional.size()) rt.fail("not enough arguments for format string");
      arg = &positional[next++];
    }
    const bool left = flags.find('-') != std::string::npos;
    if (left)
      spec += '<';
    else if (conv == 's' || conv == 'r')
      spec += '>';
    const bool numeric = conv != 's' && conv != 'r' && conv != 'c';
    if (numeric && flags.find('+') != std::string::npos)
      spec += '+';
    else if (numeric && flags.find(' ') != std::string::npos)
      spec += ' ';
    if (numeric && flags.find('#') != std::string::npos) spec += '#';
    if (numeric && !left && flags.find('0') != std::string::npos) spec += '0';
    if (width.size() > 4 || precision.size() > 4) rt.fail("format width or precision is too large");
    spec += width;
    std::string piece;
    try {
      switch (conv) {
        case 's':
        case 'r': {
          std::string text = conv == 's' ? to_str(*arg) : repr(*arg);
          if (!precision.empty()) text = text.substr(0, std::stoul(precision));
          piece = fmt::format(fmt::runtime(spec + "}"), text);
          break;
        }
        case 'd':
        case 'i':
        case 'x':
        case 'X':
        case 'o':
        case 'c': {
          if (!arg->is_number()) rt.fail("%{} format: a real number is required, not {}", conv, arg->type_name());
          const std::int64_t v = arg->is_float() ? static_cast<std::int64_t>(arg->as_float()) : arg->to_int();
          if (conv == 'c') {
            std::string c;
            text::append_utf8(c, static_cast<char32_t>(v));
            piece = c;
          } else {
            piece = fmt::format(fmt::runtime(spec + (conv == 'i' ? 'd' : conv) + "}"), v);
          }
          break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
          if (!arg->is_number()) rt.fail("%{} format: a real number is required, not {}", conv, arg->type_name());
          piece = fmt::format(fmt::runtime(spec + "." + (precision.empty() ? "6" : precision) + conv + "}"),
                              arg->to_double());
          break;
        }
        default:
          rt.fail("unsupported format character '{}'", conv);
      }
    } catch (const fmt::format_error& e) {
      rt.fail("bad format '%{}': {}", conv, e.what());
    }
    out += piece;
    rt.check_string_size(out.size());
  }
  if (next < positional.size() && !args.is_dict()) rt.fail("not all arguments converted during string formatting");
  return out;
}

inline std::size_t length_of(Runtime& rt, const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return text::length(v.as_string());
    case Kind::kList:
      return v.as_list().size();
    case Kind::kDict:
      return v.as_dict().size();
    case Kind::kUndefined:
      return 0;
    default:
      rt.fail("object of type '{}' has no len()", v.type_name());
  }
}

}  // namespace filters_detail

inline const std::map<std::string_view, FilterFn, std::less<>>& builtin_filters() {
  using namespace filters_detail;
  static const std::map<std::string_view, FilterFn, std::less<>> filters = [] {
    std::map<std::string_view, FilterFn, std::less<>> f;
    f["safe"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "safe").finish(0);
      return v.is_string() ? v : rt.make_string(to_str(v));
    };
    f["string"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "string").finish(0);
      return v.is_string() ? v : rt.make_string(to_str(v));
    };
    f["escape"] = f["e"] = f["forceescape"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "escape").finish(0);
      std::string out;
      for (char c : to_str(v)) {
        switch (c) {
          case '&':
            out += "&amp;";
            break;
          case '<':
            out += "&lt;";
            break;
          case '>':
            out += "&gt;";
            break;
          case '"':
            out += "&#34;";
            break;
          case '\'':
            out += "&#39;";
            break;
          default:
            out.push_back(c);
        }
      }
      return rt.make_string(std::move(out));
    };
    f["upper"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "upper").finish(0);
      return rt.make_string(text::to_upper(to_str(v)));
    };
    f["lower"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "lower").finish(0);
      return rt.make_string(text::to_lower(to_str(v)));
    };
    f["title"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "title").finish(0);
      return rt.make_string(jinja_title(to_str(v)));
    };
    f["capitalize"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "capitalize").finish(0);
      return rt.make_string(methods_detail::py_capitalize(to_str(v)));
    };
    f["trim"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "trim");
      const Value* chars = r.get(0, "chars");
      r.finish(1);
      const std::string s = to_str(v);
      const std::string* set = chars && !chars->is_none() ? &chars->as_string() : nullptr;
      if (chars && !chars->is_none() && !chars->is_string()) rt.fail("trim(): chars must be a string");
      return rt.make_string(std::string(text::strip(s, set, true, true)));
    };
    f["replace"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "replace");
      const Value* from = r.get(0, "old");
      const Value* to = r.get(1, "new");
      const Value* count = r.get(2, "count");
      r.finish(3);
      if (from == nullptr || to == nullptr) rt.fail("replace() needs the old and new strings");
      return rt.make_string(methods_detail::replace(rt, to_str(v), to_str(*from), to_str(*to),
                                                    methods_detail::int_arg(rt, count, -1, "replace")));
    };
    f["indent"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "indent");
      const Value* width = r.get(0, "width");
      const Value* first = r.get(1, "first");
      const Value* blank = r.get(2, "blank");
      r.finish(3);
      std::string ind;
      if (width == nullptr) {
        ind = "    ";
      } else if (width->is_string()) {
        ind = width->as_string();
      } else {
        const std::int64_t n = methods_detail::int_arg(rt, width, 4, "indent");
        if (n > 1024) rt.fail("indent(): width {} is too large", n);
        ind.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, n)), ' ');
      }
      return rt.make_string(indent_text(rt, to_str(v), ind, flag(first, false), flag(blank, false)));
    };
    f["center"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "center");
      const Value* width = r.get(0, "width");
      r.finish(1);
      return rt.make_string(
          methods_detail::pad(rt, to_str(v), methods_detail::int_arg(rt, width, 80, "center"), " ", 0));
    };
    f["wordcount"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "wordcount").finish(0);
      const std::string s = to_str(v);
      std::int64_t n = 0;
      bool in_word = false;
      for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        const bool word = text::is_ascii_alpha(u) || text::is_ascii_digit(u) || u == '_' || u >= 0x80;
        if (word && !in_word) ++n;
        in_word = word;
      }
      return Value::integer(n);
    };
    f["length"] = f["count"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "length").finish(0);
      return Value::integer(static_cast<std::int64_t>(length_of(rt, v)));
    };
    f["first"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "first").finish(0);
      if (v.is_list())
        return v.as_list().empty() ? Value::undefined("No first item, sequence was empty.") : v.as_list().front();
      List items = rt.iterate(v);
      return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
    };
    f["last"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "last").finish(0);
      if (v.is_list())
        return v.as_list().empty() ? Value::undefined("No last item, sequence was empty.") : v.as_list().back();
      List items = rt.iterate(v);
      return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
    };
    f["list"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "list").finish(0);
      if (v.is_list() && !v.is_tuple()) return v;
      return rt.make_list(rt.iterate(v));
    };
    f["reverse"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "reverse").finish(0);
      if (v.is_string()) {
        const std::string& s = v.as_string();
        const auto offsets = text::code_point_offsets(s);
        std::string out;
        out.reserve(s.size());
        for (std::size_t i = offsets.size() - 1; i > 0; --i) out.append(s, offsets[i - 1], offsets[i] - offsets[i - 1]);
        return rt.make_string(std::move(out));
      }
      List items = rt.iterate(v);
      std::reverse(items.begin(), items.end());
      return rt.make_list(std::move(items));
    };
    f["join"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "join");
      const Value* sep = r.get(0, "d");
      const Value* attribute = r.get(1, "attribute");
      r.finish(2);
      return rt.make_string(join_values(rt, v, sep ? to_str(*sep) : std::string(), attribute));
    };
    f["default"] = f["d"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "default");
      const Value* fallback = r.get(0, "default_value");
      const Value* boolean = r.get(1, "boolean");
      r.finish(2);
      if (v.is_undefined() || (flag(boolean, false) && !v.truthy())) return fallback ? *fallback : Value::string("");
      return v;
    };
    f["tojson"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
      ArgReader r(rt, a, "tojson");
      const Value* ensure_ascii = r.get(0, "ensure_ascii");
      const Value* indent = r.get(1, "indent");
      const Value* separators = r.get(2, "separators");
      const Value* sort_keys = r.get(3, "sort_keys");
      r.finish(4);
      JsonFormat fmt;
      fmt.ensure_ascii = flag(ensure_ascii, false);
      fmt.sort_keys = flag(sort_keys, false);
      if (indent != nullptr && !indent->is_none()) {
        fmt.indented = true;
        if (indent->is_string()) {
          fmt.indent = indent->as_string();
        } else {
          const std::int64_t n = methods_detail::int_arg(rt, indent, 0, "tojson");
          if (n > 1024) rt.fail("tojson(): indent {} is too large", n);
          fmt.indent.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, n)), ' ');
        }
        fmt.item_separator = ",";
      }
      if (separators != nullptr && !separators->is_none()) {
        if (!separators->is_list() || separators->as_list().size() != 2 || !separators->as_list()[0].is_string() ||
            !separators->as_list()[1].is_string())
          rt.fail("tojson(): separators must be a pair of strings");
        fmt.item_separator = separators->as_list()[0].as_string();
        fmt.key_separator = separators->as_list()[1].as_string();
      }
      return Value::string(to_json(rt, v, fmt));
    };
    f["int"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "int");
      const Value* fallback = r.get(0, "default");
      const Value* base = r.get(1, "base");
      r.finish(2);
      const std::int64_t b = methods_detail::int_arg(rt, base, 10, "int");
      if (b != 0 && (b < 2 || b > 36)) rt.fail("int() base must be >= 2 and <= 36, or 0");
      return parse_int(rt, v, fallback ? *fallback : Value::integer(0), b);
    };
    f["float"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "float");
      const Value* fallback = r.get(0, "default");
      r.finish(1);
      return parse_float(v, fallback ? *fallback : Value::number(0.0));
    };
    f["abs"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "abs").finish(0);
      if (v.is_float()) return Value::number(std::fabs(v.as_float()));
      if (v.is_int() || v.is_bool()) {
        const std::int64_t x = v.to_int();
        if (x == INT64_MIN) rt.fail("integer overflow in abs()");
        return Value::integer(x < 0 ? -x : x);
      }
      rt.fail("bad operand type for abs(): '{}'", v.type_name());
    };
    f["round"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "round");
      const Value* precision = r.get(0, "precision");
      const Value* method = r.get(1, "method");
      r.finish(2);
      const std::int64_t p = methods_detail::int_arg(rt, precision, 0, "round");
      const std::string m = method ? to_str(*method) : "common";
      if (!v.is_number()) rt.fail("round() needs a number, got {}", v.type_name());
      if (m != "common" && m != "ceil" && m != "floor") rt.fail("method must be common, ceil or floor");
      if (v.is_int() && m == "common") return Value::integer(v.to_int());  // Python round(int, n) keeps the int
      const double x = v.to_double();
      const double scale = std::pow(10.0, static_cast<double>(p));
      if (m == "ceil") return Value::number(std::ceil(x * scale) / scale);
      if (m == "floor") return Value::number(std::floor(x * scale) / scale);
      return Value::number(round_half_even(x, p));
    };
    f["items"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader(rt, a, "items").finish(0);
      if (v.is_undefined()) return rt.make_list({});
      if (!v.is_dict()) rt.fail("items(): can only get item pairs from a mapping, not {}", v.type_name());
      CallArgs none;
      return call_dict_method(rt, v, "items", none);
    };
    f["dictsort"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "dictsort");
      const Value* case_sensitive = r.get(0, "case_sensitive");
      const Value* by = r.get(1, "by");
      const Value* reverse = r.get(2, "reverse");
      r.finish(3);
      if (!v.is_dict()) rt.fail("dictsort(): can only sort a mapping, not {}", v.type_name());
      const std::string key = by ? to_str(*by) : "key";
      if (key != "key" && key != "value") rt.fail("You can only sort by either 'key' or 'value'");
      List pairs;
      for (const auto& [k, x] : v.as_dict().items()) pairs.push_back(Value::list({Value::string(k), x}, true));
      const Value attr = Value::integer(key == "key" ? 0 : 1);
      return rt.make_list(
          sorted(rt, Value::list(std::move(pairs)), flag(reverse, false), flag(case_sensitive, false), &attr));
    };
    f["sort"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "sort");
      const Value* reverse = r.get(0, "reverse");
      const Value* case_sensitive = r.get(1, "case_sensitive");
      const Value* attribute = r.get(2, "attribute");
      r.finish(3);
      return rt.make_list(sorted(rt, v, flag(reverse, false), flag(case_sensitive, false), attribute));
    };
    f["unique"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "unique");
      const Value* case_sensitive = r.get(0, "case_sensitive");
      const Value* attribute = r.get(1, "attribute");
      r.finish(2);
      List out, seen;
      for (const Value& item : rt.iterate(v)) {
        const Value key = sort_key(attributes_of(rt, item, attribute).front(), flag(case_sensitive, false));
        rt.charge(1 + seen.size());
        bool dup = false;
        for (const Value& s : seen) dup = dup || equals(s, key);
        if (dup) continue;
        seen.push_back(key);
        out.push_back(item);
      }
      return rt.make_list(std::move(out));
    };
    f["min"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "min");
      const Value* case_sensitive = r.get(0, "case_sensitive");
      const Value* attribute = r.get(1, "attribute");
      r.finish(2);
      List s = sorted(rt, v, false, flag(case_sensitive, false), attribute);
      return s.empty() ? Value::undefined("No aggregated item, sequence was empty.") : s.front();
    };
    f["max"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "max");
      const Value* case_sensitive = r.get(0, "case_sensitive");
      const Value* attribute = r.get(1, "attribute");
      r.finish(2);
      // max() keeps the first of equal largest items: a reverse stable sort does that.
      List s = sorted(rt, v, true, flag(case_sensitive, false), attribute);
      return s.empty() ? Value::undefined("No aggregated item, sequence was empty.") : s.front();
    };
    f["sum"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "sum");
      const Value* attribute = r.get(0, "attribute");
      const Value* start = r.get(1, "start");
      r.finish(2);
      Value total = start ? *start : Value::integer(0);
      for (const Value& item : rt.iterate(v)) {
        const Value x = attribute && !attribute->is_none() ? attribute_path(rt, item, *attribute) : item;
        if (!total.is_number() || !x.is_number())
          rt.fail("unsupported operand type(s) for +: '{}' and '{}'", total.type_name(), x.type_name());
        if (total.is_float() || x.is_float()) {
          total = Value::number(total.to_double() + x.to_double());
        } else {
          std::int64_t s = 0;
          if (__builtin_add_overflow(total.to_int(), x.to_int(), &s)) rt.fail("integer overflow in sum()");
          total = Value::integer(s);
        }
      }
      return total;
    };
    f["format"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      if (!a.keyword.empty()) {
        Dict d;
        for (const auto& [k, x] : a.keyword) d.set(k, x);
        return rt.make_string(percent_format(rt, to_str(v), Value::dict(std::move(d))));
      }
      return rt.make_string(percent_format(rt, to_str(v), rt.make_list(a.positional, true)));
    };
    f["map"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      List out;
      const Value* attribute = a.kwarg("attribute");
      if (a.positional.empty() && attribute != nullptr) {
        const Value* fallback = a.kwarg("default");
        for (const auto& [k, x] : a.keyword)
          if (k != "attribute" && k != "default") rt.fail("map() got an unexpected keyword argument '{}'", k);
        for (const Value& item : rt.iterate(v)) {
          Value x = attribute_path(rt, item, *attribute);
          if (x.is_undefined() && fallback) x = *fallback;
          out.push_back(std::move(x));
        }
        return rt.make_list(std::move(out));
      }
      if (a.positional.empty() || !a.positional[0].is_string()) rt.fail("map() needs a filter name or attribute=");
      const std::string name = a.positional[0].as_string();
      if (!rt.has_filter(name)) rt.fail("no filter named '{}'", name);
      CallArgs rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      for (const Value& item : rt.iterate(v)) {
        CallArgs each = rest;
        out.push_back(rt.apply_filter(name, item, each));
      }
      return rt.make_list(std::move(out));
    };
    f["select"] = [](Runtime& rt, const Value& v, CallArgs& a) { return select_impl(rt, v, a, true, false, "select"); };
    f["reject"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return select_impl(rt, v, a, false, false, "reject");
    };
    f["selectattr"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return select_impl(rt, v, a, true, true, "selectattr");
    };
    f["rejectattr"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      return select_impl(rt, v, a, false, true, "rejectattr");
    };
    f["attr"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "attr");
      const Value* name = r.get(0, "name");
      r.finish(1);
      if (name == nullptr) rt.fail("attr() needs an attribute name");
      return rt.get_attr(v, to_str(*name));
    };
    f["batch"] = [](Runtime& rt, const Value& v, CallArgs& a) {
      ArgReader r(rt, a, "batch");
      const Value* count = r.get(0, "linecount");
      const Value* fill = r.get(1, "fill_with");
      r.finish(2);
      const std::int64_t n = methods_detail::int_arg(rt, count, 0, "batch");
      if (n <= 0) rt.fail("batch(): linecount must be positive");
      List out, row;
      for (const Value& item : rt.iterate(v)) {
        row.push_back(item);
        if (static_cast<std::int64_t>(row.size()) == n) out.push_back(rt.make_list(std::exchange(row, {})));
      }
      if (!row.empty()) {
        if (fill && !fill->is_none())
          while (static_cast<std::int64_t>(row.size()) < n) row.push_back(*fill);
        out.push_back(rt.make_list(std::move(row)));
      }
      return rt.make_list(std::move(out));
    };
    return f;
  }();
  return filters;
}

}  // namespace moe::chat

// The global functions a chat template can call: jinja2's range(), dict() and namespace(), and
// the two transformers adds, raise_exception(message) and strftime_now(format).
#pragma once

#include <ctime>
#include <string>

#include "moe/chat/runtime.hpp"

namespace moe::chat {

namespace globals_detail {

inline constexpr const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                          "July",    "August",   "September", "October", "November", "December"};
inline constexpr const char* kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

// Python's datetime.strftime in the C locale, for the directives chat templates use (%Y %m %d %H
// %M %S %y %b %B %a %A %j %p %I %e %%); any other directive is copied as it is.
inline std::string strftime(const std::tm& t, const std::string& format) {
  std::string out;
  auto two = [&](int v) { out += fmt::format("{:02d}", v); };
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 == format.size()) {
      out.push_back(format[i]);
      continue;
    }
    const char d = format[++i];
    const int mon = t.tm_mon >= 0 && t.tm_mon < 12 ? t.tm_mon : 0;
    const int wday = t.tm_wday >= 0 && t.tm_wday < 7 ? t.tm_wday : 0;
    switch (d) {
      case 'Y':
        out += fmt::format("{:04d}", t.tm_year + 1900);
        break;
      case 'y':
        two((t.tm_year + 1900) % 100);
        break;
      case 'm':
        two(t.tm_mon + 1);
        break;
      case 'd':
        two(t.tm_mday);
        break;
      case 'e':
        out += fmt::format("{:2d}", t.tm_mday);
        break;
      case 'H':
        two(t.tm_hour);
        break;
      case 'I':
        two(t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12);
        break;
      case 'M':
        two(t.tm_min);
        break;
      case 'S':
        two(t.tm_sec);
        break;
      case 'p':
        out += t.tm_hour < 12 ? "AM" : "PM";
        break;
      case 'j':
        out += fmt::format("{:03d}", t.tm_yday + 1);
        break;
      case 'B':
        out += kMonths[mon];
        break;
      case 'b':
        out += std::string(kMonths[mon]).substr(0, 3);
        break;
      case 'A':
        out += kDays[wday];
        break;
      case 'a':
        out += std::string(kDays[wday]).substr(0, 3);
        break;
      case '%':
        out.push_back('%');
        break;
      default:
        out.push_back('%');
        out.push_back(d);
    }
  }
  return out;
}

inline Value range(Runtime& rt, CallArgs& args) {
  if (!args.keyword.empty()) rt.fail("range() takes no keyword arguments");
  const List& p = args.positional;
  if (p.empty() || p.size() > 3) rt.fail("range expected 1 to 3 arguments, got {}", p.size());
  for (const Value& v : p)
    if (!v.is_int() && !v.is_bool()) rt.fail("'{}' object cannot be interpreted as an integer", v.type_name());
  const std::int64_t start = p.size() == 1 ? 0 : p[0].to_int();
  const std::int64_t stop = p.size() == 1 ? p[0].to_int() : p[1].to_int();
  const std::int64_t step = p.size() == 3 ? p[2].to_int() : 1;
  if (step == 0) rt.fail("range() arg 3 must not be zero");
  // Count first (in wide arithmetic), so that a huge range is refused before anything is built.
  // (__extension__: GCC and clang's 128-bit integer without -Wpedantic's warning.)
  __extension__ typedef __int128 wide;
  const wide span = step > 0 ? static_cast<wide>(stop) - start : static_cast<wide>(start) - stop;
  const wide mag = step > 0 ? step : -static_cast<wide>(step);
  const wide count = span <= 0 ? 0 : (span + mag - 1) / mag;
  if (count > static_cast<wide>(rt.limits().max_items))
    rt.fail("range() of {} items would exceed the limit of {}",
            static_cast<long long>(count > INT64_MAX ? INT64_MAX : count), rt.limits().max_items);
  List out;
  out.reserve(static_cast<std::size_t>(count));
  for (wide i = 0; i < count; ++i) out.push_back(Value::integer(static_cast<std::int64_t>(start + i * step)));
  return rt.make_list(std::move(out));
}

// dict(**kwargs), dict(mapping, **kwargs), dict(pairs, **kwargs); namespace() takes the same.
inline Dict build_mapping(Runtime& rt, CallArgs& args, std::string_view what) {
  if (args.positional.size() > 1)
    rt.fail("{} expected at most 1 positional argument, got {}", what, args.positional.size());
  Dict d;
  if (args.positional.size() == 1) {
    const Value& src = args.positional[0];
    if (src.is_dict() || src.is_namespace()) {
      for (const auto& [k, v] : src.as_dict().items()) d.set(k, v);
    } else if (src.is_list()) {
      for (const Value& pair : src.as_list()) {
        if (!pair.is_list() || pair.as_list().size() != 2 || !pair.as_list()[0].is_string())
          rt.fail("{}: each element must be a (string key, value) pair", what);
        d.set(pair.as_list()[0].as_string(), pair.as_list()[1]);
      }
    } else {
      rt.fail("'{}' object is not iterable", src.type_name());
    }
  }
  for (const auto& [k, v] : args.keyword) d.set(k, v);
  rt.check_items(d.size());
  return d;
}

}  // namespace globals_detail

// Adds the globals to `d` (the template's root variables; the caller's variables come after and
// may override them, as transformers' render(**kwargs) would).
inline void add_globals(Dict& d) {
  using namespace globals_detail;
  d.set("range", Value::callable("range", [](Runtime& rt, CallArgs& a) { return range(rt, a); }));
  d.set("dict",
        Value::callable("dict", [](Runtime& rt, CallArgs& a) { return rt.make_dict(build_mapping(rt, a, "dict")); }));
  d.set("namespace", Value::callable("namespace", [](Runtime& rt, CallArgs& a) {
          Dict attrs = build_mapping(rt, a, "namespace");
          for (const auto& [k, v] : attrs.items())
            if (v.has_namespace()) rt.fail("a namespace attribute cannot hold a namespace ('{}')", k);
          return Value::namespace_(std::move(attrs));
        }));
  d.set("raise_exception", Value::callable("raise_exception", [](Runtime& rt, CallArgs& a) -> Value {
          if (a.positional.size() != 1 || !a.keyword.empty()) rt.fail("raise_exception() takes exactly one argument");
          rt.raise(to_str(a.positional[0]));
        }));
  d.set("strftime_now", Value::callable("strftime_now", [](Runtime& rt, CallArgs& a) {
          if (a.positional.size() != 1 || !a.keyword.empty()) rt.fail("strftime_now() takes exactly one argument");
          if (!a.positional[0].is_string())
            rt.fail("strftime_now() argument must be str, not {}", a.positional[0].type_name());
          return rt.make_string(strftime(rt.now(), a.positional[0].as_string()));
        }));
}

}  // namespace moe::chat

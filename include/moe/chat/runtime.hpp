// Runtime: the state of one render that the evaluator and the built-in filters, tests and
// methods share: the limits and the work spent against them, where in the template evaluation
// is (for error messages), the clock strftime_now reads, and the operations a builtin needs from
// the evaluator (calling a value, applying a filter or test by name, attribute access).
// The member functions that need the evaluator are defined in evaluator.hpp.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "moe/chat/ast.hpp"
#include "moe/chat/error.hpp"
#include "moe/chat/limits.hpp"
#include "moe/chat/value.hpp"

namespace moe::chat {

// The wall clock strftime_now() formats: local time by default (as transformers, which calls
// datetime.now()); tests inject a fixed time.
using Clock = std::function<std::tm()>;

inline std::tm local_now() {
  const std::time_t t = std::time(nullptr);
  std::tm out{};
  localtime_r(&t, &out);
  return out;
}

// Variables of one scope; lookups walk to the parents (the template globals at the root).
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent = nullptr) : parent_(std::move(parent)) {}

  const Value* lookup(std::string_view name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent_.get()) {
      auto it = s->vars_.find(name);
      if (it != s->vars_.end()) return &it->second;
    }
    return nullptr;
  }
  void set(const std::string& name, Value v) { vars_.insert_or_assign(name, std::move(v)); }
  const std::shared_ptr<Scope>& parent() const noexcept { return parent_; }

 private:
  std::shared_ptr<Scope> parent_;
  std::map<std::string, Value, std::less<>> vars_;
};

class Runtime {
 public:
  Runtime(const TemplateLimits& limits, Clock clock) : limits_(limits), clock_(std::move(clock)) {}

  const TemplateLimits& limits() const noexcept { return limits_; }
  std::tm now() const { return clock_ ? clock_() : local_now(); }

  // Where evaluation is; error messages carry it.
  SourceLocation where() const noexcept { return where_; }
  void set_where(SourceLocation w) noexcept { where_ = w; }

  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) const {
    throw TemplateError(TemplateErrorKind::kRuntime, where_, fmt::format(f, std::forward<Args>(args)...));
  }
  [[noreturn]] void raise(std::string message) const {
    throw TemplateError(TemplateErrorKind::kRaised, where_, std::move(message));
  }

  // Spends `units` of work (see TemplateLimits::max_steps).
  void charge(std::uint64_t units) {
    steps_ += units;
    if (steps_ > limits_.max_steps)
      fail("the template did more than {} steps of work (statements, expressions, elements touched)",
           limits_.max_steps);
  }
  void charge_bytes(std::size_t bytes) { charge(1 + bytes / 64); }
  std::uint64_t steps() const noexcept { return steps_; }

  // Checked constructors for what a template builds.
  Value make_string(std::string s) {
    check_string_size(s.size());
    charge_bytes(s.size());
    return Value::string(std::move(s));
  }
  void check_string_size(std::size_t bytes) const {
    if (bytes > limits_.max_output_bytes)
      fail("a string of {} bytes would exceed the limit of {} bytes", bytes, limits_.max_output_bytes);
  }
  void check_items(std::size_t n) const {
    if (n > limits_.max_items) fail("a list or dict of {} items would exceed the limit of {}", n, limits_.max_items);
  }
  Value make_list(List items, bool tuple = false) {
    check_items(items.size());
    charge(1 + items.size());
    Value v = Value::list(std::move(items), tuple);
    if (v.depth() > limits_.max_value_depth)
      fail("a value nested {} levels deep would exceed the limit of {}", v.depth(), limits_.max_value_depth);
    return v;
  }
  Value make_dict(Dict d) {
    check_items(d.size());
    charge(1 + d.size());
    Value v = Value::dict(std::move(d));
    if (v.depth() > limits_.max_value_depth)
      fail("a value nested {} levels deep would exceed the limit of {}", v.depth(), limits_.max_value_depth);
    return v;
  }

  // Evaluation depth guard (statements, expressions, calls): bounds the C++ stack.
  struct DepthGuard {
    Runtime& rt;
    explicit DepthGuard(Runtime& r) : rt(r) {
      if (++rt.depth_ > rt.limits_.max_eval_depth)
        rt.fail("evaluation nested deeper than the limit of {} (runaway recursion?)", rt.limits_.max_eval_depth);
    }
    ~DepthGuard() { --rt.depth_; }
  };
  struct CallGuard {
    Runtime& rt;
    explicit CallGuard(Runtime& r) : rt(r) {
      if (++rt.calls_ > rt.limits_.max_call_depth)
        rt.fail("macro calls nested deeper than the limit of {} (runaway recursion?)", rt.limits_.max_call_depth);
    }
    ~CallGuard() { --rt.calls_; }
  };

  // Defined in evaluator.hpp.
  Value call(const Value& callee, CallArgs& args);
  Value apply_filter(std::string_view name, const Value& operand, CallArgs& args);
  bool apply_test(std::string_view name, const Value& operand, CallArgs& args);
  bool has_test(std::string_view name) const;
  bool has_filter(std::string_view name) const;
  Value get_attr(const Value& object, std::string_view name);
  Value get_item(const Value& object, const Value& key);
  // Iterating a value as a for loop does: list items, dict keys, string characters; Undefined is
  // empty. Anything else: a runtime error.
  List iterate(const Value& v);

 private:
  const TemplateLimits& limits_;
  Clock clock_;
  SourceLocation where_{};
  std::uint64_t steps_ = 0;
  std::size_t depth_ = 0;
  std::size_t calls_ = 0;
};

// Argument binding for builtins: pos(i, "name") takes the i-th positional argument or the keyword
// of that name, whichever was given; unknown keywords and extra positionals are errors.
class ArgReader {
 public:
  ArgReader(Runtime& rt, CallArgs& args, std::string_view what) : rt_(rt), args_(args), what_(what) {}

  const Value* get(std::size_t index, std::string_view name) {
    used_.push_back(std::string(name));
    if (index < args_.positional.size()) {
      if (args_.kwarg(name) != nullptr) rt_.fail("{}() got multiple values for argument '{}'", what_, name);
      return &args_.positional[index];
    }
    return args_.kwarg(name);
  }
  // Call after the last get(): refuses arguments the builtin does not take.
  void finish(std::size_t max_positional) {
    if (args_.positional.size() > max_positional)
      rt_.fail("{}() takes at most {} positional argument(s), {} given", what_, max_positional,
               args_.positional.size());
    for (const auto& [k, v] : args_.keyword) {
      bool known = false;
      for (const std::string& u : used_) known = known || u == k;
      if (!known) rt_.fail("{}() got an unexpected keyword argument '{}'", what_, k);
    }
  }

 private:
  Runtime& rt_;
  CallArgs& args_;
  std::string_view what_;
  std::vector<std::string> used_;
};

}  // namespace moe::chat

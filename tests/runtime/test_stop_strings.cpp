// Stop strings at the text level: spanning token pieces, never emitted, partial matches held back.
#include <moe/runtime/stop_strings.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

struct Run {
  std::string text;
  bool stopped = false;
  std::vector<std::string> emitted;  // per push
};

Run feed(moe::StopStringMatcher& m, const std::vector<std::string>& pieces) {
  Run r;
  for (const auto& p : pieces) {
    const auto step = m.push(p);
    r.emitted.emplace_back(step.emit);
    r.text += step.emit;
    if (step.stopped) {
      r.stopped = true;
      return r;
    }
  }
  r.text += m.flush();
  return r;
}

}  // namespace

TEST_CASE("a stop string spanning several pieces ends the text before it", "[stop]") {
  moe::StopStringMatcher m({"</s>"});
  const Run r = feed(m, {"ab", "c<", "/s", ">tail", "never"});
  CHECK(r.stopped);
  CHECK(r.text == "abc");
  // "<" and "</s" were held back as possible starts of the stop string.
  REQUIRE(r.emitted.size() == 4);
  CHECK(r.emitted[0] == "ab");
  CHECK(r.emitted[1] == "c");
  CHECK(r.emitted[2] == "");
  CHECK(r.emitted[3] == "");
}

TEST_CASE("held-back text is released when it turns out not to be a stop string", "[stop]") {
  moe::StopStringMatcher m({"END"});
  const Run r = feed(m, {"x E", "N", "d", " more E"});
  CHECK_FALSE(r.stopped);
  CHECK(r.emitted[0] == "x ");
  CHECK(r.emitted[1] == "");
  CHECK(r.emitted[2] == "ENd");
  CHECK(r.emitted[3] == " more ");
  CHECK(r.text == "x ENd more E");  // flush releases the final held "E"
}

TEST_CASE("the earliest of several stop strings wins, inside one piece too", "[stop]") {
  moe::StopStringMatcher m({"world", "lo w", "\n\n"});
  const Run r = feed(m, {"hel", "lo wor", "ld"});
  CHECK(r.stopped);
  CHECK(r.text == "hel");
  moe::StopStringMatcher one({"\n\n"});
  const Run s = feed(one, {"para one.\n\nNext"});
  CHECK(s.stopped);
  CHECK(s.text == "para one.");
}

TEST_CASE("overlapping prefixes: the longest possible start is held", "[stop]") {
  moe::StopStringMatcher m({"aab"});
  const Run r = feed(m, {"a", "a", "a", "b"});
  CHECK(r.stopped);
  CHECK(r.text == "a");
  REQUIRE(r.emitted.size() == 4);
  CHECK(r.emitted[0] == "");
  CHECK(r.emitted[1] == "");
  CHECK(r.emitted[2] == "a");
}

TEST_CASE("no stop strings passes text through; empty stop strings are rejected", "[stop]") {
  moe::StopStringMatcher none;
  const Run r = feed(none, {"a", "b<", "c"});
  CHECK(r.text == "ab<c");
  CHECK(r.emitted[1] == "b<");
  CHECK_THROWS_AS(moe::StopStringMatcher({"ok", ""}), moe::Error);
}

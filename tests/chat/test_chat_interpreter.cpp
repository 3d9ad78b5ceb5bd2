// The interpreter where jinja2 (what transformers renders with) and @huggingface/jinja differ,
// and the jinja2 features the fixture renderer lacks: each expectation here is what Python's
// jinja2 3.1 gives in transformers' environment (trim_blocks, lstrip_blocks, its tojson).
#include "chat_test_util.hpp"

using chat_test::render;
using chat_test::render_error;
using moe::chat::TemplateErrorKind;
using json = nlohmann::ordered_json;

TEST_CASE("chat interpreter: Python's str() when printing", "[chat]") {
  CHECK(render("{{ true }} {{ false }} {{ none }}") == "True False None");
  CHECK(render("{{ [1, 'a', none, true] }}") == "[1, 'a', None, True]");
  CHECK(render("{{ {'k': 'v', 'n': [1.5]} }}") == "{'k': 'v', 'n': [1.5]}");
  CHECK(render("{{ (1,) }} {{ (1, 2) }} {{ () }}") == "(1,) (1, 2) ()");
  CHECK(render("{{ \"it's\" }}|{{ [\"it's\"] }}|{{ ['a\\nb'] }}") == "it's|[\"it's\"]|['a\\nb']");
  CHECK(render("{{ 1.0 }} {{ 2.5e20 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1e16 }} {{ 123456789.0 }}") ==
        "1.0 2.5e+20 0.0001 1e-05 1e+16 123456789.0");
  CHECK(render("{{ x }} {{ y }}", json{{"x", 3.0}, {"y", -0.5}}) == "3.0 -0.5");
}

TEST_CASE("chat interpreter: Python string methods with arguments", "[chat]") {
  CHECK(render("[{{ 'xxhixx'.strip('x') }}][{{ '\\n a \\n'.strip('\\n') }}][{{ 'abcba'.lstrip('ab') }}][{{ "
               "'abcba'.rstrip('ab') }}]") == "[hi][ a ][cba][abc]");
  CHECK(
      render(
          "{{ ' a  b '.split() }} {{ 'a b c'.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ',a,'.split(',') }}") ==
      "['a', 'b'] ['a', 'b c'] ['a,b', 'c'] ['', 'a', '']");
  CHECK(render("{{ 'l1\\nl2\\r\\nl3'.splitlines() }}") == "['l1', 'l2', 'l3']");
  CHECK(
      render(
          "{{ 'banana'.find('an') }} {{ 'banana'.rfind('an') }} {{ 'banana'.find('x') }} {{ 'banana'.count('a') }}") ==
      "1 3 -1 3");
  CHECK(render("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.replace('', '-') }}") == "bba -a-b-");
  CHECK(render("{{ ', '.join(['x', 'y']) }} {{ '7'.zfill(3) }} {{ 'ab'.center(6, '*') }} {{ 'x'.ljust(3, '.') }}") ==
        "x, y 007 **ab** x..");
  CHECK(render("{{ \"they're bill\".title() }} {{ \"they're bill\" | title }} {{ 'hELLO wORLD' | title }}") ==
        "They'Re Bill They're Bill Hello World");
  CHECK(render("{{ 'hELLO' | capitalize }} {{ 'hELLO'.capitalize() }} {{ 'aBc'.swapcase() }}") == "Hello Hello AbC");
  CHECK(render("{{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.removeprefix('ab') }} {{ 'a1'.isalnum() }} {{ ' "
               "'.isspace() }}") == "True c True True");
  CHECK(render("{{ 'k=v=w'.partition('=') }}") == "('k', '=', 'v=w')");
}

TEST_CASE("chat interpreter: Python arithmetic and comparisons", "[chat]") {
  CHECK(render("{{ 7 % -3 }} {{ -7 % 3 }} {{ -7 // 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}") == "-2 2 -4 3.0 0.5");
  CHECK(render("{{ 2 ** -1 }} {{ 2 ** 62 }} {{ true + 1 }} {{ 'ab' * 3 }} {{ [0] * 3 }} {{ 3 * 'x' }}") ==
        "0.5 4611686018427387904 2 ababab [0, 0, 0] xxx");
  CHECK(
      render(
          "{{ 'abc' < 'abd' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 1 == '1' }}") ==
      "True True True False True False");
  CHECK(render("{{ 2 * 3 ~ 'x' }} {{ 1 ~ 2 ~ none }}") == "6x 12None");  // ~ binds tighter than + -, looser than * /
  CHECK(render("{{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ [1] in [[1], [2]] }}") == "True True True");
  CHECK(render_error("{{ 9223372036854775807 + 1 }}").kind() == TemplateErrorKind::kRuntime);
  CHECK(render_error("{{ 1 / 0 }}").template_message() == "division by zero");
  CHECK(render_error("{{ 'a' + 1 }}").template_message() == "can only concatenate str (not \"int\") to str");
  CHECK(render_error("{{ 'a' < 1 }}").template_message() == "'<' not supported between instances of 'str' and 'int'");
}

TEST_CASE("chat interpreter: tojson as transformers defines it", "[chat]") {
  CHECK(render("{{ 1.0 | tojson }} {{ [1, 2.50] | tojson }} {{ none | tojson }} {{ 'a\\u0001' | tojson }}") ==
        "1.0 [1, 2.5] null \"a\\u0001\"");
  CHECK(render("{{ {'a': 1} | tojson(indent=0) }}") == "{\n\"a\": 1\n}");
  CHECK(render("{{ x | tojson(indent='\\t') }}", json{{"x", json{{"k", json::array({1})}}}}) ==
        "{\n\t\"k\": [\n\t\t1\n\t]\n}");
  CHECK(render("{{ x | tojson }}", json{{"x", json{{"b", 1}, {"a", json::object()}}}}) == "{\"b\": 1, \"a\": {}}");
  CHECK(render("{{ '\\x7f' | tojson(true) }}") == "\"\x7f\"");  // ensure_ascii leaves ASCII DEL alone, as Python
  CHECK(render_error("{{ missing | tojson }}").template_message().find("not JSON serializable") != std::string::npos);
}

TEST_CASE("chat interpreter: jinja2 tests, including those with arguments", "[chat]") {
  CHECK(
      render("{{ {} is iterable }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.5 is float }}") ==
      "True True True False True");
  CHECK(
      render(
          "{{ 9 is divisibleby 3 }} {{ 10 is divisibleby(3) }} {{ 5 is eq 5 }} {{ 5 is gt 3 }} {{ 2 is in [1, 2] }}") ==
      "True False True True True");
  CHECK(render("{{ none is sameas none }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 'upper' is filter }} {{ 'odd' is "
               "test }}") == "True True True True True");
  CHECK(render("{{ range is callable }} {{ x is undefined }} {{ x is not defined }}") == "True True True");
  CHECK(render_error("{{ 1 is no_such_test }}").template_message() == "no test named 'no_such_test'");
}

TEST_CASE("chat interpreter: filters missing from the fixture renderer", "[chat]") {
  CHECK(render("{{ missing | d('x') }} {{ dict(a=1, b='two') | tojson }} {{ dict({'a': 1}, b=2) }}") ==
        "x {\"a\": 1, \"b\": \"two\"} {'a': 1, 'b': 2}");
  CHECK(render("{{ [1, 2, 3] | count }} {{ 'abc' | list }} {{ {'k': 1} | list }} {{ 'ab' | reverse }}") ==
        "3 ['a', 'b', 'c'] ['k'] ba");
  CHECK(render("{{ 2.5 | round }} {{ 3.5 | round }} {{ 3.14159 | round(2) }} {{ 2.7 | round(method='floor') }} {{ 3 | "
               "round }}") == "2.0 4.0 3.14 2.0 3");
  CHECK(render("{{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ ['b', 'A'] | max }} {{ [] | max is undefined }}") ==
        "1 3 b True");
  CHECK(render("{{ [1, 2, 3] | sum }} {{ xs | sum(attribute='n') }} {{ [0.5, 1] | sum(start=1) }}",
               json{{"xs", json::array({json{{"n", 2}}, json{{"n", 5}}})}}) == "6 7 2.5");
  CHECK(render("{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} "
               "{{ [1, 2, 3, 4] | select('divisibleby', 2) | list }} {{ [0, 1, ''] | select | list }}") ==
        "[1, 3] [2, 4] [2, 4] [1]");
  CHECK(render("{{ ['A', 'a', 'b'] | unique | list }} {{ ['A', 'a'] | unique(case_sensitive=true) | list }}") ==
        "['A', 'b'] ['A', 'a']");
  CHECK(render("{{ ['a', 'b'] | map('upper') | join }} {{ [1, 2, 3, 4, 5] | batch(2) | list }}") ==
        "AB [[1, 2], [3, 4], [5]]");
  CHECK(render("{{ {'b': 1, 'A': 2} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value') }}") ==
        "[('A', 2), ('b', 1)] [('b', 1), ('a', 2)]");
  CHECK(render("{{ '<a href=\"x\">&</a>' | e }} {{ 'one two  three' | wordcount }} {{ 'x' | center(5) }}") ==
        "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt; 3   x  ");
  CHECK(render("{{ ['a', 'b'] | join(attribute=0) }} {{ xs | map(attribute='a.b') | list }}",
               json{{"xs", json::array({json{{"a", json{{"b", 1}}}}})}}) == "ab [1]");
}

TEST_CASE("chat interpreter: printf-style formatting", "[chat]") {
  CHECK(render("{{ '%s has %d items (%.2f%%)' % ('list', 3, 12.345) }}") == "list has 3 items (12.35%)");
  CHECK(render("{{ '%-5s|%5s|%05d|%x|%r' | format('ab', 'cd', 42, 255, 'q') }}") == "ab   |   cd|00042|ff|'q'");
  CHECK(render("{{ '%(a)s-%(b)s' | format(a=1, b='x') }} {{ 'v=%s' % [1, 2] }}") == "1-x v=[1, 2]");
  CHECK(render_error("{{ '%s %s' % ('one',) }}").template_message() == "not enough arguments for format string");
  CHECK(render_error("{{ '%s' % ('one', 'two') }}").template_message() ==
        "not all arguments converted during string formatting");
}

TEST_CASE("chat interpreter: statements jinja2 has beyond the fixtures", "[chat]") {
  CHECK(render("{% raw %}{{ not evaluated }} {% if %}{% endraw %}!") == "{{ not evaluated }} {% if %}!");
  CHECK(render("a\r\nb\rc\r\n") == "a\nb\nc");
  // Whitespace control stops at a comment or a raw block: "{%-" strips only the text after it.
  CHECK(render("{{ 'x' }}\n  {# note #}\n  {%- if true %}y{% endif %}") == "x\ny");
  CHECK(render("{% raw %}r \n{% endraw %}  {%- if true %}y{% endif %}") == "r \ny");
  CHECK(render("  {%+ if true %}x{% endif %}\n  {% if true %}y{% endif %}") == "  xy");
  CHECK(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]") == "3[]");
  CHECK(render("{% set x | upper %}shout{% endset %}{{ x }}") == "SHOUT");
  CHECK(render("{% for x in 'ab' %}{{ loop.cycle('odd', 'even') }}{{ x }} {% endfor %}") == "odda evenb ");
  CHECK(render("{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}") == "1(2,){'k': 3}");
  CHECK(render("{% macro list(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}"
               "{% call(x) list([1, 2]) %}<{{ x }}>{% endcall %}") == "<1><2>");
  CHECK(render("{% macro m(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ m(3) }} {{ m(b=1, a=2) }}") == "3,6 2,1");
  CHECK(render("{% macro f(a, b, c) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ f(*[1, 2], **{'c': 3}) }}") == "123");
  CHECK(render("{% filter trim | upper %}  padded  {% endfilter %}") == "PADDED");
  CHECK(render("{% for a, b in [(1, 2), (3, 4)] %}{{ a * b }} {% endfor %}") == "2 12 ");
  CHECK(render("{% set a, (b, c) = 1, (2, 3) %}{{ a }}{{ b }}{{ c }}") == "123");
  CHECK(render("{{ xs[::-2] }} {{ xs[-2:] }} {{ xs[5:] }} {{ xs[:-9] }} {{ 'héllo'[1:3] }}",
               json{{"xs", json::array({1, 2, 3, 4, 5})}}) == "[5, 3, 1] [4, 5] [] [] él");
  CHECK(render("{{ '🙂é' | length }} {{ '🙂é'[0] }} {{ '🙂é' | reverse }}") == "2 🙂 é🙂");
}

TEST_CASE("chat interpreter: jinja2's Undefined and the sandbox", "[chat]") {
  CHECK(render("[{{ foo }}][{% for x in foo %}x{% endfor %}][{{ foo | length }}][{{ foo is defined }}][{{ foo | "
               "default(1) }}]") == "[][][0][False][1]");
  CHECK(render("{{ d.missing is defined }} {{ d['items'] }} {{ d.items() | list }} {{ d.get('x', 'dflt') }}",
               json{{"d", json{{"items", 5}}}}) == "False 5 [('items', 5)] dflt");
  CHECK(render_error("{{ foo.bar }}").template_message() == "'foo' is undefined");
  CHECK(render_error("{{ foo + 1 }}").template_message() == "'foo' is undefined");
  CHECK(render_error("{{ d.missing.x }}", json{{"d", json::object()}}).template_message() ==
        "'dict object' has no attribute 'missing'");
  CHECK(render_error("{{ foo() }}").template_message() == "'foo' is undefined");
  const auto unsafe = render_error("{{ xs.append(1) }}", json{{"xs", json::array()}});
  CHECK(unsafe.template_message() == "access to attribute 'append' of 'list' object is unsafe.");
  CHECK(render_error("{% set x = 1 %}{% set x.y = 2 %}").template_message().find("not a namespace") !=
        std::string::npos);
}

TEST_CASE("chat interpreter: errors carry the line and column", "[chat]") {
  const auto e = render_error("line one\n  {{ foo.bar }}");
  CHECK(e.kind() == TemplateErrorKind::kRuntime);
  CHECK(e.where().line == 2);
  CHECK(e.where().column == 9);
  CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()).find("line 2, column 9: 'foo' is undefined") != std::string::npos);

  const auto s = render_error("{% for x in xs %}\n{{ x }\n{% endfor %}");
  CHECK(s.kind() == TemplateErrorKind::kSyntax);
  CHECK(s.code() == moe::ErrorCode::kFormat);
  CHECK(s.where().line == 2);

  const auto r = render_error("ok\n\n{{ raise_exception('Roles must alternate') }}");
  CHECK(r.kind() == TemplateErrorKind::kRaised);
  CHECK(r.template_message() == "Roles must alternate");
  CHECK(r.where().line == 3);

  for (const char* bad : {"{% if x %}",
                          "{% endif %}",
                          "{{ }}",
                          "{{ 1 +  }}",
                          "{% for %}",
                          "{{ 'unterminated }}",
                          "{# comment",
                          "{% raw %}never ended",
                          "{{ x | }}",
                          "{% set = 1 %}",
                          "{% macro f(a=1, b) %}{% endmacro %}",
                          "{{ f(a=1, 2) }}",
                          "{% elif x %}",
                          "{% include 'x' %}",
                          "{{ [1, 2 }}",
                          "{{ x[1:2:3:4] }}",
                          "{% for x in y recursive %}{% endfor %}",
                          "{{ '\\x4' }}",
                          "{{ '\\ud800' }}",
                          "{{ @ }}"}) {
    INFO(bad);
    CHECK(render_error(bad).kind() == TemplateErrorKind::kSyntax);
  }
}

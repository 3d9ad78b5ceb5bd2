// Renders the chat-template fixtures of tests/chat with @huggingface/jinja, configured as
// transformers configures jinja2 for apply_chat_template (trim_blocks and lstrip_blocks on, which
// @huggingface/jinja's Template always uses; variables messages, tools (null when absent),
// documents (null), add_generation_prompt, bos_token, eos_token, then the extra keyword
// arguments; raise_exception and strftime_now as globals). strftime_now reads a fixed clock,
// 2026-01-15 (the C++ tests inject the same date).
//
//   npm install --prefix /tmp/chat-fixtures @huggingface/jinja@0.5.11
//   node tools/make_chat_fixtures.mjs [--jinja /tmp/chat-fixtures/node_modules/@huggingface/jinja]
//
// Writes tests/fixtures/chat/rendered/<template>.json (one per template in
// tests/fixtures/chat/templates/ and models/*/tokenizer_config.json) and
// tests/fixtures/chat/syntax_cases.json. Cases where @huggingface/jinja and Python's jinja2 are
// known to give different output are left out (tests/fixtures/chat/README.md lists them); the
// C++ tests check those against jinja2's behaviour directly.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const jinjaDir = argv.includes("--jinja")
  ? argv[argv.indexOf("--jinja") + 1]
  : "/tmp/chat-fixtures/node_modules/@huggingface/jinja";
const require = createRequire(join(resolve(jinjaDir), "package.json"));
const { Template } = require(resolve(jinjaDir, "dist/index.cjs"));
const jinjaVersion = JSON.parse(readFileSync(join(jinjaDir, "package.json"), "utf8")).version;

// The fixed clock: strftime_now() calls new Date() with no arguments.
process.env.TZ = "UTC";
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) {
    super(...(args.length === 0 ? [Date.UTC(2026, 0, 15, 9, 30, 0)] : args));
  }
};

function render(source, vars) {
  try {
    return { output: new Template(source).render(vars) };
  } catch (e) {
    return { error: String(e.message ?? e) };
  }
}

// ---- conversations ----

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", description: "The city name" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"], description: "Temperature unit" },
        days: { type: "integer", description: "Forecast days", default: 1 },
      },
      required: ["city"],
    },
  },
};
const timeTool = {
  type: "function",
  function: {
    name: "get_time",
    description: "Get the local time of a timezone",
    parameters: { type: "object", properties: { tz: { type: "string", description: "IANA name" } }, required: ["tz"] },
  },
};

const sys = { role: "system", content: "You are a helpful assistant. Answer briefly." };
const u1 = { role: "user", content: "Hello! Who are you?" };
const a1 = { role: "assistant", content: "I am an assistant that answers questions." };
const u2 = { role: "user", content: "What is 2 + 2?" };
const a2 = { role: "assistant", content: "2 + 2 = 4." };

function toolCall(argsAsString, id = "call_1") {
  const args = { city: "Paris", unit: "celsius" };
  return {
    id,
    type: "function",
    function: { name: "get_weather", arguments: argsAsString ? JSON.stringify(args) : args },
  };
}

// Cases every template gets; `opts` picks what the template supports.
function conversations(opts) {
  const cases = [];
  const add = (name, messages, extra = {}) => cases.push({ name, messages, ...extra });
  add("single_user", [u1], { add_generation_prompt: true });
  add("single_user_no_prompt", [u1], { add_generation_prompt: false });
  if (opts.system) {
    add("system_user", [sys, u1], { add_generation_prompt: true });
    add("multi_turn", [sys, u1, a1, u2], { add_generation_prompt: true });
    add("multi_turn_ends_assistant", [sys, u1, a1, u2, a2], { add_generation_prompt: false });
  } else {
    add("multi_turn", [u1, a1, u2], { add_generation_prompt: true });
    add("multi_turn_ends_assistant", [u1, a1, u2, a2], { add_generation_prompt: false });
  }
  add("unicode", [{ role: "user", content: "Ça va? 你好 🙂 — naïve café" }, { role: "assistant", content: "Très bien, 谢谢! 🎉" }, { role: "user", content: "Ünïcödé\ttab and \"quotes\" and \\backslash" }], {
    add_generation_prompt: true,
  });
  add("empty_content", [{ role: "user", content: "" }, { role: "assistant", content: "" }, { role: "user", content: "Now say something." }], {
    add_generation_prompt: true,
  });
  add("newlines_in_content", [{ role: "user", content: "Line one\nLine two\n\nParagraph two" }], { add_generation_prompt: true });
  if (opts.tools) {
    const asString = opts.tools === "string";
    const call = { role: "assistant", content: opts.toolCallContent ?? "", tool_calls: [toolCall(asString)] };
    if (opts.toolCallContentNull) call.content = null;
    const result = { role: "tool", tool_call_id: "call_1", name: "get_weather", content: '{"temperature": 18, "condition": "sunny"}' };
    add("tools_declared", [sys, { role: "user", content: "What is the weather in Paris?" }], {
      add_generation_prompt: true,
      tools: [weatherTool, timeTool],
    });
    add("tool_call_and_result", [sys, { role: "user", content: "What is the weather in Paris?" }, call, result], {
      add_generation_prompt: true,
      tools: [weatherTool, timeTool],
    });
    add("tool_result_then_answer", [
      { role: "user", content: "What is the weather in Paris?" },
      call,
      result,
      { role: "assistant", content: "It is sunny and 18 degrees in Paris." },
      { role: "user", content: "Thanks!" },
    ], { add_generation_prompt: true, tools: [weatherTool] });
    if (opts.multiToolCalls) {
      const two = { ...call, tool_calls: [toolCall(asString, "call_1"), { id: "call_2", type: "function", function: { name: "get_time", arguments: asString ? '{"tz": "Europe/Paris"}' : { tz: "Europe/Paris" } } }] };
      add("two_tool_calls", [{ role: "user", content: "Weather and time in Paris?" }, two, result, { role: "tool", tool_call_id: "call_2", name: "get_time", content: "09:30" }], {
        add_generation_prompt: true,
        tools: [weatherTool, timeTool],
      });
    }
  }
  if (opts.reasoning) {
    add("reasoning_content", [u1, { role: "assistant", reasoning_content: "The user greets me. I should introduce myself.", content: "I am an assistant." }, u2], {
      add_generation_prompt: true,
    });
    add("reasoning_last_turn", [u1, { role: "assistant", reasoning_content: "Simple greeting.", content: "Hello there." }], {
      add_generation_prompt: false,
    });
    add("think_tags_in_content", [u1, { role: "assistant", content: "<think>\nThe user says hello.\n</think>\n\nHello! I am an assistant." }, u2], {
      add_generation_prompt: true,
    });
  }
  if (opts.thinkingSwitch) {
    add("enable_thinking_false", [u1], { add_generation_prompt: true, extra: { enable_thinking: false } });
    add("enable_thinking_true", [u1], { add_generation_prompt: true, extra: { enable_thinking: true } });
    add("enable_thinking_false_multi", [sys, u1, a1, u2], { add_generation_prompt: true, extra: { enable_thinking: false } });
  }
  for (const c of opts.more ?? []) cases.push(c);
  return cases;
}

// Per template: which conversation features it supports, its special tokens.
const templates = {
  "deepseek-v3": { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", system: true, tools: "string", toolCallContentNull: true, multiToolCalls: true, reasoning: false,
    more: [{ name: "think_in_history", messages: [u1, { role: "assistant", content: "<think>hidden</think>Visible answer." }, u2], add_generation_prompt: true },
           { name: "two_system_messages", messages: [sys, { role: "system", content: "Second rule." }, u1], add_generation_prompt: true }] },
  "deepseek-r1": { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", system: true, tools: "string", toolCallContentNull: true, multiToolCalls: true,
    more: [{ name: "think_in_history", messages: [u1, { role: "assistant", content: "<think>\nhidden reasoning\n</think>\n\nVisible answer." }, u2], add_generation_prompt: true }] },
  "deepseek-v3.1": { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", system: true, tools: "string", toolCallContentNull: true, multiToolCalls: true, thinkingSwitch: true,
    more: [{ name: "thinking_variable", messages: [u1], add_generation_prompt: true, extra: { thinking: true } },
           { name: "prefix_message", messages: [u1, { role: "assistant", content: "Sure", prefix: true }], add_generation_prompt: false, extra: { thinking: true } }] },
  "minimax-m2": { bos: null, eos: "[e~[", system: true, tools: "object", multiToolCalls: true, reasoning: true,
    more: [{ name: "model_identity", messages: [u1], add_generation_prompt: true, extra: { model_identity: "You are MiniMax." } },
           { name: "error_tool_without_call", messages: [u1, { role: "tool", content: "42" }], add_generation_prompt: true }] },
  "qwen3": { bos: null, eos: "<|im_end|>", system: true, tools: "object", multiToolCalls: true, reasoning: true, thinkingSwitch: true,
    more: [{ name: "tool_args_as_string", messages: [u1, { role: "assistant", content: "", tool_calls: [toolCall(true)] }, { role: "tool", content: "18C" }], add_generation_prompt: true, tools: [weatherTool] },
           { name: "system_not_first", messages: [u1, { role: "system", content: "Be terse." }, u2], add_generation_prompt: true },
           { name: "content_list_is_skipped", messages: [{ role: "user", content: [{ type: "text", text: "parts" }] }], add_generation_prompt: true }] },
  "glm-4.5": { bos: null, eos: "<|endoftext|>", system: true, tools: "object", multiToolCalls: true, reasoning: true, thinkingSwitch: true,
    more: [{ name: "content_parts", messages: [{ role: "user", content: [{ type: "text", text: "Part one. " }, { type: "text", text: "Part two." }] }], add_generation_prompt: true },
           { name: "nothink_already", messages: [{ role: "user", content: "Quick answer /nothink" }], add_generation_prompt: true, extra: { enable_thinking: false } }] },
  "gpt-oss": { bos: "<|startoftext|>", eos: "<|return|>", system: true, tools: "object", toolCallContent: "",
    more: [
      { name: "reasoning_effort_high", messages: [u1], add_generation_prompt: true, extra: { reasoning_effort: "high" } },
      { name: "developer_message", messages: [{ role: "developer", content: "Always answer in French." }, u1], add_generation_prompt: true },
      { name: "model_identity", messages: [u1], add_generation_prompt: true, extra: { model_identity: "You are a Shakespearean bard." } },
      { name: "builtin_tools", messages: [u1], add_generation_prompt: true, extra: { builtin_tools: ["browser", "python"] } },
      { name: "thinking_last_turn", messages: [u1, { role: "assistant", thinking: "Greet back.", content: "Hello!" }], add_generation_prompt: false },
      { name: "thinking_dropped_in_history", messages: [u1, { role: "assistant", thinking: "Greet back.", content: "Hello!" }, u2], add_generation_prompt: true },
      { name: "error_channel_tags", messages: [u1, { role: "assistant", content: "<|channel|>analysis<|message|>x" }], add_generation_prompt: true },
      { name: "error_tool_without_call", messages: [u1, { role: "tool", content: "42" }], add_generation_prompt: true },
      { name: "tool_schema_types", messages: [u1], add_generation_prompt: true, tools: [{ type: "function", function: { name: "search", description: "Search documents",
        parameters: { type: "object", properties: {
          query: { type: "string", description: "What to look for" },
          tags: { type: "array", items: { type: "string" }, description: "Tags to match" },
          scores: { type: "array", items: { type: "number" }, description: "Scores" },
          filters: { type: "object", description: "Filters", properties: { lang: { type: "string" }, year: { type: "integer" } }, required: ["lang"] },
          mode: { type: "string", enum: ["fast", "exact"], description: "Search mode", default: "fast" },
          limit: { type: "integer", description: "How many", default: 10 },
          exact: { type: "boolean", description: "Exact match", nullable: true },
        }, required: ["query"] } } }] },
    ] },
  "kimi-k2": { bos: "[BOS]", eos: "[EOS]", system: true, tools: false,
    more: [{ name: "tools_declared", messages: [u1], add_generation_prompt: true, tools: [weatherTool] },
           { name: "content_parts_with_image", messages: [{ role: "user", content: [{ type: "text", text: "Look: " }, { type: "image", image: "x.png" }, { type: "text", text: " what is it?" }] }], add_generation_prompt: true }] },
  "kimi-k2-thinking": { bos: "[BOS]", eos: "[EOS]", system: true, tools: "object", multiToolCalls: true, reasoning: true,
    more: [{ name: "named_user", messages: [{ role: "user", name: "bob", content: "Hi" }], add_generation_prompt: true },
           { name: "content_parts_with_image", messages: [{ role: "user", content: [{ type: "text", text: "Look: " }, { type: "image_url", image_url: { url: "x" } }] }], add_generation_prompt: true }] },
  "mixtral-8x7b-instruct": { bos: "<s>", eos: "</s>", system: false, tools: false,
    more: [{ name: "error_system_role", messages: [sys, u1], add_generation_prompt: true },
           { name: "error_not_alternating", messages: [u1, u2], add_generation_prompt: true }] },
  "qwen1.5-moe-chat": { bos: null, eos: "<|im_end|>", system: true, tools: false },
  "olmoe-instruct": { bos: "<|endoftext|>", eos: "<|endoftext|>", system: true, tools: false },
};

function renderCase(source, t, c) {
  const vars = {
    messages: c.messages,
    tools: c.tools ?? null,
    documents: null,
    add_generation_prompt: c.add_generation_prompt,
  };
  if (t.bos != null) vars.bos_token = t.bos;
  if (t.eos != null) vars.eos_token = t.eos;
  Object.assign(vars, c.extra ?? {});
  const r = render(source, vars);
  const out = { name: c.name, messages: c.messages, add_generation_prompt: c.add_generation_prompt };
  if (c.tools) out.tools = c.tools;
  if (c.extra) out.extra = c.extra;
  if ("error" in r) {
    if (!c.name.startsWith("error_")) throw new Error(`${c.name}: unexpected error: ${r.error}`);
    out.error = r.error;
  } else {
    if (c.name.startsWith("error_")) throw new Error(`${c.name}: expected an error`);
    out.expected = r.output;
  }
  return out;
}

const outDir = join(root, "tests/fixtures/chat/rendered");
mkdirSync(outDir, { recursive: true });
const tplDir = join(root, "tests/fixtures/chat/templates");
for (const file of readdirSync(tplDir).filter((f) => f.endsWith(".jinja")).sort()) {
  const name = file.replace(/\.jinja$/, "");
  const t = templates[name];
  if (!t) throw new Error(`no conversation settings for template ${name}`);
  const source = readFileSync(join(tplDir, file), "utf8");
  const cases = conversations(t).map((c) => renderCase(source, t, c));
  const doc = { template: `templates/${file}`, renderer: `@huggingface/jinja ${jinjaVersion}`, bos_token: t.bos, eos_token: t.eos, cases };
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify(doc, null, 1) + "\n");
  console.log(`${name}: ${cases.length} cases`);
}

// The bundled model's template (models/*/tokenizer_config.json's chat_template).
for (const model of readdirSync(join(root, "models"))) {
  let cfg;
  try {
    cfg = JSON.parse(readFileSync(join(root, "models", model, "tokenizer_config.json"), "utf8"));
  } catch {
    continue;
  }
  if (typeof cfg.chat_template !== "string") continue;
  const t = { bos: cfg.bos_token, eos: cfg.eos_token, system: true, tools: false,
    more: [{ name: "named_speakers", messages: [{ role: "user", name: "Hamlet", content: "To be, or not to be?" }, { role: "assistant", name: "Horatio", content: "That is the question, my lord." }, { role: "user", name: "Hamlet", content: "Speak on." }], add_generation_prompt: true },
           { name: "custom_assistant_name", messages: [u1], add_generation_prompt: true, extra: { assistant_name: "Prospero", user_name: "Miranda" } },
           { name: "content_parts", messages: [{ role: "user", content: [{ type: "text", text: "Good morrow." }, { type: "image" }, { type: "text", text: "How fares the day?" }] }], add_generation_prompt: true },
           { name: "content_none", messages: [u1, { role: "assistant", content: null }, u2], add_generation_prompt: true }] };
  const cases = conversations(t).map((c) => renderCase(cfg.chat_template, t, c));
  const doc = { template: `models/${model}/tokenizer_config.json`, renderer: `@huggingface/jinja ${jinjaVersion}`, bos_token: t.bos, eos_token: t.eos, cases };
  writeFileSync(join(outDir, `model-${model}.json`), JSON.stringify(doc, null, 1) + "\n");
  console.log(`model ${model}: ${cases.length} cases`);
}

// ---- syntax cases: one feature each ----
const S = (name, template, vars = {}) => ({ name, template, vars });
// A condition as T/F: @huggingface/jinja prints booleans as true/false, jinja2 as True/False.
const B = (expr) => `{{ 'T' if (${expr}) else 'F' }}`;
const syntax = [
  S("text_only", "Hello, world!"),
  S("trailing_newline_dropped", "line\n"),
  S("print_variable", "{{ name }}", { name: "Ada" }),
  S("print_undefined", "[{{ missing }}]"),
  S("string_literals", "{{ 'single' }} {{ \"double\" }} {{ 'it\\'s' }} {{ \"tab\\there\" }} {{ 'a' 'b' }}"),
  S("string_escapes", "{{ 'x\\ny' }}|{{ '\\u00e9\\x41' }}|{{ 'back\\\\slash' }}"),
  S("integers", "{{ 1 + 2 }} {{ 10 - 3 }} {{ 6 * 7 }} {{ 7 // 2 }} {{ 2 ** 8 }} {{ -5 + 2 }}"),
  S("floats", "{{ 1.5 + 1.25 }} {{ 3 / 4 }} {{ 10 / 4 }} {{ 2.5 * 2 }} {{ 0.1 + 0.2 }}"),
  S("modulo_positive", "{{ 7 % 3 }} {{ 10 % 5 }} {{ loop_count % 2 }}", { loop_count: 5 }),
  S("comparisons", B("1 < 2") + B("2 <= 2") + B("3 > 4") + B("'a' == 'a'") + B("'a' != 'b'") + B("1 == 1.0") + B("2 >= 3")),
  S("logic", B("true and false") + B("false or true") + B("not true") + B("not (false and true)")),
  S("and_or_values", "{{ '' or 'fallback' }} {{ 'first' and 'second' }} {{ 0 or 7 }}"),
  S("in_operator", B("'b' in 'abc'") + B("2 in [1, 2]") + B("'k' in {'k': 1}") + B("'z' not in 'abc'") + B("'q' in d"), { d: { p: 1 } }),
  S("concat_tilde", "{{ 'a' ~ 1 ~ 'b' }} {{ 'n=' ~ n }}", { n: 42 }),
  S("string_plus", "{{ 'con' + 'cat' }}"),
  S("list_plus", "{{ ([1, 2] + [3]) | length }}"),
  S("conditional_expression", "{{ 'yes' if flag else 'no' }} {{ 'yes' if not flag else 'no' }}", { flag: true }),
  S("conditional_without_else", "[{{ 'shown' if false }}]"),
  S("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %} {% endfor %}"),
  S("for_loop_vars", "{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}{{ '^' if loop.first }}{{ '$' if loop.last }} {% endfor %}", { xs: ["a", "b", "c"] }),
  S("for_else", "{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", { xs: [] }),
  S("for_filter", "{% for x in xs if x > 1 %}{{ x }}:{{ loop.index }} {% endfor %}", { xs: [1, 2, 3, 0, 5] }),
  S("for_dict_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", { d: { b: 2, a: 1, c: 3 } }),
  S("for_dict_keys", "{% for k in d %}{{ k }},{% endfor %}", { d: { z: 1, y: 2 } }),
  S("for_nested_loop", "{% for a in [1, 2] %}{% for b in ['x', 'y'] %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}"),
  S("for_previtem_nextitem", "{% for x in [1, 2, 3] %}{{ loop.previtem if not loop.first else '-' }}{{ x }}{{ loop.nextitem if not loop.last else '-' }} {% endfor %}"),
  S("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
  S("range", "{{ range(3) | join(',') }} {{ range(2, 5) | join(',') }} {{ range(10, 0, -3) | join(',') }}"),
  S("set_simple", "{% set x = 5 %}{% set y = x * 2 %}{{ y }}"),
  S("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}"),
  S("set_block", "{% set greeting %}Hello {{ name }}!{% endset %}[{{ greeting }}]", { name: "Bob" }),
  S("set_in_loop_is_local", "{% set x = 'outer' %}{% for i in [1] %}{% set x = 'inner' %}{{ x }}{% endfor %} {{ x }}"),
  S("namespace", "{% set ns = namespace(count=0, found=false) %}{% for x in [1, 2, 3] %}{% set ns.count = ns.count + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ 'found' if ns.found }}"),
  S("macro", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', greeting='Hi') }} {{ greet('Cy', 'Hey') }}"),
  S("macro_recursive", "{% macro count(n) %}{{ n }}{% if n > 0 %}{{ count(n - 1) }}{% endif %}{% endmacro %}{{ count(4) }}"),
  S("macro_result_method", "{% macro m() %}  padded  {% endmacro %}[{{ m().strip() }}]"),
  S("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold{% endcall %}"),
  S("comments", "a{# a comment #}b{#- stripped -#}  c"),
  S("whitespace_control", "x  {{- ' y ' -}}  z\n  {%- if true -%}  w  {%- endif -%}  !"),
  S("trim_blocks", "{% if true %}\nline\n{% endif %}\nend"),
  S("lstrip_blocks", "<ul>\n    {% for x in [1, 2] %}\n    <li>{{ x }}</li>\n    {% endfor %}\n</ul>"),
  S("lstrip_not_for_expressions", "    {{ 'kept indent' }}\n"),
  S("inline_block_keeps_text", "before {% if true %}inline{% endif %} after"),
  S("generation_tag", "{% generation %}assistant text{% endgeneration %}"),
  S("attribute_and_item", "{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ 'def' if m.missing is defined else 'undef' }}", { m: { role: "user", content: "hi" }, xs: [10, 20, 30] }),
  S("slicing", "{{ xs[1:] | join(',') }} {{ xs[:2] | join(',') }} {{ xs[::-1] | join(',') }} {{ xs[1:3] | join(',') }} {{ 'abcdef'[2:4] }} {{ 'abc'[::-1] }}", { xs: [1, 2, 3, 4] }),
  S("tests_types", B("x is string") + B("n is number") + B("n is integer") + B("d is mapping") + B("l is sequence") + B("b is boolean") + B("z is none") + B("u is undefined") + B("x is defined") + B("n is string") + B("x is mapping") + B("l is iterable") + B("x is iterable") + B("b is string"), { x: "s", n: 3, d: {}, l: [], b: true, z: null }),
  S("tests_values", B("3 is odd") + B("4 is even") + B("b is true") + B("b is false") + B("x is not none") + B("5 is even"), { b: false, x: 1 }),
  S("filter_case", "{{ 'hello' | upper }} {{ 'HeLLo' | lower }} {{ 'hello world' | title }} {{ 'hello' | capitalize }}"),
  S("filter_trim", "[{{ '  padded  ' | trim }}]"),
  S("filter_length", "{{ 'abc' | length }} {{ [1, 2] | length }} {{ {'a': 1} | length }}"),
  S("filter_first_last", "{{ xs | first }} {{ xs | last }}", { xs: ["a", "b", "c"] }),
  S("filter_join", "{{ ['a', 'b', 'c'] | join(', ') }} {{ ['x', 'y'] | join }}"),
  S("filter_default", "{{ missing | default('dflt') }} {{ present | default('dflt') }} {{ '' | default('empty', true) }} [{{ '' | default('kept') }}]", { present: "here" }),
  S("filter_tojson", "{{ data | tojson }}", { data: { name: "x", list: [1, 2.5, "three"], nested: { ok: true, none: null } } }),
  S("filter_tojson_indent", "{{ data | tojson(indent=2) }}", { data: { a: [1, { b: "c" }], e: [] } }),
  S("filter_tojson_unicode", "{{ 'é 你好 \"q\" \\n' | tojson }}"),
  S("filter_tojson_ensure_ascii", "{{ 'é 你好 🙂' | tojson(ensure_ascii=true) }}"),
  S("filter_tojson_sort_keys", "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"),
  S("filter_tojson_separators", "{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}"),
  S("filter_string_int_float", "{{ 42 | string }} {{ '17' | int + 1 }} {{ '2.5' | float }} {{ 3.7 | int }} {{ 'x' | int }}"),
  S("filter_items_dictsort", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %} {% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}", { d: { b: 2, a: 1 } }),
  S("filter_selectattr", "{{ users | selectattr('active') | map(attribute='name') | join(',') }} {{ users | rejectattr('active') | map(attribute='name') | join(',') }}", { users: [{ name: "a", active: true }, { name: "b", active: false }, { name: "c", active: true }] }),
  S("filter_selectattr_equalto", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('|') }}", { ms: [{ role: "user", content: "u1" }, { role: "assistant", content: "a1" }, { role: "user", content: "u2" }] }),
  S("filter_map_default", "{{ xs | map(attribute='v', default='?') | join(',') }}", { xs: [{ v: 1 }, {}, { v: 3 }] }),
  S("filter_unique_reverse_sort", "{{ [3, 1, 2, 3, 1] | unique | join(',') }} {{ [1, 2, 3] | reverse | join(',') }} {{ [3, 1, 2] | sort | join(',') }} {{ ['b', 'A', 'c'] | sort | join(',') }}"),
  S("filter_sort_attribute", "{{ xs | sort(attribute='n') | map(attribute='n') | join(',') }} {{ xs | sort(attribute='n', reverse=true) | map(attribute='n') | join(',') }}", { xs: [{ n: 2 }, { n: 1 }, { n: 3 }] }),
  S("filter_replace", "{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }}"),
  S("filter_indent", "{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(2, blank=true) }}"),
  S("filter_abs", "{{ -3 | abs }} {{ -2.5 | abs }}"),
  S("filter_safe_list", "{{ 'x' | safe }} {{ ['a', 'b'] | list | join('.') }}"),
  S("filter_chain", "{{ '  Hello World  ' | trim | lower | replace('world', 'there') }}"),
  S("filter_block", "{% filter upper %}shout {{ 'this' }}{% endfilter %}"),
  S("method_strip", "[{{ '  x  '.strip() }}] [{{ '  x  '.lstrip() }}] [{{ '  x  '.rstrip() }}] "),
  S("method_split", "{{ 'a b  c'.split() | join('|') }} {{ 'a,b,c'.split(',') | join('|') }} {{ 'a,b,c'.split(',', 1) | join('|') }} {{ '  lead trail '.split() | length }}"),
  S("method_startswith_endswith", B("'hello'.startswith('he')") + B("'hello'.endswith('lo')") + B("'hello'.startswith(('x', 'h'))") + B("'hello'.endswith('x')")),
  S("method_case_replace", "{{ 'ab'.upper() }} {{ 'AB'.lower() }} {{ 'a-b'.replace('-', '_') }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }}"),
  S("method_dict", "{{ d.get('a') }} {{ d.get('z', 'none!') }} {{ d.keys() | join(',') }} {{ d.values() | join(',') }} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", { d: { a: 1, b: 2 } }),
  S("dict_literal", "{% set d = {'x': 1, 'y': [1, 2]} %}{{ d.x }} {{ d['y'] | length }} {{ d | tojson }}"),
  S("list_literal_nested", "{% set l = [[1, 2], [3]] %}{{ l[0][1] }} {{ l | length }} {{ l[1] | first }}"),
  S("namespace_from_kwargs_iteration", "{% set ns = namespace(items=[]) %}{% for x in [1, 2] %}{% set ns.items = ns.items + [x * 10] %}{% endfor %}{{ ns.items | join(',') }}"),
  S("raise_exception", "{% if true %}{{ raise_exception('Custom failure: roles must alternate') }}{% endif %}"),
  S("strftime_now", "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %B %Y') }} {{ strftime_now('%H:%M') }}"),
  S("unicode_passthrough", "{{ s }}|{{ s | length }}|{{ s[1] }}|{{ s[::-1] }}", { s: "héllo 你" }),
  S("messages_loop", "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}", { messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }], add_generation_prompt: true }),
  S("messages_negative_index", "{{ messages[-1].content }} {{ (messages | length) - 1 }}", { messages: [{ content: "a" }, { content: "b" }] }),
  S("loop_index_lookahead", "{% for m in ms %}{% if not loop.last and ms[loop.index0 + 1].role == m.role %}same{% else %}diff{% endif %} {% endfor %}", { ms: [{ role: "a" }, { role: "a" }, { role: "b" }] }),
  S("whitespace_minus_blocks_chain", "{%- for x in [1, 2] -%}\n  {{ x }}\n{%- endfor -%}\n!"),
  S("unknown_filter_error", "{{ 'x' | no_such_filter }}"),
  S("syntax_error_unclosed", "{% if x %}never closed"),
];
const syntaxOut = syntax.map((c) => {
  const r = render(c.template, c.vars);
  const o = { name: c.name, template: c.template, vars: c.vars };
  if ("error" in r) o.error = r.error;
  else o.expected = r.output;
  return o;
});
writeFileSync(join(root, "tests/fixtures/chat/syntax_cases.json"), JSON.stringify({ renderer: `@huggingface/jinja ${jinjaVersion}`, cases: syntaxOut }, null, 1) + "\n");
console.log(`syntax: ${syntaxOut.length} cases (${syntaxOut.filter((c) => "error" in c).length} errors)`);

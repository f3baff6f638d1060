// The Jinja interpreter of chat templates (src/chat): expressions, statements, whitespace
// control, filters and methods with Python's semantics, and errors that name line and column.
// The byte-identity with @huggingface/jinja on real templates is
// tests/python/test_chat_template.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_template.h"
#include "chat/jinja_eval.h"
#include "chat/jinja_parser.h"
#include "core/error.h"

namespace wkvq::jinja {
namespace {

std::string render_with(const std::string& tmpl, const nlohmann::ordered_json& vars = {},
                        int64_t max_steps = 1'000'000) {
  ValueDict d;
  if (vars.is_object()) {
    for (const auto& [k, v] : vars.items()) d.emplace_back(k, Value::from_json(v));
  }
  return render(parse(tmpl), d, max_steps);
}

std::string error_of(const std::string& tmpl, const nlohmann::ordered_json& vars = {},
                     int64_t max_steps = 1'000'000) {
  try {
    render_with(tmpl, vars, max_steps);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Jinja, LiteralsAndArithmetic) {
  EXPECT_EQ(
      render_with("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }}"),
      "7 9 3 -4 2");
  EXPECT_EQ(render_with("{{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 4 / 2 }}"), "3.5 1024 2.5 2.0");
  EXPECT_EQ(render_with("{{ 'a' ~ 1 ~ none ~ true }} {{ 'x' + 'y' }}"), "a1NoneTrue xy");
  EXPECT_EQ(render_with("{{ 'it''s' }} {{ \"q\\\"\\n\" }}"),
            "its q\"\n");  // adjacent literals join
  EXPECT_EQ(render_with("{{ [1, 2] + [3] }} {{ {'a': 1, 'b': [true, none]} }}"),
            "[1, 2, 3] {\"a\": 1, \"b\": [true, null]}");
}

TEST(Jinja, ComparisonsAndLogic) {
  EXPECT_EQ(render_with("{{ 1 < 2 and 'b' > 'a' }} {{ 1 == 1.0 }} {{ 'a' != 'a' }}"),
            "True True False");
  EXPECT_EQ(render_with("{{ 'ell' in 'hello' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }}"),
            "True False True");
  EXPECT_EQ(render_with("{{ not 1 == 2 }} {{ not (true and false) }} {{ [] or 'empty' }}"),
            "True True empty");
  EXPECT_EQ(render_with("{{ 0 and 1 }} {{ 'y' if 1 > 2 else 'n' }}[{{ 'y' if false }}]"), "0 n[]");
}

TEST(Jinja, IndexingSlicingAndAttributes) {
  nlohmann::ordered_json v = {{"xs", {1, 2, 3, 4}}, {"m", {{"role", "user"}, {"content", "hé!"}}}};
  EXPECT_EQ(render_with("{{ xs[0] }}{{ xs[-1] }} {{ xs[::-1] }} {{ xs[1:3] }} {{ xs[::2] }}", v),
            "14 [4, 3, 2, 1] [2, 3] [1, 3]");
  EXPECT_EQ(
      render_with("{{ m.role }} {{ m['content'] }} {{ m.content[1] }} {{ m.content[::-1] }}", v),
      "user hé! é !éh");
  EXPECT_EQ(render_with("[{{ m.missing }}] {{ m.missing is defined }} {{ xs[9] is defined }}", v),
            "[] False False");
}

TEST(Jinja, LoopsAndLoopVariables) {
  nlohmann::ordered_json v = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render_with("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ x }}"
                        "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}"
                        "{{ loop.revindex }}{{ loop.length }};{% endfor %}",
                        v),
            "01aF33;12b23;23cL13;");
  EXPECT_EQ(render_with("{% for x in xs if x != 'b' %}{{ loop.index }}{{ x }}{% endfor %}", v),
            "1a2c");
  EXPECT_EQ(render_with("{% for x in [] %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(render_with("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}"),
            "a=1,b=2,");
  EXPECT_EQ(render_with("{% for x in xs %}{% if x == 'b' %}{% break %}{% endif %}{{ x }}"
                        "{% endfor %}|{% for x in xs %}{% if loop.first %}{% continue %}{% endif %}"
                        "{{ x }}{% endfor %}",
                        v),
            "a|bc");
}

TEST(Jinja, SetScopingAndNamespace) {
  // a set inside a loop does not leak; a namespace attribute does
  EXPECT_EQ(
      render_with("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for i in range(3) %}"
                  "{% set n = n + 1 %}{% set ns.n = ns.n + i %}{% endfor %}{{ n }} {{ ns.n }}"),
      "0 3");
  EXPECT_EQ(render_with("{% if true %}{% set x = 'in if' %}{% endif %}{{ x }}"), "in if");
  EXPECT_EQ(render_with("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render_with("{% set block %}x{{ 1 + 1 }}{% endset %}[{{ block }}]"), "[x2]");
  EXPECT_EQ(render_with("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                        "{{ greet('Bo') }} {{ greet('Al', punct='?') }}"),
            "Hi Bo! Hi Al?");
}

TEST(Jinja, WhitespaceControl) {
  EXPECT_EQ(render_with("a  {{- 'b' -}}  \n c"), "abc");
  EXPECT_EQ(render_with("a\n  {%- if true %} b {% endif -%}\n c"), "a b c");
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes
  EXPECT_EQ(render_with("{% if true %}\n    {% if true %}\nx\n    {% endif %}\n{% endif %}\ny\n"),
            "x\ny");
  // not for expressions, nor for tags that follow text on their line
  EXPECT_EQ(render_with("{{ 'a' }}\n  b {% if true %}c{% endif %}\n"), "a\n  b c");
  EXPECT_EQ(render_with("x{# a comment #}\ny"), "xy");
}

TEST(Jinja, FiltersAndTests) {
  nlohmann::ordered_json v = {{"d", {{"b", 1}, {"a", "x\"y"}}}, {"s", "  Hello World \n"}};
  EXPECT_EQ(render_with("[{{ s | trim }}] {{ s | length }} {{ d | length }} {{ s|trim|upper }}", v),
            "[Hello World] 15 2 HELLO WORLD");
  EXPECT_EQ(
      render_with("{{ d | tojson }} {{ 'é\\n' | tojson }} {{ [1, 2] | tojson(indent=2) }}", v),
      "{\"b\": 1, \"a\": \"x\\\"y\"} \"é\\n\" [\n  1,\n  2\n]");
  EXPECT_EQ(render_with("{{ missing | default('dflt') }} {{ '' | default('e', true) }} "
                        "{{ d | items | first | first }} {{ [3, 1] | join('-') }}",
                        v),
            "dflt e b 3-1");
  EXPECT_EQ(render_with("{{ 'straße' | upper }} {{ 'ÉTÉ' | lower }} {{ 'hello world' | title }}"),
            "STRASSE été Hello World");
  EXPECT_EQ(render_with("{{ none is none }} {{ 1 is not string }} {{ 4 is even }} "
                        "{{ d is mapping }} {{ false is false }} {{ 3 is divisibleby 3 }}",
                        v),
            "True True True True True True");
  EXPECT_EQ(render_with("{{ [{'n': 1, 'k': true}, {'n': 2}] | selectattr('k') | map(attribute='n')"
                        " | list }}"),
            "[1]");
}

TEST(Jinja, StringMethodsFollowPython) {
  EXPECT_EQ(render_with("[{{ '\\n\\n x \\n'.lstrip('\\n') }}] [{{ 'xxaxx'.strip('x') }}] "
                        "[{{ ' \\t a '.rstrip() }}]"),
            "[ x \n] [a] [ \t a]");
  EXPECT_EQ(
      render_with("{{ 'a<b>c'.split('<b>') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }}"),
      "[\"a\", \"c\"] [\"a\", \"b\"] [\"a\", \"b,c\"]");
  EXPECT_EQ(render_with("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} "
                        "{{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.upper() }}"),
            "True True bba AB");
  EXPECT_EQ(render_with("{{ '日本語'|length }} {{ '日本語'[1:] }}"), "3 本語");
}

TEST(Jinja, ErrorsNameLineAndColumn) {
  EXPECT_NE(error_of("line one\n{{ 1 + }}").find("line 2, column 8: expected an expression"),
            std::string::npos)
      << error_of("line one\n{{ 1 + }}");
  EXPECT_NE(error_of("{% if true %}x").find("expected {% endif %}"), std::string::npos);
  EXPECT_NE(error_of("{% for x in y %}{% endif %}").find("unexpected 'endif'"), std::string::npos);
  EXPECT_NE(error_of("{{ 'abc }}").find("line 1, column 4: string literal is never closed"),
            std::string::npos);
  EXPECT_NE(error_of("ok\n  {{ nothing + 1 }}")
                .find("line 2, column 14: 'nothing' is undefined (used with '+')"),
            std::string::npos)
      << error_of("ok\n  {{ nothing + 1 }}");
  EXPECT_NE(error_of("{{ nothing.attr }}").find("'nothing' is undefined, so it has no attribute"),
            std::string::npos);
  EXPECT_NE(error_of("{{ nofunc() }}").find("'nofunc' is undefined, not a function"),
            std::string::npos);
  EXPECT_NE(error_of("\n{{ raise_exception('Roles must alternate') }}")
                .find("line 2, column 4: the template raised an error: Roles must alternate"),
            std::string::npos)
      << error_of("\n{{ raise_exception('Roles must alternate') }}");
  EXPECT_NE(
      error_of("{{ x | nosuchfilter }}").find("line 1, column 8: unknown filter 'nosuchfilter'"),
      std::string::npos);
  EXPECT_NE(error_of("{% set x = 1 %}{% set x.y = 2 %}").find("only attributes of a namespace()"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                     "{% endfor %}",
                     {}, 1000)
                .find("ran more than 1000 statements and loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}")
                .find("nested deeper than"),
            std::string::npos);
  EXPECT_NE(
      error_of("{% if " + std::string(500, '-') + "1 %}{% endif %}").find("nested deeper than"),
      std::string::npos);
}

TEST(ChatTemplate, RendersMessagesWithSpecialTokens) {
  ChatTemplate t(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}{{ eos_token }}"
      "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
      "test template");
  nlohmann::ordered_json msgs = nlohmann::ordered_json::parse(
      R"([{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}])");
  EXPECT_EQ(t.render(msgs, true), "<system>Be brief.<user>Hi<assistant>");
  EXPECT_EQ(t.render(msgs, false), "<system>Be brief.<user>Hi");
  EXPECT_THROW(t.render(nlohmann::ordered_json::parse(R"([{"content": "x"}])"), false), Error);
  EXPECT_THROW(t.render(nlohmann::ordered_json::parse(R"({"role": "user"})"), false), Error);
  try {
    ChatTemplate bad("{% for %}", "bad.jinja");
    FAIL() << "a bad template was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jinja: chat template line 1, column 8"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace wkvq::jinja

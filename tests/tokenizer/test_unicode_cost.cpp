// Tests of unicode_normalize (the NFC/NFD/NFKC/NFKD normalizers): its output must be utf8proc_map's
// on every kind of text, and its cost must grow at most ~linearly in the length of a run of
// combining marks (utf8proc's own canonical ordering is a bubble sort, quadratic in the run).
#include <moe/tokenizer/normalizer.hpp>
#include <moe/tokenizer/unicode.hpp>

#include <catch2/catch.hpp>

#include <utf8proc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace moe;
using tokenizer::NormalizationForm;

namespace {

constexpr NormalizationForm kForms[] = {NormalizationForm::kNfc, NormalizationForm::kNfd, NormalizationForm::kNfkc,
                                        NormalizationForm::kNfkd};

const char* form_name(NormalizationForm form) {
  switch (form) {
    case NormalizationForm::kNfc: return "NFC";
    case NormalizationForm::kNfd: return "NFD";
    case NormalizationForm::kNfkc: return "NFKC";
    case NormalizationForm::kNfkd: return "NFKD";
  }
  return "?";
}

// utf8proc_map itself, as unicode_normalize called it before (the reference).
std::string reference_normalize(const std::string& text, NormalizationForm form) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &out, tokenizer::detail::normalization_options(form));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  REQUIRE(n >= 0);
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

std::string hex_of(const std::string& s) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t len = 0;
    const char32_t c = tokenizer::utf8_decode(s, i, len);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04X ", static_cast<unsigned>(c));
    out += buf;
    i += len;
  }
  return out;
}

struct Range {
  char32_t first, last;
};

// Starters and characters with (canonical or compatibility) decompositions.
constexpr Range kBases[] = {
    {'a', 'z'},         {'A', 'Z'},         {'0', '9'},         {' ', ' '},         {0x00C0, 0x017F},  // Latin-1, Latin Ext-A
    {0x01C4, 0x01CC},   {0x1E00, 0x1EFF},   {0x0386, 0x03CE},   {0x1F00, 0x1FFE},                      // DŽ.., Latin/Greek ext.
    {0x0400, 0x045F},   {0x0622, 0x0626},   {0x0929, 0x0934},   {0x09CB, 0x09CC},   {0x0F43, 0x0F4D},  // Cyrillic, Arabic, Indic
    {0x0F73, 0x0F81},   {0x0340, 0x0344},   {0x1D15E, 0x1D164}, {0x2ADC, 0x2ADC},                      // decompose to marks; exclusions
    {0xAC00, 0xAC40},   {0xD7A0, 0xD7A3},   {0x1100, 0x1112},   {0x1161, 0x1175},   {0x11A8, 0x11C2},  // Hangul syllables and jamo
    {0x4E00, 0x4E20},   {0xF900, 0xF920},   {0x2F800, 0x2F810}, {0x20000, 0x20005},                    // CJK, CJK compatibility
    {0x00A0, 0x00BF},   {0xFB00, 0xFB06},   {0x2460, 0x2473},   {0xFF01, 0xFF5E},   {0x3300, 0x3310},  // compatibility forms
    {0xFDFA, 0xFDFB},   {0x212A, 0x212B},   {0x2126, 0x2126},   {0x1F600, 0x1F610}, {0x0378, 0x0379},  // singletons, emoji, unassigned
    {0xE000, 0xE002},   {0x3099, 0x309A},   {0x304B, 0x3062},   {0x30AB, 0x30C2},                      // private use, kana + voicing
};

// Combining marks of many canonical combining classes (and a few with class 0 or decompositions).
constexpr Range kMarks[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05C7}, {0x0610, 0x061A}, {0x064B, 0x065F}, {0x0670, 0x0670},
    {0x093C, 0x094D}, {0x0E31, 0x0E3A}, {0x0E47, 0x0E4E}, {0x0F71, 0x0F84}, {0x1AB0, 0x1ABE}, {0x1DC0, 0x1DFF},
    {0x20D0, 0x20F0}, {0x302A, 0x302F}, {0x3099, 0x309A}, {0xFE20, 0xFE2F}, {0x1D165, 0x1D169}, {0x1D16D, 0x1D172},
    {0x0F39, 0x0F39}, {0x0345, 0x0345}, {0x05BF, 0x05BF}, {0x1161, 0x1175}, {0x11A8, 0x11C2},
};

template <std::size_t N>
char32_t pick(std::mt19937& rng, const Range (&ranges)[N]) {
  const Range& r = ranges[rng() % N];
  return r.first + static_cast<char32_t>(rng() % (r.last - r.first + 1));
}

std::string random_unicode_text(std::mt19937& rng, std::size_t max_units) {
  std::string s;
  for (std::size_t i = 0, n = rng() % (max_units + 1); i < n; ++i) {
    if (rng() % 3 == 0) {
      // A run of marks, sometimes long, so that reordering and blocked composition both matter.
      const std::size_t run = rng() % 4 == 0 ? rng() % 40 : 1 + rng() % 4;
      for (std::size_t k = 0; k < run; ++k) tokenizer::utf8_append(s, pick(rng, kMarks));
    } else {
      tokenizer::utf8_append(s, pick(rng, kBases));
    }
  }
  return s;
}

// "a" followed by `marks` combining marks alternating U+0301 (class 230) and U+0316 (class 220):
// every pair is out of order, the worst case for utf8proc's adjacent-swap sort.
std::string alternating_marks(std::size_t marks) {
  std::string s = "a";
  for (std::size_t i = 0; i < marks; ++i) s += i % 2 == 0 ? "\xCC\x81" : "\xCC\x96";
  return s;
}

}  // namespace

TEST_CASE("unicode_normalize matches utf8proc_map on random text", "[tokenizer][unicode]") {
  std::mt19937 rng(20240611);
  for (int iter = 0; iter < 4000; ++iter) {
    const std::string text = random_unicode_text(rng, iter % 10 == 0 ? 200 : 24);
    for (NormalizationForm form : kForms) {
      const std::string got = tokenizer::unicode_normalize(text, form);
      const std::string expected = reference_normalize(text, form);
      if (got != expected) {
        INFO(form_name(form) << " of " << hex_of(text));
        INFO("got      " << hex_of(got));
        INFO("expected " << hex_of(expected));
        CHECK(got == expected);
      }
    }
  }
}

TEST_CASE("unicode_normalize matches utf8proc_map on fixed cases", "[tokenizer][unicode]") {
  std::vector<std::string> cases = {
      "",
      "plain ascii",
      "caf\xC3\xA9 e\xCC\x81 \xE1\xBA\xA0\xCC\x88",          // é, e + acute, Ạ + diaeresis
      "\xEA\xB0\x80\xE1\x86\xA8 \xE1\x84\x80\xE1\x85\xA1",  // 가 + jamo T, L + V
      "\xEF\xB7\xBA \xEF\xAC\x81 \xE2\x91\xA0",              // U+FDFA, ﬁ, ①
      "\xE0\xBD\xB3\xE0\xBD\xB1",                            // U+0F73 (decomposes to marks), U+0F71
      "\xCC\x81\xCC\x96 leading marks",
      alternating_marks(3000),
  };
  std::string descending = "o";  // classes 240, 232, 230, 220, 202, 1 repeated: every run reversed
  for (int i = 0; i < 500; ++i) descending += "\xCD\x85\xCC\x95\xCC\x81\xCC\x96\xCC\xA1\xCC\xB4";
  cases.push_back(descending);
  cases.push_back(std::string("x\0y\xCC\x81", 5));  // NUL is an ordinary code point
  for (const std::string& text : cases)
    for (NormalizationForm form : kForms) {
      INFO(form_name(form) << " of " << hex_of(text).substr(0, 200));
      CHECK(tokenizer::unicode_normalize(text, form) == reference_normalize(text, form));
    }
}

TEST_CASE("unicode_normalize rejects what utf8proc rejects", "[tokenizer][unicode]") {
  for (const std::string& bad : {std::string("\xED\xA0\x80"), std::string("\xC3"), std::string("\xE0\x80\x80")})
    for (NormalizationForm form : kForms)
      CHECK_THROWS(tokenizer::unicode_normalize("\xC3\xA9" + bad, form));
}

TEST_CASE("unicode_normalize cost is ~linear in a run of combining marks", "[tokenizer][unicode][cost]") {
  // Min of 5 samples of 4 normalizations each; n log n gives ~4.6x for 4x the marks, the bubble
  // sort ~16x. Ratios, not wall-clock thresholds, so that a slow or loaded machine still passes.
  auto seconds_of = [](const std::string& text, NormalizationForm form) {
    double best = 1e30;
    for (int sample = 0; sample < 5; ++sample) {
      const auto t0 = std::chrono::steady_clock::now();
      std::size_t bytes = 0;
      for (int rep = 0; rep < 4; ++rep) bytes += tokenizer::unicode_normalize(text, form).size();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      CHECK(bytes > 0);
    }
    return best;
  };
  constexpr std::size_t kMarks = 5000;
  const std::string small = alternating_marks(kMarks), large = alternating_marks(4 * kMarks);
  for (NormalizationForm form : {NormalizationForm::kNfd, NormalizationForm::kNfc}) {
    const double t_n = seconds_of(small, form), t_4n = seconds_of(large, form);
    INFO(form_name(form) << ": " << t_n << " s for " << kMarks << " marks, " << t_4n << " s for " << 4 * kMarks);
    CHECK(t_4n < 12.0 * t_n);
  }
  // The same through the Normalizer of a tokenizer.json (a Sequence of NFD and StripAccents, as
  // BERT-style tokenizers have it): 80,000 marks, once 67 s in utf8proc's NFD, are removed.
  const tokenizer::Json j = {{"type", "Sequence"},
                             {"normalizers", tokenizer::Json::array({{{"type", "NFD"}}, {{"type", "StripAccents"}}})}};
  const tokenizer::JsonNode node(j, "normalizer", "unit-test.json");
  std::string text = alternating_marks(80000);
  tokenizer::Normalizer::from_json(&node).normalize(text);
  CHECK(text == "a");
}

#!/usr/bin/env python3
"""More tokenizer.json layouts as fixtures (DESIGN.md section 9), for a local conformance run.

make_tokenizer_fixtures.py commits one tokenizer per checkpoint family; this script builds
variations around them that a real checkpoint may carry: other Split regexes and behaviours
(o200k-style, DeepSeek-V3's chain of splits, inverted and removed matches), ByteLevel with a prefix
space, Whitespace / Digits pre-tokenizers, normalizer chains (NFKC, Lowercase, Strip, Replace with
a regex), Metaspace without splitting, added tokens with single_word / lstrip / rstrip /
normalized flags. Its output is not committed:

    python3 tools/make_tokenizer_sweep.py --corpus .carry/tinyshakespeare.txt --out /tmp/tok_sweep
    build/examples/moe-conformance/moe-conformance /tmp/tok_sweep/*

Needs python3 with tokenizers.
"""

import argparse
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as tf  # noqa: E402

# The o200k-style split pattern (as published with GPT-4o / GPT-OSS tokenizers).
O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])
# DeepSeek-V3 splits digits and CJK runs first, then applies a GPT-style pattern.
DEEPSEEK_CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
DEEPSEEK_MAIN = (r"[\r\n]|\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕ]+"
                 r"|\s?[!-/:-~！-／：-～‘-‟　-。]+|\s+$|[^\S\r\n]+(?=[^\S\r\n])|\s+")


def texts_for(corpus, extra=()):
    return tf.common_texts(corpus) + tf.chat_texts() + list(extra) + [
        "Don't SHOUT, she said: 'We'LL see!' They've 3 cats & 12 dogs/42 birds.",
        "path/to/file.txt\nhttps://example.com/a?b=c&d=1",
        "x=1;y=22;z=333;w=4444;v=55555",
        "  two leading, three trailing   ",
        "混合English和中文123测试テスト",
    ]


def bytelevel(corpus, pre, normalizer=None, vocab=900, specials=(), ignore_merges=False):
    return tf.train_bytelevel(pre, normalizer, vocab, list(specials), tf.training_text(corpus, 150_000),
                              ignore_merges=ignore_merges)


def case_o200k(corpus):
    from tokenizers import AddedToken, Regex, pre_tokenizers
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(O200K_PATTERN), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok = bytelevel(corpus, pre, vocab=1100, ignore_merges=True)
    tok.add_special_tokens([AddedToken("<|start|>", special=True, normalized=False),
                            AddedToken("<|end|>", special=True, normalized=False),
                            AddedToken("<|return|>", special=True, normalized=False)])
    return tok, texts_for(corpus, ["<|start|>assistant<|end|>", "HelloWorld CamelCaseWord iPhone XMLHttpRequest"])


def case_deepseek_v3(corpus):
    from tokenizers import AddedToken, Regex, pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}{1,3}"), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(DEEPSEEK_CJK), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(DEEPSEEK_MAIN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok = bytelevel(corpus, pre, vocab=1000)
    tok.add_special_tokens([AddedToken("<｜begin▁of▁sentence｜>", special=True, normalized=False),
                            AddedToken("<｜end▁of▁sentence｜>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("<think>", special=False, normalized=True),
                    AddedToken("</think>", special=False, normalized=True)])
    return tok, texts_for(corpus, ["<｜begin▁of▁sentence｜>Hi<think>hmm</think>ok<｜end▁of▁sentence｜>"])


def case_prefix_space(corpus):
    from tokenizers import AddedToken, pre_tokenizers
    tok = bytelevel(corpus, pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), vocab=700,
                    specials=["<|endoftext|>", "<|padding|>"])
    tok.add_tokens([AddedToken("  ", special=False, normalized=True), AddedToken("    ", special=False, normalized=True)])
    return tok, texts_for(corpus, ["<|endoftext|>starts", "x<|padding|><|padding|>y"])


def case_split_behaviours(corpus, behavior, invert):
    from tokenizers import Regex, pre_tokenizers
    pattern = r"\s+" if invert else r"[,.;:!?]"
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior=behavior, invert=invert),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return bytelevel(corpus, pre, vocab=700), texts_for(corpus)


def case_split_string(corpus):
    from tokenizers import pre_tokenizers
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(" ", behavior="merged_with_next"),
                                   pre_tokenizers.Digits(individual_digits=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return bytelevel(corpus, pre, vocab=700), texts_for(corpus)


def case_whitespace_norms(corpus):
    from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers
    norm = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip(left=True, right=True),
                                 normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    pre = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                          use_regex=False)])
    tok = bytelevel(corpus, pre, normalizer=norm, vocab=700, specials=["[SEP]"])
    tok.add_tokens([AddedToken("romeo", special=False, normalized=True, single_word=True),
                    AddedToken("[MASK]", special=True, normalized=False, lstrip=True, rstrip=False)])
    return tok, texts_for(corpus, ["ROMEO: romeo Romeo's romeos [SEP]x", "a [MASK] b  [MASK]c", "\u3000wide\u3000"])


def case_nfd_strip_accents(corpus):
    from tokenizers import normalizers, pre_tokenizers
    norm = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.NFC()])
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return bytelevel(corpus, pre, normalizer=norm, vocab=700), texts_for(corpus)


def case_metaspace_nosplit(corpus):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    trained, merges = tf.train_spm_like(corpus, 600, 100, "always")
    tok = Tokenizer(models.BPE(vocab=tf.spm_vocab(trained, True), merges=merges, unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=tf.SPM, prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement=tf.SPM, prepend_scheme="first", split=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    tok.add_special_tokens([AddedToken("[INST]", special=True, normalized=False),
                            AddedToken("[/INST]", special=True, normalized=False)])
    return tok, texts_for(corpus, ["<s>[INST] hi there [/INST] ok</s>", "[INST]x[/INST]"])


def case_spm_never(corpus):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    trained, merges = tf.train_spm_like(corpus, 600, 100, "never")
    tok = Tokenizer(models.BPE(vocab=tf.spm_vocab(trained, True), merges=merges, unk_token="<unk>",
                               byte_fallback=True, fuse_unk=False))
    tok.normalizer = normalizers.Replace(" ", tf.SPM)
    tok.decoder = decoders.Sequence([decoders.Replace(tf.SPM, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    return tok, texts_for(corpus)


def case_spm_no_fallback(corpus):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    trained, merges = tf.train_spm_like(corpus, 500, 80, "always")
    tok = Tokenizer(models.BPE(vocab=tf.spm_vocab(trained, False), merges=merges, unk_token="<unk>",
                               byte_fallback=False, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(tf.SPM), normalizers.Replace(" ", tf.SPM)])
    tok.decoder = decoders.Sequence([decoders.Replace(tf.SPM, " "), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    return tok, texts_for(corpus)


CASES = {
    "o200k": case_o200k,
    "deepseek_v3": case_deepseek_v3,
    "prefix_space": case_prefix_space,
    "split_removed": lambda c: case_split_behaviours(c, "removed", False),
    "split_prev": lambda c: case_split_behaviours(c, "merged_with_previous", False),
    "split_next": lambda c: case_split_behaviours(c, "merged_with_next", False),
    "split_contiguous": lambda c: case_split_behaviours(c, "contiguous", False),
    "split_inverted": lambda c: case_split_behaviours(c, "isolated", True),
    "split_string_digits": case_split_string,
    "whitespace_norms": case_whitespace_norms,
    "nfd_strip_accents": case_nfd_strip_accents,
    "metaspace_nosplit": case_metaspace_nosplit,
    "spm_never": case_spm_never,
    "spm_no_fallback": case_spm_no_fallback,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        corpus = f.read()
    tf.CASES = {name: (lambda fn: (lambda c: (*fn(c), "pairs")))(fn) for name, fn in CASES.items()}
    failed = []
    for name in CASES:
        print(f"== {name}", flush=True)
        try:
            tf.build(name, corpus, args.out)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print("tokenizer sweep done" + (f"; FAILED: {failed}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

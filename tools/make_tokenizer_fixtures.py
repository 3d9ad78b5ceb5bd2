#!/usr/bin/env python3
"""Build the tokenizer fixtures of DESIGN.md section 9 (tests/fixtures/tokenizers/<case>/).

Each case is a small tokenizer.json trained with the Hugging Face `tokenizers` library on a slice
of tinyshakespeare plus the multilingual paragraph below, laid out like a family of real
checkpoints (GPT-2, Qwen2, Llama-3, DeepSeek-style digits, Llama/Mistral sentencepiece-BPE), and
an expected.json with, for every test text, `ids` = encode(text, add_special_tokens=False).ids and
`decoded` = decode(ids, skip_special_tokens=False).

Needs only python3 + tokenizers (the GPU machine has it):
    python3 tools/make_tokenizer_fixtures.py --corpus .carry/tinyshakespeare.txt
"""

import argparse
import json
import os
import sys
import traceback

SPM = "\u2581"   # the sentencepiece word marker

# Written for these fixtures: a little of several scripts so that some multi-byte characters
# make it into the vocabularies while others stay unseen (and exercise byte fallback / unk).
MULTILINGUAL = (
    "Le café de la gare était fermé, mais la boulangère nous a donné du pain. "
    "Ærøskøbing ligger på en ø i Danmark; Straße und Größe sind deutsche Wörter. "
    "El niño comió piña en la mañana. São Paulo é uma cidade enorme.\n"
    "我们今天学习中文。中文很有意思，我爱学习。\n"
    "日本語を勉強しています。東京はとても大きい都市です。\n"
    "مرحبا بكم في المدينة. الكتاب على الطاولة.\n"
    "नमस्ते, आप कैसे हैं? मैं ठीक हूँ।\n"
    "Emoji: 😀 😂 👍 ❤️ 🎉 🍕\n"
)

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def long_line(corpus):
    words = " ".join(corpus[:20000].split())
    return words[:3000]


def common_texts(corpus):
    return [
        "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.",
        "Hello world! How are you doing today?",
        "I'm sure they'll say it's fine; we've seen what you'd do. DON'T, WE'LL, It'S.",
        "def foo(x):\n    return x * 2  # double it\n",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }\n\tif (x != y) return -1;",
        "12345 3.14",
        "In 1599, 1,000,000 people paid $42.50 (or 0.001%) on 2024-06-30 at 10:45.",
        "中文：我爱自然语言处理。",
        "日本語のテキストです。カタカナとひらがな。",
        "안녕하세요 세계",
        "I love 🍕 and 🎉!",
        "👨\u200d👩\u200d👧\u200d👦 👍🏽 🏳️\u200d🌈 ❤️ 🧑🏿\u200d💻",
        "مرحبا بالعالم، كيف حالك؟",
        "नमस्ते दुनिया, आप कैसे हैं?",
        "café naïve résumé Ærøskøbing Straße",
        "cafe\u0301 nai\u0308ve re\u0301sume\u0301",
        "a    b\t\tc   \n\n\n  d",
        "\tindented\n\t\tdouble\n",
        "line one\r\nline two\r\n",
        "   leading and trailing   ",
        "",
        " ",
        "\n",
        "HELLO hello HeLLo hELLO",
        "ＡＢＣ１２３ ﬁ ½ x² ㍿",
        "Ω≈ç√∫ ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0001\u007f ꙮ",
        "hello\n\n  world  \n",
        long_line(corpus),
    ]


def chat_texts():
    return [
        "<|im_start|>user\nhi<|im_end|>",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n",
        "text<|endoftext|>more text",
        "<|im_start|><|im_end|><|im_start|>",
    ]


# ----------------------------------------------------------------------------------------------

def training_text(corpus, n_chars):
    return corpus[:n_chars] + "\n" + MULTILINGUAL


def chunks(text, size=4096):
    """Line-aligned chunks that keep the newlines (so merges of whitespace runs are learned)."""
    buf, n = [], 0
    for line in text.splitlines(keepends=True):
        buf.append(line)
        n += len(line)
        if n >= size:
            yield "".join(buf)
            buf, n = [], 0
    if buf:
        yield "".join(buf)


def train_bytelevel(pre_tokenizer, normalizer, vocab_size, specials, text, ignore_merges=False):
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges) if ignore_merges else models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(chunks(text), trainer)
    return tok


def make_bytelevel_gpt2(corpus):
    from tokenizers import pre_tokenizers
    tok = train_bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), None, 800,
                          ["<|endoftext|>"], training_text(corpus, 200_000))
    texts = common_texts(corpus) + ["text<|endoftext|>more", "<|endoftext|>", " <|endoftext|> "]
    return tok, texts, "strings"


def make_bytelevel_qwen(corpus):
    from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok = train_bytelevel(pre, normalizers.NFC(), 1000, [], training_text(corpus, 200_000))
    tok.add_special_tokens([
        AddedToken("<|endoftext|>", special=True, normalized=False),
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False),
        AddedToken("<|mask|>", special=True, normalized=False, lstrip=True, rstrip=True),
    ])
    tok.add_tokens([
        AddedToken("<tool_call>", special=False, normalized=False),
        AddedToken("Hello World", special=False, normalized=True),
    ])
    texts = common_texts(corpus) + chat_texts() + [
        "fill  <|mask|>  here and<|mask|>there",
        "<tool_call>{\"name\": \"f\"}</tool_call>",
        "Hello World and Hello  World and hello world",
    ]
    return tok, texts, "pairs"


def make_bytelevel_llama3(corpus):
    from tokenizers import AddedToken, Regex, pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok = train_bytelevel(pre, None, 1200, [], training_text(corpus, 300_000), ignore_merges=True)
    tok.add_special_tokens([
        AddedToken("<|begin_of_text|>", special=True, normalized=False),
        AddedToken("<|end_of_text|>", special=True, normalized=False),
        AddedToken("<|eot_id|>", special=True, normalized=False),
    ])
    texts = common_texts(corpus) + [
        "<|begin_of_text|>Hello<|eot_id|>",
        "1234567 12 123 1234",
        "the the the thee thou thy",
    ]
    return tok, texts, "pairs"


def make_bytelevel_digits(corpus):
    from tokenizers import AddedToken, normalizers, pre_tokenizers
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    norm = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok = train_bytelevel(pre, norm, 600, ["<|endoftext|>"], training_text(corpus, 150_000))
    tok.add_tokens([AddedToken("shakespeare", special=False, normalized=True)])
    texts = common_texts(corpus) + [
        "Shakespeare SHAKESPEARE shakespeare's",
        "2024 x 99 = 200376",
        "<|endoftext|>",
    ]
    return tok, texts, "pairs"


def train_spm_like(corpus, vocab_size, limit_alphabet, prepend_scheme):
    """Train a BPE on Metaspace-split words; returns the trained tokenizer's vocab and merges."""
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPM, prepend_scheme=prepend_scheme, split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=limit_alphabet,
                                  show_progress=False)
    tok.train_from_iterator(chunks(training_text(corpus, 200_000)), trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in j["model"]["merges"]]
    return vocab, merges


def spm_vocab(trained_vocab, with_bytes):
    """Llama layout: <unk>, <s>, </s>, then <0x00>..<0xFF> (when byte fallback), then the pieces."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    if with_bytes:
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab


def make_sentencepiece_bpe(corpus):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    trained, merges = train_spm_like(corpus, 700, 120, "always")
    tok = Tokenizer(models.BPE(vocab=spm_vocab(trained, True), merges=merges, unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPM), normalizers.Replace(" ", SPM)])
    tok.decoder = decoders.Sequence([decoders.Replace(SPM, " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    texts = common_texts(corpus) + [
        "<s>hello</s>",
        "<s> [INST] What is 2+2? [/INST]",
        "a<unk>b",
        "▁already▁marked",
    ]
    return tok, texts, "strings"


def make_metaspace_bpe(corpus):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    trained, merges = train_spm_like(corpus, 500, 90, "first")
    tok = Tokenizer(models.BPE(vocab=spm_vocab(trained, False), merges=merges, unk_token="<unk>",
                               byte_fallback=False, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPM, prepend_scheme="first", split=True)
    tok.decoder = decoders.Metaspace(replacement=SPM, prepend_scheme="first", split=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    texts = common_texts(corpus) + [
        "<s>hello</s> world",
        "unseen: 中文 日本語 ☃☃☃ done",
    ]
    return tok, texts, "pairs"


CASES = {
    "bytelevel_gpt2": make_bytelevel_gpt2,
    "bytelevel_qwen": make_bytelevel_qwen,
    "bytelevel_llama3": make_bytelevel_llama3,
    "bytelevel_digits": make_bytelevel_digits,
    "sentencepiece_bpe": make_sentencepiece_bpe,
    "metaspace_bpe": make_metaspace_bpe,
}


# ----------------------------------------------------------------------------------------------

def merges_to(j, form):
    """Rewrite model.merges of a tokenizer.json dict as 'a b' strings or [a, b] pairs."""
    out = []
    for m in j["model"]["merges"]:
        a, b = (m if isinstance(m, list) else m.split(" "))
        if form == "strings":
            if " " in a or " " in b:
                raise ValueError(f"merge {a!r} {b!r} has a space; cannot write it as one string")
            out.append(f"{a} {b}")
        else:
            out.append([a, b])
    j["model"]["merges"] = out
    return j


def expected_for(tok, texts):
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return cases


def build(name, corpus, out_root):
    from tokenizers import Tokenizer
    tok, texts, merges_form = CASES[name](corpus)
    j = json.loads(tok.to_str())
    written = "strings" if j["model"]["merges"] and isinstance(j["model"]["merges"][0], str) else "pairs"
    print(f"  tokenizers wrote merges as {written}; fixture uses {merges_form}")
    j = merges_to(j, merges_form)
    text = json.dumps(j, ensure_ascii=False, indent=2)
    reloaded = Tokenizer.from_str(text)
    expected = expected_for(tok, texts)
    again = expected_for(reloaded, texts)
    if expected != again:
        bad = [a["text"] for a, b in zip(expected, again) if a != b]
        raise RuntimeError(f"rewritten tokenizer.json encodes differently for {bad!r}")
    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": expected}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    vocab = reloaded.get_vocab_size(with_added_tokens=True)
    sizes = {fn: os.path.getsize(os.path.join(folder, fn)) for fn in os.listdir(folder)}
    print(f"  vocab {vocab}, {len(expected)} cases, files {sizes}")
    for c in expected[:40]:
        shown = c["text"] if len(c["text"]) < 60 else c["text"][:57] + "..."
        print(f"    {shown!r} -> {len(c['ids'])} ids {c['ids'][:16]}{'...' if len(c['ids']) > 16 else ''}"
              f"{'' if c['decoded'] == c['text'] else '  decoded=' + repr(c['decoded'][:60])}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=os.path.join(here, "..", ".carry", "tinyshakespeare.txt"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tokenizers"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    import tokenizers
    print(f"tokenizers {tokenizers.__version__}")
    with open(args.corpus, encoding="utf-8") as f:
        corpus = f.read()
    failed = []
    for name in (args.only or list(CASES)):
        print(f"== {name}", flush=True)
        try:
            build(name, corpus, args.out)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            print(f"  FAILED: {name}")
    print("== tokenizer fixtures done" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

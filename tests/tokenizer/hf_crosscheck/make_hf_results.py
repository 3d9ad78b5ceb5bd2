"""Cross-check data for the tokenizer tests: runs the Hugging Face tokenizers library on the
hand-made tokenizer.json documents of docs.json (written from tests/tokenizer/tokenizer_test_util.hpp
plus variants: added-token flags, normalized tokens, Metaspace first, Strip start/stop, BPE options,
Split behaviours, normalizer chains) and writes hf_results.json: encode (with and without special
tokens) and decode of a set of texts, and decode of random id sequences. Cases where the library
panics are recorded as "hf_panics" (our tokenizer must then simply not crash).

    OUT=. python3 make_hf_results.py      # needs python3 + tokenizers (used: 0.23.2)
"""
import json, os, random, sys, traceback
import tokenizers
from tokenizers import Tokenizer
out = os.environ.get("OUT", ".")
docs = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "docs.json"), encoding="utf-8"))
S = "\u2581"
texts = ["", " ", "  ", "a", "the the", "a     b", "a <mask> b", "a <m> b", "<mask><m>", "ab cab ab.", "ab", "xab abx ab_", " ab ", "x <l> y", "x <r> y",
         "x  <l>  <r>  y", "<l><r>", " <mask>", "<mask> ", "HeLLo WORLD World hello", " x x  x", "x", "hi", "hi é", "hi 中", "hi 中文 done", "<s>hi</s>", " <s> hi", "<s>",
         "a a", "<s>a a", "<s> a", "a  a", " a", "aa aaa", "abc bcab aaaaa cab abd abdd abddd", "ca cab", "ab aba abab b", "a1b22c333", "éxx bb, ok!!", "  xyz",
         "\u00e9t\u00e9 \u00c9T\u00c9", "\r\n\r\n", "\t\ta", "it's 2024! don't", "\u4e2d\u6587\uff0c\u6587\u5b57\u3002", "\U0001F600 \U0001F44D\U0001F3FD"]
res = {"version": tokenizers.__version__, "docs": {}}
for name, doc in docs.items():
    entry = {"cases": [], "decodes": []}
    try:
        tok = Tokenizer.from_str(json.dumps(doc))
    except Exception as e:
        entry["load_error"] = repr(e)
        res["docs"][name] = entry
        continue
    for t in texts:
        try:
            ids = tok.encode(t, add_special_tokens=False).ids
            entry["cases"].append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                   "ids_special": tok.encode(t, add_special_tokens=True).ids})
        except BaseException as e:
            entry["cases"].append({"text": t, "hf_panics": True})
    vocab_ids = sorted(set(tok.get_vocab(with_added_tokens=True).values()))
    rng = random.Random(5)
    for r in range(60):
        ids = [rng.choice(vocab_ids) for _ in range(rng.randint(1, 12))]
        try:
            entry["decodes"].append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False), "text_skip": tok.decode(ids, skip_special_tokens=True)})
        except BaseException as e:
            entry["decodes"].append({"ids": ids, "hf_panics": True})
    res["docs"][name] = entry
json.dump(res, open(os.path.join(out, "hf_results.json"), "w", encoding="utf-8"), ensure_ascii=False, separators=(",", ":"))
print("done", tokenizers.__version__)

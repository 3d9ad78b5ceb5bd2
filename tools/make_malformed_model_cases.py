#!/usr/bin/env python3
"""Write the config- and model-level cases of the malformed-checkpoint corpus
(tests/fixtures/malformed/model_*/, gen_*/, hostile_header_*/): a tiny valid Mixtral or
DeepSeek-V3 checkpoint (zero weights) with one thing broken, plus expected.json {"loader": "model"
| "generator" | "tensors", "code", "contains"} for tests/io/test_malformed_corpus.cpp. The
"generator" cases add a tokenizer.json (and tokenizer_config.json, generation_config.json) and
load the folder with Generator::from_folder. Needs only the Python standard library.

    python3 tools/make_malformed_model_cases.py [--out tests/fixtures/malformed] [--base-only DIR]
"""

import argparse
import copy
import json
import os
import shutil
import struct

MIXTRAL = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "vocab_size": 8, "hidden_size": 4, "intermediate_size": 6, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 2, "num_local_experts": 2,
    "num_experts_per_tok": 1, "max_position_embeddings": 32, "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "sliding_window": None,
    "hidden_act": "silu", "tie_word_embeddings": False, "eos_token_id": 2, "bos_token_id": 1,
}

DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": 8, "hidden_size": 4, "intermediate_size": 6, "moe_intermediate_size": 2,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "n_routed_experts": 4,
    "n_shared_experts": 1, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
    "first_k_dense_replace": 0, "q_lora_rank": None, "kv_lora_rank": 4, "qk_nope_head_dim": 2,
    "qk_rope_head_dim": 2, "v_head_dim": 2, "head_dim": 2, "max_position_embeddings": 32,
    "rms_norm_eps": 1e-6, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "hidden_act": "silu", "norm_topk_prob": True, "routed_scaling_factor": 1.0, "topk_method": "noaux_tc",
    "tie_word_embeddings": False, "eos_token_id": 1,
}


def mixtral_tensors(c):
    d, v, f, hd = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["head_dim"]
    h, kv, e = c["num_attention_heads"], c["num_key_value_heads"], c["num_local_experts"]
    p = "model.layers.0."
    return {
        "model.embed_tokens.weight": [v, d], "model.norm.weight": [d], "lm_head.weight": [v, d],
        p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
        p + "self_attn.q_proj.weight": [h * hd, d], p + "self_attn.k_proj.weight": [kv * hd, d],
        p + "self_attn.v_proj.weight": [kv * hd, d], p + "self_attn.o_proj.weight": [d, h * hd],
        p + "mlp.gate.weight": [e, d], p + "mlp.experts.gate_up_proj": [e, 2 * f, d],
        p + "mlp.experts.down_proj": [e, d, f],
    }


def deepseek_v3_tensors(c):
    d, v, f, fe = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["moe_intermediate_size"]
    h, e, r = c["num_attention_heads"], c["n_routed_experts"], c["kv_lora_rank"]
    nope, rope, vh = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    p = "model.layers.0."
    t = {
        "model.embed_tokens.weight": [v, d], "model.norm.weight": [d], "lm_head.weight": [v, d],
        p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
        p + "self_attn.q_proj.weight": [h * (nope + rope), d],
        p + "self_attn.kv_a_proj_with_mqa.weight": [r + rope, d],
        p + "self_attn.kv_a_layernorm.weight": [r],
        p + "self_attn.kv_b_proj.weight": [h * (nope + vh), r],
        p + "self_attn.o_proj.weight": [d, h * vh],
        p + "mlp.gate.weight": [e, d], p + "mlp.gate.e_score_correction_bias": [e],
        p + "mlp.experts.gate_up_proj": [e, 2 * fe, d], p + "mlp.experts.down_proj": [e, d, fe],
        p + "mlp.shared_experts.gate_proj.weight": [fe, d], p + "mlp.shared_experts.up_proj.weight": [fe, d],
        p + "mlp.shared_experts.down_proj.weight": [d, fe],
    }
    del f
    return t


def write_safetensors(path, tensors):
    """F32 zeros for every tensor, laid out in name order."""
    header, offset = {}, 0
    for name in sorted(tensors):
        n = 1
        for s in tensors[name]:
            n *= s
        header[name] = {"dtype": "F32", "shape": tensors[name], "data_offsets": [offset, offset + 4 * n]}
        offset += 4 * n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.write(b"\0" * offset)


class Raw(str):
    """JSON text written as is (deep nesting, numbers out of range): json.dumps cannot make it."""


def nested(depth, inner="0"):
    """`depth` nested one-element arrays around `inner`: [[[...0...]]]."""
    return "[" * depth + inner + "]" * depth


def has_raw(value):
    if isinstance(value, Raw):
        return True
    if isinstance(value, dict):
        return any(has_raw(v) for v in value.values())
    return isinstance(value, list) and any(has_raw(v) for v in value)


def dumps(value):
    """JSON text of a config in which Raw values stand for themselves (indented when it has none)."""
    if not has_raw(value):
        return json.dumps(value, indent=2, sort_keys=True)
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(json.dumps(k) + ": " + dumps(v) for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def write_case(root, name, config, tensors, code, contains, note, loader="model", extra_files=None):
    d = os.path.join(root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(dumps(config) + "\n")
    write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    for file_name, content in (extra_files or {}).items():
        with open(os.path.join(d, file_name), "wb") as f:
            f.write(content if isinstance(content, bytes) else dumps(content).encode() + b"\n")
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"loader": loader, "code": code, "contains": contains, "note": note}, f, indent=2)
        f.write("\n")


# A minimal valid BPE tokenizer for the 8-token vocabulary of the base checkpoints.
def tokenizer_json(**edits):
    t = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": None, "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": {c: i for i, c in enumerate("abcdefgh")}, "merges": []},
    }
    for k, v in edits.items():
        t[k] = v
    return t


def generator_cases():
    """Cases for Generator::from_folder (config, weights, tokenizer.json, tokenizer_config.json,
    generation_config.json): (name, extra files, code, contains, note)."""
    tok = tokenizer_json()
    deep = Raw(nested(100000))
    return [
        ("gen_generation_config_deep", {"tokenizer.json": tok, "generation_config.json": {"temperature": deep}},
         "kFormat", ["generation_config.json", "nests deeper than 64"], "200 KB of brackets in a value"),
        ("gen_generation_config_number_out_of_range", {"tokenizer.json": tok,
                                                       "generation_config.json": {"temperature": Raw("1e999")}},
         "kFormat", ["generation_config.json", "invalid JSON"], "a number beyond double's range"),
        ("gen_generation_config_nested_value", {"tokenizer.json": tok,
                                                "generation_config.json": {"top_p": Raw(nested(60))}},
         "kConfig", ["top_p", "array of 1 elements"], "a deep but legal value is described, not dumped"),
        ("gen_generation_config_eos_nested", {"tokenizer.json": tok,
                                              "generation_config.json": {"eos_token_id": [Raw(nested(60))]}},
         "kConfig", ["eos_token_id", "array of 1 elements"], "deep eos id list entry"),
        ("gen_tokenizer_deep", {"tokenizer.json": tokenizer_json(normalizer=deep)},
         "kTokenizer", ["tokenizer.json", "nests deeper than 64"], "200 KB of brackets in tokenizer.json"),
        ("gen_tokenizer_number_out_of_range", {"tokenizer.json": tokenizer_json(dropout=Raw("-1e999"))},
         "kTokenizer", ["tokenizer.json", "invalid JSON"], "a number beyond double's range"),
        ("gen_tokenizer_vocab_id_nested", {"tokenizer.json": tokenizer_json(model={
            "type": "BPE", "vocab": {"a": Raw(nested(60))}, "merges": []})},
         "kTokenizer", ["model.vocab", "array of 1 elements"], "vocab id that is a deep array"),
        ("gen_tokenizer_backslash_c", {"tokenizer.json": tokenizer_json(pre_tokenizer={
            "type": "Split", "pattern": {"Regex": "\\C"}, "behavior": "Isolated", "invert": False})},
         "kTokenizer", ["tokenizer.json", "\\C"], "\\C matches inside a code point: refused"),
        ("gen_tokenizer_config_deep", {"tokenizer.json": tok, "tokenizer_config.json": {"bos_token": deep}},
         "kTokenizer", ["tokenizer_config.json", "nests deeper than 64"], "deep tokenizer_config.json"),
        ("gen_tokenizer_config_number_out_of_range", {"tokenizer.json": tok,
                                                      "tokenizer_config.json": {"model_max_length": Raw("1e400")}},
         "kTokenizer", ["tokenizer_config.json", "invalid JSON"], "HF writes 1e30 here; 1e400 is out of range"),
    ]


def cases():
    """(name, base config, config edit, tensor edit, code, contains, note)."""
    def drop(key):
        return lambda c: c.pop(key)

    def setk(key, value):
        return lambda c: c.__setitem__(key, value)

    out = [
        ("model_unknown_architecture", MIXTRAL, setk("architectures", ["LlamaForCausalLM"]), None,
         "kUnsupported", ["LlamaForCausalLM", "config.json"], "architecture we do not run"),
        ("model_missing_architectures", MIXTRAL, drop("architectures"), None,
         "kConfig", ["architectures", "config.json"], "no architectures key"),
        ("model_missing_hidden_size", MIXTRAL, drop("hidden_size"), None,
         "kConfig", ["hidden_size", "config.json"], "required size missing"),
        ("model_negative_vocab_size", MIXTRAL, setk("vocab_size", -8), None,
         "kConfig", ["vocab_size", "-8"], "sizes must be positive"),
        ("model_top_k_exceeds_experts", MIXTRAL, setk("num_experts_per_tok", 3), None,
         "kConfig", ["num_experts_per_tok", "3"], "top_k > n_experts"),
        ("model_kv_heads_not_dividing", MIXTRAL, setk("num_key_value_heads", 3), None,
         "kConfig", ["num_key_value_heads", "3"], "GQA group size not an integer"),
        ("model_unsupported_rope_type", MIXTRAL,
         setk("rope_parameters", {"rope_type": "longrope", "rope_theta": 10000.0, "factor": 2.0}), None,
         "kUnsupported", ["rope_type", "longrope"], "rope type we do not implement"),
        ("model_unsupported_activation", MIXTRAL, setk("hidden_act", "gelu"), None,
         "kUnsupported", ["hidden_act", "gelu"], "only SiLU-gated experts"),
        ("model_string_hidden_size", MIXTRAL, setk("hidden_size", "4"), None,
         "kConfig", ["hidden_size", "integer"], "wrong JSON type"),
        ("model_n_group_not_dividing", DEEPSEEK_V3, setk("n_group", 3), None,
         "kConfig", ["n_group", "3"], "n_group must divide n_routed_experts"),
        ("model_topk_group_exceeds_n_group", DEEPSEEK_V3, setk("topk_group", 3), None,
         "kConfig", ["topk_group", "3"], "topk_group <= n_group"),
        ("model_mla_missing_kv_lora_rank", DEEPSEEK_V3, drop("kv_lora_rank"), None,
         "kConfig", ["kv_lora_rank"], "MLA needs kv_lora_rank"),
        ("model_expert_shape_mismatch", MIXTRAL, setk("intermediate_size", 5), None,
         "kShapeMismatch", ["experts.gate_up_proj"], "config intermediate_size disagrees with the bank"),
        ("model_missing_router", MIXTRAL, None,
         lambda t: t.pop("model.layers.0.mlp.gate.weight"),
         "kMissingTensor", ["mlp.gate.weight"], "router weight absent"),
        ("model_missing_correction_bias", DEEPSEEK_V3, None,
         lambda t: t.pop("model.layers.0.mlp.gate.e_score_correction_bias"),
         "kMissingTensor", ["e_score_correction_bias"], "noaux_tc router needs its bias"),
        ("model_q_proj_shape", MIXTRAL, None,
         lambda t: t.__setitem__("model.layers.0.self_attn.q_proj.weight", [4, 3]),
         "kShapeMismatch", ["q_proj.weight"], "attention projection of the wrong shape"),
        # ---- hostile configs: deep nesting, numbers out of range, sizes past the limits ----
        ("model_deep_nesting_unknown_key", MIXTRAL, setk("x_extra", Raw(nested(100000))), None,
         "kFormat", ["config.json", "nests deeper than 64"], "200 KB of brackets in a key nobody reads"),
        ("model_deep_nesting_rope_scaling", MIXTRAL, setk("rope_scaling", Raw(nested(100000))), None,
         "kFormat", ["config.json", "nests deeper than 64"], "200 KB of brackets in a key that is read"),
        ("model_deep_object_nesting", MIXTRAL, setk("x_extra", Raw('{"a": ' * 5000 + "0" + "}" * 5000)), None,
         "kFormat", ["config.json", "nests deeper than 64", "x_extra.a.a"], "deep objects name their key path"),
        ("model_nested_rope_scaling", MIXTRAL, setk("rope_scaling", Raw(nested(60))), None,
         "kConfig", ["rope_scaling", "must be an object", "array of 1 elements"], "deep but legal: described"),
        ("model_nested_architectures", MIXTRAL, setk("architectures", Raw(nested(60))), None,
         "kConfig", ["architectures", "array of 1 elements"], "architectures that is a deep list"),
        ("model_nested_hidden_size", MIXTRAL, setk("hidden_size", Raw(nested(60))), None,
         "kConfig", ["hidden_size", "must be an integer", "array of 1 elements"], "integer that is a deep list"),
        ("model_nested_tie_word_embeddings", MIXTRAL, setk("tie_word_embeddings", Raw('{"a": ' + nested(50) + "}")),
         None, "kConfig", ["tie_word_embeddings", "object with 1 keys"], "boolean that is an object"),
        ("model_nested_eos_token_id", MIXTRAL, setk("eos_token_id", Raw(nested(60))), None,
         "kConfig", ["eos_token_id", "array of 1 elements"], "token id list holding a deep list"),
        ("model_nested_layer_types", MIXTRAL, setk("layer_types", Raw("[" + nested(60) + "]")), None,
         "kConfig", ["layer_types[0]", "must be a string"], "layer type that is a deep list"),
        ("model_long_string_value", MIXTRAL, setk("hidden_act", "g" * 100000), None,
         "kUnsupported", ["hidden_act", "is not supported"], "100 KB string value"),
        ("model_number_out_of_range", MIXTRAL, setk("rms_norm_eps", Raw("1e999")), None,
         "kFormat", ["config.json", "invalid JSON"], "a number beyond double's range"),
        ("model_huge_num_layers", MIXTRAL, setk("num_hidden_layers", 1 << 24), None,
         "kUnsupported", ["num_hidden_layers", "16777216", "1024"], "per-layer tables sized before tensors"),
        ("model_num_layers_without_tensors", MIXTRAL, setk("num_hidden_layers", 1000), None,
         "kMissingTensor", ["model.layers.1."], "1000 layers claimed, one present"),
        ("model_too_many_experts", MIXTRAL, setk("num_local_experts", 9000), None,
         "kUnsupported", ["9000", "8192"], "expert count past the limit"),
        ("model_top_k_past_limit", MIXTRAL, lambda c: c.update(num_local_experts=1000, num_experts_per_tok=600), None,
         "kUnsupported", ["num_experts_per_tok", "600", "512"], "top_k past the limit"),
        ("model_huge_vocab_size", MIXTRAL, setk("vocab_size", 1 << 30), None,
         "kConfig", ["vocab_size", "1073741824", "implausibly large"], "size past kMaxDimension"),
        ("model_n_group_past_limit", DEEPSEEK_V3, lambda c: c.update(n_routed_experts=1024, n_group=512), None,
         "kUnsupported", ["n_group", "512"], "group scores live on the stack: 256 at most"),
        ("model_integer_too_large", MIXTRAL, setk("num_hidden_layers", Raw("123456789012345678901234567890")), None,
         "kConfig", ["num_hidden_layers", "must be an integer"], "integer beyond 64 bits (read as a double)"),
    ]
    return out


def safetensors_cases():
    """Hostile safetensors headers for the "tensors" loader: (name, header bytes, code, contains, note)."""
    deep = b'{"t": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return [
        ("hostile_header_deep_nesting", b'{"a": {"dtype": "F32", "shape": [[[[1]]]], "data_offsets": [0, 4]}}',
         "kFormat", ["nests deeper than 3"], "a header is 3 levels deep; a 4th is refused at once"),
        ("hostile_header_deep_200kb", deep, "kFormat", ["nests deeper than 3"],
         "200 KB of brackets: refused at the 4th level (tests/io/test_hostile_input.cpp runs 100 MB)"),
    ]


def write_header_case(root, name, header, code, contains, note):
    d = os.path.join(root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"loader": "tensors", "code": code, "contains": contains, "note": note}, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "malformed"))
    ap.add_argument("--base-only", help="write only the two valid base checkpoints to this folder")
    args = ap.parse_args()
    if args.base_only:
        for name, cfg, fn in (("mixtral", MIXTRAL, mixtral_tensors), ("deepseek_v3", DEEPSEEK_V3, deepseek_v3_tensors)):
            d = os.path.join(args.base_only, name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2, sort_keys=True)
            write_safetensors(os.path.join(d, "model.safetensors"), fn(cfg))
        return
    for name, base, edit_config, edit_tensors, code, contains, note in cases():
        config = copy.deepcopy(base)
        tensors = mixtral_tensors(base) if base is MIXTRAL else deepseek_v3_tensors(base)
        if edit_config:
            edit_config(config)
        if edit_tensors:
            edit_tensors(tensors)
        write_case(args.out, name, config, tensors, code, contains, note)
        print(f"{name}: {code} {contains}")
    for name, files, code, contains, note in generator_cases():
        write_case(args.out, name, copy.deepcopy(MIXTRAL), mixtral_tensors(MIXTRAL), code, contains, note,
                   loader="generator", extra_files=files)
        print(f"{name}: {code} {contains}")
    for name, header, code, contains, note in safetensors_cases():
        write_header_case(args.out, name, header, code, contains, note)
        print(f"{name}: {code} {contains}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the config- and model-level cases of the malformed-checkpoint corpus
(tests/fixtures/malformed/model_*/): a tiny valid Mixtral or DeepSeek-V3 checkpoint (zero weights)
with one thing broken, plus expected.json {"loader": "model", "code", "contains"} for
tests/io/test_malformed_corpus.cpp. Needs only the Python standard library.

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


def write_case(root, name, config, tensors, code, contains, note):
    d = os.path.join(root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"loader": "model", "code": code, "contains": contains, "note": note}, f, indent=2)
        f.write("\n")


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
    ]
    return out


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


if __name__ == "__main__":
    main()

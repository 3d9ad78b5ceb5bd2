#!/usr/bin/env python3
"""Random configurations of the eight families as reference fixtures (DESIGN.md section 9).

The committed fixtures (make_fixtures.py) pin one hand-picked configuration per covered feature;
this script draws many more points of each family's configuration space (head layouts, rope
types, router options, dense-layer placement, sliding windows, biases, save dtypes, legacy rope
keys) so that `moe-conformance` can be run on configurations nobody picked by hand. Its output is
for a local run, not for git:

    python3 tools/make_sweep_fixtures.py --out /tmp/sweep --per-family 6 --seed 1 --jobs 12
    build/examples/moe-conformance/moe-conformance /tmp/sweep/*

Needs python3 with torch, transformers 5.x and safetensors (the GPU machine; it runs on its CPU).
"""

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402


def pick(r, *options):
    return r.choice(options)


def draw_rope(r, allow=("default", "linear", "yarn", "llama3", "dynamic")):
    kind = r.choice(allow)
    theta = pick(r, 1e4, 5e4, 1e6)
    if kind == "default":
        return mf.rope(theta=theta)
    if kind == "linear":
        return mf.rope("linear", theta, factor=pick(r, 2.0, 4.0))
    if kind == "dynamic":
        return mf.rope("dynamic", theta, factor=pick(r, 2.0, 4.0))
    if kind == "llama3":
        return mf.rope("llama3", theta, factor=pick(r, 4.0, 8.0), low_freq_factor=1.0,
                       high_freq_factor=pick(r, 2.0, 4.0), original_max_position_embeddings=pick(r, 16, 32))
    extra = dict(factor=pick(r, 2.0, 4.0), original_max_position_embeddings=pick(r, 32, 64),
                 beta_fast=32.0, beta_slow=1.0)
    if r.random() < 0.5:
        extra["mscale"] = pick(r, 0.707, 1.0)
        extra["mscale_all_dim"] = pick(r, 0.707, 1.0)
    return mf.rope("yarn", theta, **extra)


def draw_eos(r):
    return pick(r, 2, [1, 2], [2, 5, 7])


def common(r):
    return dict(vocab_size=pick(r, 256, 320, 384), hidden_size=64, rms_norm_eps=pick(r, 1e-5, 1e-6),
                tie_word_embeddings=r.random() < 0.2, bos_token_id=pick(r, None, 1), eos_token_id=draw_eos(r))


def head_layout(r, explicit_head_dim=True):
    heads = pick(r, 2, 4, 8)
    kv = pick(r, *[k for k in (1, 2, 4, 8) if heads % k == 0])
    d = dict(num_attention_heads=heads, num_key_value_heads=kv)
    if explicit_head_dim:
        d["head_dim"] = pick(r, 8, 16, 24, 32) if r.random() < 0.6 else None
    return d


def experts(r, n_key):
    n = pick(r, 4, 6, 8, 16)
    return {n_key: n, "num_experts_per_tok": r.randint(1, min(4, n))}


def mixtral(r):
    kw = common(r)
    kw.update(head_layout(r))
    if kw["head_dim"] is None:
        kw.pop("head_dim")
    kw.update(experts(r, "num_local_experts"))
    kw.update(intermediate_size=pick(r, 48, 80, 96), num_hidden_layers=r.randint(1, 3),
              sliding_window=pick(r, None, None, 5, 11), rope_parameters=draw_rope(r))
    return "MixtralForCausalLM", "MixtralConfig", kw


def qwen2_moe(r):
    kw = common(r)
    kw.update(head_layout(r, explicit_head_dim=False))
    kw.update(experts(r, "num_experts"))
    n_layers = r.randint(2, 4)
    kw.update(intermediate_size=pick(r, 64, 96), moe_intermediate_size=pick(r, 24, 32),
              shared_expert_intermediate_size=pick(r, 40, 80), num_hidden_layers=n_layers,
              norm_topk_prob=r.random() < 0.5, decoder_sparse_step=pick(r, 1, 1, 2),
              mlp_only_layers=r.sample(range(n_layers), r.randint(0, 1)), qkv_bias=r.random() < 0.8,
              rope_parameters=draw_rope(r))
    if r.random() < 0.35:
        kw.update(use_sliding_window=True, sliding_window=pick(r, 5, 9), max_window_layers=r.randint(1, n_layers))
    else:
        kw.update(use_sliding_window=False)
    return "Qwen2MoeForCausalLM", "Qwen2MoeConfig", kw


def qwen3_moe(r):
    kw = common(r)
    kw.update(head_layout(r))
    if kw["head_dim"] is None:
        kw.pop("head_dim")
    kw.update(experts(r, "num_experts"))
    n_layers = r.randint(2, 3)
    kw.update(intermediate_size=pick(r, 64, 112), moe_intermediate_size=pick(r, 16, 32), num_hidden_layers=n_layers,
              norm_topk_prob=r.random() < 0.6, decoder_sparse_step=pick(r, 1, 1, 2),
              mlp_only_layers=r.sample(range(n_layers), r.randint(0, 1)), attention_bias=r.random() < 0.3,
              rope_parameters=draw_rope(r))
    if r.random() < 0.3:
        kw.update(use_sliding_window=True, sliding_window=pick(r, 5, 9))
    return "Qwen3MoeForCausalLM", "Qwen3MoeConfig", kw


def olmoe(r):
    kw = common(r)
    kw.update(head_layout(r, explicit_head_dim=False))
    kw.update(experts(r, "num_experts"))
    kw.update(intermediate_size=pick(r, 32, 48), num_hidden_layers=r.randint(1, 3),
              norm_topk_prob=r.random() < 0.5, clip_qkv=pick(r, None, 0.5, 1.5),
              attention_bias=r.random() < 0.3, rope_parameters=draw_rope(r))
    return "OlmoeForCausalLM", "OlmoeConfig", kw


def mla(r):
    return dict(kv_lora_rank=pick(r, 16, 32), q_lora_rank=pick(r, None, 24, 48), qk_rope_head_dim=pick(r, 4, 8),
                v_head_dim=pick(r, 8, 16, 24), qk_nope_head_dim=pick(r, 8, 16), num_attention_heads=pick(r, 2, 4),
                attention_bias=r.random() < 0.25)


def grouped(r, n_experts):
    groups = [g for g in (1, 2, 4) if n_experts % g == 0]
    n_group = pick(r, *groups)
    topk_group = r.randint(1, n_group)
    # top-k must fit in the experts of the kept groups
    return n_group, topk_group, r.randint(1, min(4, topk_group * n_experts // n_group))


def deepseek_v2(r):
    kw = common(r)
    kw.update(mla(r))
    kw["num_key_value_heads"] = kw["num_attention_heads"]
    n = pick(r, 8, 16)
    method = pick(r, "greedy", "group_limited_greedy")
    n_group, topk_group, k = grouped(r, n) if method != "greedy" else (None, None, r.randint(1, 4))
    n_layers = r.randint(2, 3)
    kw.update(n_routed_experts=n, num_experts_per_tok=k, topk_method=method, n_group=n_group, topk_group=topk_group,
              n_shared_experts=pick(r, 1, 2), routed_scaling_factor=pick(r, 1.0, 1.5, 16.0 / 10),
              first_k_dense_replace=r.randint(0, n_layers - 1), norm_topk_prob=r.random() < 0.4,
              intermediate_size=pick(r, 96, 128), moe_intermediate_size=pick(r, 16, 24), num_hidden_layers=n_layers,
              rope_parameters=draw_rope(r, ("default", "yarn", "linear")), mlp_bias=r.random() < 0.2)
    return "DeepseekV2ForCausalLM", "DeepseekV2Config", kw


def deepseek_v3(r):
    kw = common(r)
    kw.update(mla(r))
    kw["num_key_value_heads"] = kw["num_attention_heads"]
    n = pick(r, 8, 16)
    n_group, topk_group, k = grouped(r, n)
    n_layers = r.randint(2, 3)
    kw.update(n_routed_experts=n, num_experts_per_tok=k, n_group=n_group, topk_group=topk_group,
              n_shared_experts=pick(r, 1, 2), routed_scaling_factor=pick(r, 1.0, 2.5),
              first_k_dense_replace=r.randint(0, n_layers - 1), norm_topk_prob=r.random() < 0.7,
              rope_interleave=r.random() < 0.6, intermediate_size=pick(r, 96, 128),
              moe_intermediate_size=pick(r, 16, 24), num_hidden_layers=n_layers,
              rope_parameters=draw_rope(r, ("default", "yarn", "yarn", "linear")))
    return "DeepseekV3ForCausalLM", "DeepseekV3Config", kw


def gpt_oss(r):
    kw = common(r)
    kw.update(head_layout(r))
    if kw["head_dim"] is None:
        kw["head_dim"] = 16
    kw.update(experts(r, "num_local_experts"))
    n_layers = r.randint(1, 4)
    kw.update(intermediate_size=pick(r, 32, 48), num_hidden_layers=n_layers, sliding_window=pick(r, 4, 8, 16),
              layer_types=[pick(r, "sliding_attention", "full_attention") for _ in range(n_layers)],
              attention_bias=r.random() < 0.8)
    if r.random() < 0.7:
        kw["rope_parameters"] = mf.rope("yarn", pick(r, 1.5e5, 1e4), factor=pick(r, 2.0, 4.0, 32.0),
                                        original_max_position_embeddings=pick(r, 16, 64), beta_fast=32.0,
                                        beta_slow=1.0, truncate=r.random() < 0.5)
    else:
        kw["rope_parameters"] = mf.rope(theta=1e4)
    return "GptOssForCausalLM", "GptOssConfig", kw


def glm4_moe(r):
    kw = common(r)
    kw.update(head_layout(r))
    if kw["head_dim"] is None:
        kw["head_dim"] = pick(r, 16, 32)
    n = pick(r, 8, 16)
    n_group, topk_group, k = grouped(r, n)
    n_layers = r.randint(2, 3)
    kw.update(n_routed_experts=n, num_experts_per_tok=k, n_group=n_group, topk_group=topk_group,
              n_shared_experts=pick(r, 1, 2), routed_scaling_factor=pick(r, 1.0, 2.5),
              first_k_dense_replace=r.randint(0, n_layers - 1), norm_topk_prob=r.random() < 0.7,
              partial_rotary_factor=pick(r, 0.25, 0.5, 1.0), use_qk_norm=r.random() < 0.5,
              attention_bias=r.random() < 0.6, intermediate_size=pick(r, 96, 128),
              moe_intermediate_size=pick(r, 16, 32), num_hidden_layers=n_layers,
              rope_parameters=draw_rope(r, ("default", "default", "yarn", "linear")))
    return "Glm4MoeForCausalLM", "Glm4MoeConfig", kw


FAMILIES = dict(mixtral=mixtral, qwen2_moe=qwen2_moe, qwen3_moe=qwen3_moe, olmoe=olmoe, deepseek_v2=deepseek_v2,
                deepseek_v3=deepseek_v3, gpt_oss=gpt_oss, glm4_moe=glm4_moe)


def draw_case(family, index, seed):
    r = random.Random(f"{seed}:{family}:{index}")
    model, config, kw = FAMILIES[family](r)
    save = r.choices(["float32", "bfloat16", "float16"], weights=[6, 3, 2])[0]
    case = dict(name=f"{family}_s{seed}_{index}", model=model, config=config, seed=10_000 * seed + 100 * index + 7,
                save_dtype=save, kwargs=kw, covers="sweep")
    rp = kw.get("rope_parameters") or {}
    if r.random() < 0.3 and not any(isinstance(v, (dict, list)) for v in rp.values()):
        case["legacy_rope"] = True
    if r.random() < 0.25:
        case["max_shard_size"] = "100KB"   # several shards + model.safetensors.index.json
    if family == "gpt_oss":
        case["weight_scale"] = {"gate_up_proj": 4.0}
    return case


def work(args):
    case, out, version = args
    import torch
    torch.set_num_threads(1)
    log = [f"== {case['name']} {case['model']} {case['save_dtype']} {json.dumps(case['kwargs'], sort_keys=True)}"]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            res = mf.run_case(case, out, version)
        log.append(f"   ok={res['ok']} margin={res['min_margin']:.3g} perturb={res['pert_diff']:.3g}")
        return case["name"], "ok" if res["ok"] else "weak", "\n".join(log)
    except Exception:
        log.append(buf.getvalue()[-3000:])
        log.append(traceback.format_exc())
        return case["name"], "error", "\n".join(log)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-family", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--attempts", type=int, default=3)
    args = ap.parse_args()
    mf.MAX_ATTEMPTS = args.attempts
    import transformers
    os.makedirs(args.out, exist_ok=True)
    cases = [draw_case(f, i, args.seed) for f in args.families for i in range(args.per_family)]
    jobs = [(c, args.out, transformers.__version__) for c in cases]
    counts = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for name, status, log in pool.imap_unordered(work, jobs):
            counts[status] = counts.get(status, 0) + 1
            print(log, flush=True)
            print(f"   -> {name}: {status}", flush=True)
    print("sweep summary:", json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

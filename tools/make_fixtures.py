#!/usr/bin/env python3
"""Build the model reference fixtures of DESIGN.md section 9 (tests/fixtures/models/<case>/).

Each case is a small random model of one transformers class. Its weights are re-drawn so that
activations stay O(1) and routing is decisive, it is saved with save_pretrained, reloaded from disk
in float32 with eager attention, and run on CPU to record the logits of every position of three
prompts plus a 12-token greedy continuation of each.

Needs python3 with torch, transformers 5.x and safetensors (the GPU machine; it runs on its CPU).
`python3 tools/make_fixtures.py --list` needs nothing and prints the cases.
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

PROMPT_LENGTHS = (1, 7, 19)
N_CONTINUATION = 12
MIN_GREEDY_MARGIN = 2e-3     # top-1 minus top-2 logit at every greedy step (C++ check uses 2e-3 abs)
PERTURB_REL = 1e-5           # relative weight noise used to detect fragile routing decisions
PERTURB_FLAG = 1e-2          # a logit moving more than this under that noise means a routing flip
MAX_ATTEMPTS = 8
SIZE_WARN_BYTES = 1_500_000



def save_model(model, path, max_shard_size=None):
    """save_pretrained as safetensors (transformers 5 may no longer take safe_serialization)."""
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    try:
        model.save_pretrained(path, safe_serialization=True, **kw)
    except TypeError:
        model.save_pretrained(path, **kw)

def rope(rope_type="default", theta=10000.0, **extra):
    d = {"rope_type": rope_type, "rope_theta": float(theta)}
    d.update(extra)
    return d


YARN_DEEPSEEK_V3 = dict(factor=4.0, original_max_position_embeddings=64, beta_fast=32.0, beta_slow=1.0,
                        mscale=1.0, mscale_all_dim=1.0)
YARN_DEEPSEEK_V3_SPLIT = dict(factor=4.0, original_max_position_embeddings=64, beta_fast=32.0, beta_slow=1.0,
                              mscale=1.0, mscale_all_dim=0.707)
YARN_DEEPSEEK_V2_LITE = dict(factor=4.0, original_max_position_embeddings=64, beta_fast=32.0, beta_slow=1.0,
                             mscale=0.707, mscale_all_dim=0.707)
YARN_GPT_OSS = dict(factor=4.0, original_max_position_embeddings=64, beta_fast=32.0, beta_slow=1.0,
                    truncate=False)

# Shared small dimensions. Expert sizes differ from hidden_size (and 2*expert != hidden) so the
# input dimension of a stacked expert tensor can be told apart from its output dimension.
COMMON = dict(max_position_embeddings=256, pad_token_id=None)

CASES = [
    dict(name="mixtral", model="MixtralForCausalLM", config="MixtralConfig", seed=1001,
         save_dtype="float32",
         covers="GQA (4 q heads, 2 kv heads), softmax top-2 of 4 experts, sliding_window null",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                     num_experts_per_tok=2, sliding_window=None, rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=1e6), bos_token_id=1, eos_token_id=2)),
    dict(name="mixtral_bf16", model="MixtralForCausalLM", config="MixtralConfig", seed=1002,
         save_dtype="bfloat16",
         covers="bf16 checkpoint, 3 layers, top-2 of 8 experts",
         kwargs=dict(vocab_size=512, hidden_size=64, intermediate_size=48, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=8,
                     num_experts_per_tok=2, sliding_window=None, rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=1e4), bos_token_id=1, eos_token_id=2)),
    dict(name="mixtral_sliding", model="MixtralForCausalLM", config="MixtralConfig", seed=1003,
         save_dtype="float32",
         covers="sliding_window 6 (shorter than the 19-token prompt), MQA (1 kv head), top-1 of 4",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=80, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=1, head_dim=16, num_local_experts=4,
                     num_experts_per_tok=1, sliding_window=6, rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=1e6), bos_token_id=1, eos_token_id=2)),
    dict(name="mixtral_linear_rope", model="MixtralForCausalLM", config="MixtralConfig", seed=1004,
         save_dtype="float32",
         covers="linear rope scaling (factor 2), tie_word_embeddings true (no lm_head tensor)",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                     num_experts_per_tok=2, sliding_window=None, rms_norm_eps=1e-5,
                     tie_word_embeddings=True,
                     rope_parameters=rope("linear", 1e4, factor=2.0), bos_token_id=1, eos_token_id=2)),
    dict(name="qwen2_moe", model="Qwen2MoeForCausalLM", config="Qwen2MoeConfig", seed=2001,
         save_dtype="float32",
         covers="q/k/v bias, shared expert with sigmoid gate, norm_topk_prob false, top-2 of 8",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, num_experts=8, num_experts_per_tok=2,
                     moe_intermediate_size=32, shared_expert_intermediate_size=80, norm_topk_prob=False,
                     decoder_sparse_step=1, qkv_bias=True, use_sliding_window=False, rms_norm_eps=1e-6,
                     rope_parameters=rope(theta=1e6), bos_token_id=None, eos_token_id=3)),
    dict(name="qwen2_moe_sparse_step", model="Qwen2MoeForCausalLM", config="Qwen2MoeConfig", seed=2002,
         save_dtype="float32", legacy_rope=True,
         covers="decoder_sparse_step 2 + mlp_only_layers [1]: layers 0,1,2 dense MLP, layer 3 MoE; "
                "config.json in the legacy form (rope_theta + rope_scaling null)",
         kwargs=dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=4, num_experts=4, num_experts_per_tok=2,
                     moe_intermediate_size=24, shared_expert_intermediate_size=40, norm_topk_prob=False,
                     decoder_sparse_step=2, mlp_only_layers=[1], qkv_bias=True, use_sliding_window=False,
                     rms_norm_eps=1e-6, rope_parameters=rope(theta=1e6), bos_token_id=None, eos_token_id=3)),
    dict(name="qwen3_moe", model="Qwen3MoeForCausalLM", config="Qwen3MoeConfig", seed=3001,
         save_dtype="float32",
         covers="per-head q/k RMSNorm, head_dim 24 != hidden/heads 16, norm_topk_prob true, top-2 of 8",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_experts=8,
                     num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                     decoder_sparse_step=1, mlp_only_layers=[], attention_bias=False, rms_norm_eps=1e-6,
                     rope_parameters=rope(theta=1e6), bos_token_id=None, eos_token_id=3)),
    dict(name="qwen3_moe_llama3rope", model="Qwen3MoeForCausalLM", config="Qwen3MoeConfig", seed=3002,
         save_dtype="float32",
         covers="llama3 rope scaling, tie_word_embeddings true, mlp_only_layers [0] (dense first layer)",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=112, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8,
                     num_experts_per_tok=2, moe_intermediate_size=24, norm_topk_prob=True,
                     decoder_sparse_step=1, mlp_only_layers=[0], attention_bias=False, rms_norm_eps=1e-6,
                     tie_word_embeddings=True,
                     rope_parameters=rope("llama3", 5e5, factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=32),
                     bos_token_id=None, eos_token_id=3)),
    dict(name="olmoe", model="OlmoeForCausalLM", config="OlmoeConfig", seed=4001,
         save_dtype="float32",
         covers="q/k RMSNorm over the whole projection (before the head split), GQA, "
                "norm_topk_prob false, top-2 of 8",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, num_experts=8, num_experts_per_tok=2,
                     norm_topk_prob=False, clip_qkv=None, rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=1e4), bos_token_id=None, eos_token_id=2)),
    dict(name="deepseek_v2", model="DeepseekV2ForCausalLM", config="DeepseekV2Config", seed=5001,
         save_dtype="float32",
         covers="MLA without q compression (q_lora_rank null), v_head_dim != qk_head_dim, softmax scores, "
                "group_limited_greedy (4 groups, 2 kept, top-3), routed_scaling_factor 1.5, "
                "2 shared experts, first_k_dense_replace 1",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=24,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=2, n_routed_experts=8, routed_scaling_factor=1.5, kv_lora_rank=32,
                     q_lora_rank=None, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                     n_group=4, topk_group=2, topk_method="group_limited_greedy", num_experts_per_tok=3,
                     first_k_dense_replace=1, norm_topk_prob=False, rms_norm_eps=1e-6,
                     rope_parameters=rope(theta=1e4), bos_token_id=0, eos_token_id=1)),
    dict(name="deepseek_v2_lite_yarn", model="DeepseekV2ForCausalLM", config="DeepseekV2Config", seed=5002,
         save_dtype="float32", legacy_rope=True,
         covers="MLA with q_lora_rank, greedy top-3 of 8, yarn rope (factor 4, mscale = mscale_all_dim = "
                "0.707 as DeepSeek-V2-Lite ships it); config.json in the legacy form "
                "(rope_theta + rope_scaling with \"type\": \"yarn\")",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=112, moe_intermediate_size=24,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=2, n_routed_experts=8, routed_scaling_factor=1.0, kv_lora_rank=32,
                     q_lora_rank=24, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                     n_group=1, topk_group=1, topk_method="greedy", num_experts_per_tok=3,
                     first_k_dense_replace=1, norm_topk_prob=False, rms_norm_eps=1e-6,
                     rope_parameters=rope("yarn", 1e4, **YARN_DEEPSEEK_V2_LITE), bos_token_id=0,
                     eos_token_id=1)),
    dict(name="deepseek_v3", model="DeepseekV3ForCausalLM", config="DeepseekV3Config", seed=6001,
         save_dtype="float32",
         covers="MLA with q_lora_rank, sigmoid scores + e_score_correction_bias, 4 groups (score = sum of "
                "top-2) keep 2, top-3 of 16, norm_topk_prob, routed_scaling_factor 2.5, 1 shared expert, "
                "first_k_dense_replace 1, yarn (mscale = mscale_all_dim = 1: softmax scale * mscale^2), "
                "rope_interleave true",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=16,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=1, n_routed_experts=16, routed_scaling_factor=2.5, kv_lora_rank=32,
                     q_lora_rank=48, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                     n_group=4, topk_group=2, num_experts_per_tok=3, first_k_dense_replace=1,
                     norm_topk_prob=True, rope_interleave=True, rms_norm_eps=1e-6,
                     rope_parameters=rope("yarn", 1e4, **YARN_DEEPSEEK_V3), bos_token_id=0, eos_token_id=1)),
    dict(name="deepseek_v3_bf16", model="DeepseekV3ForCausalLM", config="DeepseekV3Config", seed=6002,
         save_dtype="bfloat16",
         covers="bf16 checkpoint, rope_interleave false, yarn with mscale 1.0 != mscale_all_dim 0.707 "
                "(cos/sin scaled too), n_group 1, norm_topk_prob false, routed_scaling_factor 1.0, "
                "2 shared experts, first_k_dense_replace 0 (every layer MoE)",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=128, moe_intermediate_size=24,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=2, n_routed_experts=8, routed_scaling_factor=1.0, kv_lora_rank=24,
                     q_lora_rank=32, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                     n_group=1, topk_group=1, num_experts_per_tok=2, first_k_dense_replace=0,
                     norm_topk_prob=False, rope_interleave=False, rms_norm_eps=1e-6,
                     rope_parameters=rope("yarn", 1e4, **YARN_DEEPSEEK_V3_SPLIT), bos_token_id=0,
                     eos_token_id=1)),
    dict(name="gpt_oss", model="GptOssForCausalLM", config="GptOssConfig", seed=7001,
         save_dtype="float32",
         # Expert gate_up weights are drawn 4x larger than randn/sqrt(fan_in) so that the SwiGLU
         # clamp (limit 7) actually triggers on some units.
         weight_scale={"gate_up_proj": 4.0},
         covers="attention sinks, q/k/v/o biases, alternating sliding(8)/full layers, router bias, "
                "expert biases, clamped SwiGLU (gate_up drawn 4x larger so the clamp triggers), "
                "yarn with truncate false as GPT-OSS ships it, eos_token_id list",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=48, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                     num_experts_per_tok=2, sliding_window=8,
                     layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                     rms_norm_eps=1e-5, rope_parameters=rope("yarn", 150000.0, **YARN_GPT_OSS),
                     tie_word_embeddings=False, bos_token_id=None, eos_token_id=[1, 2])),
    dict(name="glm4_moe", model="Glm4MoeForCausalLM", config="Glm4MoeConfig", seed=8001,
         save_dtype="float32",
         covers="partial_rotary_factor 0.5, per-head q/k norm (use_qk_norm), q/k/v bias, head_dim 24, "
                "sigmoid + e_score_correction_bias, 2 groups keep 1, routed_scaling_factor 1.5, "
                "first_k_dense_replace 1, eos_token_id list",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                     partial_rotary_factor=0.5, use_qk_norm=True, attention_bias=True,
                     n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
                     topk_group=1, first_k_dense_replace=1, norm_topk_prob=True,
                     routed_scaling_factor=1.5, rms_norm_eps=1e-5, rope_parameters=rope(theta=1e4),
                     bos_token_id=None, eos_token_id=[1, 2])),

    # ---- 2026 families (issue 14) ------------------------------------------------------------
    dict(name="kimi_k2", model="DeepseekV3ForCausalLM", config="DeepseekV3Config", seed=9001,
         save_dtype="float32", legacy_rope=True,
         covers="Kimi K2's DeepSeek-V3 options at small size: 48 routed experts top-8, n_group 1, "
                "routed_scaling_factor 2.827, 1 shared expert, first_k_dense_replace 1, yarn factor 32 "
                "with beta_fast = beta_slow = 1 and mscale = mscale_all_dim = 1; config.json in the legacy "
                "(hub) form",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=16,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=1, n_routed_experts=48, routed_scaling_factor=2.827, kv_lora_rank=32,
                     q_lora_rank=48, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                     n_group=1, topk_group=1, num_experts_per_tok=8, first_k_dense_replace=1,
                     norm_topk_prob=True, rope_interleave=True, rms_norm_eps=1e-6,
                     rope_parameters=rope("yarn", 5e4, factor=32.0, original_max_position_embeddings=16,
                                          beta_fast=1.0, beta_slow=1.0, mscale=1.0, mscale_all_dim=1.0),
                     bos_token_id=0, eos_token_id=1)),
    dict(name="glm4_moe_lite", model="Glm4MoeLiteForCausalLM", config="Glm4MoeLiteConfig", seed=9101,
         save_dtype="float32",
         covers="GLM-4.7-Flash: DeepSeek-V3 MLA (q_lora_rank, rope_interleave) with GLM's sigmoid router, "
                "mlp_layer_types [dense, sparse, dense, sparse] instead of first_k_dense_replace, "
                "routed_scaling_factor 1.8",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=112, moe_intermediate_size=24,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=1, n_routed_experts=8, routed_scaling_factor=1.8, kv_lora_rank=32,
                     q_lora_rank=40, qk_rope_head_dim=8, v_head_dim=24, qk_nope_head_dim=16,
                     n_group=1, topk_group=1, num_experts_per_tok=3, norm_topk_prob=True,
                     mlp_layer_types=["dense", "sparse", "dense", "sparse"], rope_interleave=True,
                     rms_norm_eps=1e-5, rope_parameters=rope(theta=1e4), bos_token_id=0, eos_token_id=1)),
    dict(name="dots1", model="Dots1ForCausalLM", config="Dots1Config", seed=9201,
         save_dtype="float32",
         covers="per-head q/k RMSNorm, sigmoid + e_score_correction_bias router with 2 groups keep 1, "
                "routed_scaling_factor 2.5, shared expert, first_k_dense_replace 1, sliding_window 6 on "
                "layers >= max_window_layers 1",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=24,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                     n_shared_experts=1, n_routed_experts=8, n_group=2, topk_group=1, num_experts_per_tok=2,
                     first_k_dense_replace=1, norm_topk_prob=True, routed_scaling_factor=2.5,
                     sliding_window=6, max_window_layers=1, rms_norm_eps=1e-6,
                     rope_parameters=rope(theta=1e4), bos_token_id=None, eos_token_id=2)),
    dict(name="minimax_m2", model="MiniMaxM2ForCausalLM", config="MiniMaxM2Config", seed=9301,
         save_dtype="float32",
         covers="q/k RMSNorm over the whole projection, partial rotary 0.5 (head_dim 24), sigmoid router "
                "with mlp.e_score_correction_bias, always renormalised, top-2 of 8",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_local_experts=8,
                     num_experts_per_tok=2, rms_norm_eps=1e-6,
                     rope_parameters=rope(theta=5e6, partial_rotary_factor=0.5),
                     bos_token_id=None, eos_token_id=2)),
    dict(name="minimax_m2_bf16", model="MiniMaxM2ForCausalLM", config="MiniMaxM2Config", seed=9302,
         save_dtype="bfloat16",
         covers="bf16 checkpoint, 3 layers, top-3 of 16, full rotary",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=24, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=1, head_dim=16, num_local_experts=16,
                     num_experts_per_tok=3, rms_norm_eps=1e-6, rope_parameters=rope(theta=1e4),
                     bos_token_id=None, eos_token_id=2)),
    dict(name="ernie4_5_moe", model="Ernie4_5_MoeForCausalLM", config="Ernie4_5_MoeConfig", seed=9401,
         save_dtype="float32",
         covers="interleaved-pair rope, use_bias (q/k/v/o and MLP biases), softmax router with "
                "moe_statics correction bias for the choice only, renormalised with moe_norm_min, "
                "1 shared expert, moe_layer_start_index 1, tie_word_embeddings true",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=24,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, moe_num_experts=8,
                     moe_k=2, moe_num_shared_experts=1, moe_layer_start_index=1, moe_layer_end_index=-1,
                     moe_layer_interval=1, use_bias=True, tie_word_embeddings=True, rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=5e5), pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    dict(name="ernie4_5_moe_bf16", model="Ernie4_5_MoeForCausalLM", config="Ernie4_5_MoeConfig", seed=9402,
         save_dtype="bfloat16",
         covers="bf16 checkpoint, no biases, no shared expert, moe_layer_interval 2 from layer 0 to "
                "moe_layer_end_index 2 (layers 1 MoE; 0, 2, 3 dense), untied head",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, moe_num_experts=8,
                     moe_k=3, moe_num_shared_experts=0, moe_layer_start_index=0, moe_layer_end_index=2,
                     moe_layer_interval=2, use_bias=False, tie_word_embeddings=False, rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=1e4), pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    dict(name="hunyuan_v1_moe", model="HunYuanMoEV1ForCausalLM", config="HunYuanMoEV1Config", seed=9501,
         save_dtype="float32",
         covers="per-head q/k RMSNorm AFTER rope (query_layernorm/key_layernorm), shared MLP always on, "
                "softmax top-2 of 8 renormalised, router mlp.gate.wg",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8, moe_topk=2,
                     rms_norm_eps=1e-5, rope_parameters=rope(theta=1e4), pad_token_id=0, bos_token_id=1,
                     eos_token_id=2)),
    dict(name="hunyuan_v1_moe_alpha", model="HunYuanMoEV1ForCausalLM", config="HunYuanMoEV1Config",
         seed=9502, save_dtype="bfloat16",
         covers="bf16 checkpoint, Hunyuan-A13B's dynamic NTK-alpha rope (base = theta * alpha^(d/(d-2))), "
                "top-1 of 4, MQA",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=1, head_dim=16, num_experts=4, moe_topk=1,
                     rms_norm_eps=1e-5, rope_parameters=rope("dynamic", 1e4, alpha=1000.0, factor=1.0),
                     pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    dict(name="granitemoe", model="GraniteMoeForCausalLM", config="GraniteMoeConfig", seed=9601,
         save_dtype="float32",
         covers="muP multipliers: embedding_multiplier 12, attention_multiplier 0.1 (the softmax scale), "
                "residual_multiplier 0.22, logits_scaling 6; softmax over the top-2 logits; tied head",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, num_local_experts=8,
                     num_experts_per_tok=2, embedding_multiplier=12.0, attention_multiplier=0.1,
                     residual_multiplier=0.22, logits_scaling=6.0, tie_word_embeddings=True,
                     rms_norm_eps=1e-6, rope_parameters=rope(theta=1e4), bos_token_id=1, eos_token_id=2)),
    dict(name="llama4", model="Llama4ForCausalLM", config="Llama4TextConfig", seed=9701,
         save_dtype="float32",
         covers="top-1 sigmoid router + shared expert, MoE on layers 1, 3 (interleave_moe_layer_step 2, "
                "dense intermediate_size_mlp elsewhere), chunked attention (chunk 8) on rope layers, NoPE "
                "layer 3 with attention temperature tuning (floor_scale 4), L2 q/k norm, llama3 rope scaling",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=32, intermediate_size_mlp=96,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
                     no_rope_layers=[1, 1, 1, 0], attention_chunk_size=8, attn_temperature_tuning=True,
                     floor_scale=4, attn_scale=0.1, use_qk_norm=True, rms_norm_eps=1e-5,
                     rope_parameters=rope("llama3", 5e5, factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=32),
                     bos_token_id=1, eos_token_id=2)),
    dict(name="llama4_bf16", model="Llama4ForCausalLM", config="Llama4TextConfig", seed=9702,
         save_dtype="bfloat16",
         covers="bf16 checkpoint, every layer MoE (top-1 of 8), NoPE every 2nd layer, no temperature "
                "tuning, no q/k norm, chunk 6, default rope",
         kwargs=dict(vocab_size=320, hidden_size=64, intermediate_size=24, intermediate_size_mlp=64,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                     num_local_experts=8, num_experts_per_tok=1, interleave_moe_layer_step=1,
                     no_rope_layer_interval=2, attention_chunk_size=6, attn_temperature_tuning=False,
                     use_qk_norm=False, rms_norm_eps=1e-5, rope_parameters=rope(theta=5e5),
                     bos_token_id=1, eos_token_id=2)),
    dict(name="qwen3_next", model="Qwen3NextForCausalLM", config="Qwen3NextConfig", seed=9801,
         save_dtype="float32",
         covers="Gated DeltaNet (2 key heads, 4 value heads, conv kernel 4) on layers 0, 2, gated full "
                "attention on 1, 3, partial rotary 0.5, zero-centred RMSNorm, shared expert with sigmoid "
                "gate, top-2 of 8",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16, linear_conv_kernel_dim=4,
                     linear_key_head_dim=16, linear_value_head_dim=24, linear_num_key_heads=2,
                     linear_num_value_heads=4, moe_intermediate_size=24, shared_expert_intermediate_size=40,
                     num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
                     mlp_only_layers=[],
                     layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
                     rms_norm_eps=1e-6, rope_parameters=rope(theta=1e4, partial_rotary_factor=0.5),
                     bos_token_id=None, eos_token_id=2)),
    dict(name="qwen3_5_moe", model="Qwen3_5MoeForCausalLM", config="Qwen3_5MoeTextConfig", seed=9901,
         save_dtype="bfloat16",
         covers="bf16 checkpoint, Qwen3.5-MoE text model: 3 Gated DeltaNet layers then gated full "
                "attention, interleaved mrope sections (text positions), partial rotary 0.5",
         kwargs=dict(vocab_size=320, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, linear_conv_kernel_dim=4, linear_key_head_dim=16,
                     linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
                     moe_intermediate_size=24, shared_expert_intermediate_size=32, num_experts=8,
                     num_experts_per_tok=2,
                     layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
                     rms_norm_eps=1e-6,
                     rope_parameters=rope(theta=1e4, partial_rotary_factor=0.5, mrope_section=[2, 1, 1],
                                          mrope_interleaved=True),
                     bos_token_id=None, eos_token_id=2)),
    dict(name="deepseek_v32", model="DeepseekV32ForCausalLM", config="DeepseekV32Config", seed=10001,
         save_dtype="float32",
         covers="DeepSeek sparse attention: lightning indexer (2 heads of 16, index_topk 8 below the "
                "19-token prompt) over MLA with q_lora_rank, V3 grouped sigmoid router (4 groups keep 2, "
                "top-3 of 16), first_k_dense_replace 1",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=128, moe_intermediate_size=16,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=1, n_routed_experts=16, routed_scaling_factor=2.5, kv_lora_rank=32,
                     q_lora_rank=48, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16,
                     n_group=4, topk_group=2, num_experts_per_tok=3, first_k_dense_replace=1,
                     norm_topk_prob=True, index_topk=8, index_head_dim=16, index_n_heads=2,
                     rms_norm_eps=1e-6, rope_parameters=rope(theta=1e4), bos_token_id=0, eos_token_id=1)),
    dict(name="glm_moe_dsa", model="GlmMoeDsaForCausalLM", config="GlmMoeDsaConfig", seed=10101,
         save_dtype="float32",
         covers="GLM-5: MLA + DeepSeek sparse attention (index_topk 6), indexer_types [full, full, shared] "
                "(layer 2 reuses layer 1's selection), n_group 1, top-2 of 8, first_k_dense_replace 1",
         kwargs=dict(vocab_size=384, hidden_size=64, intermediate_size=112, moe_intermediate_size=24,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     n_shared_experts=1, n_routed_experts=8, routed_scaling_factor=2.5, kv_lora_rank=32,
                     q_lora_rank=40, qk_rope_head_dim=8, v_head_dim=24, qk_nope_head_dim=24,
                     n_group=1, topk_group=1, num_experts_per_tok=2, first_k_dense_replace=1,
                     norm_topk_prob=True, index_topk=6, index_head_dim=16, index_n_heads=2,
                     indexer_types=["full", "full", "shared"], rms_norm_eps=1e-5,
                     rope_parameters=rope(theta=1e4), bos_token_id=0, eos_token_id=1)),
]


def case_by_name(name):
    for c in CASES:
        if c["name"] == name:
            return c
    raise KeyError(name)


# ----------------------------------------------------------------------------------------------
# Weight re-draw (DESIGN.md section 9)

def draw_kind(name, shape, hidden_size):
    """How to draw one tensor: ('normal', std, mean) from its name and shape.

    Matrices: randn / sqrt(fan_in). Stacked expert banks are 3-D; transformers 5 stores some as
    [experts, out, in] (used with F.linear) and GPT-OSS as [experts, in, out] (used with x @ W), so
    the input dimension is found by size: gate/up projections read hidden_size, down projections
    read the other (expert) dimension.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf.endswith("bias"):                       # biases, router correction biases, expert biases
        return ("normal", 0.1, 0.0)
    if "sinks" in leaf:
        return ("normal", 0.1, 0.0)
    if "norm" in name and len(shape) == 1:
        return ("normal", 0.1, 1.0)
    if "embed_tokens" in name:
        return ("normal", 1.0, 0.0)
    if len(shape) == 2:
        return ("normal", 1.0 / math.sqrt(shape[1]), 0.0)
    if len(shape) == 3:
        tail = list(shape[1:])
        if any(k in leaf for k in ("gate_up", "gate_proj", "up_proj", "w1", "w3")):
            if hidden_size not in tail:
                raise ValueError(f"{name}: {shape} has no hidden_size {hidden_size} input dim")
            return ("normal", 1.0 / math.sqrt(hidden_size), 0.0)
        if "down" in leaf or "w2" in leaf:
            others = [d for d in tail if d != hidden_size]
            if len(others) != 1:
                raise ValueError(f"{name}: cannot tell the input dim of {shape}")
            return ("normal", 1.0 / math.sqrt(others[0]), 0.0)
        if "conv" in name and shape[1] == 1:       # depthwise conv1d [channels, 1, kernel]
            return ("normal", 1.0 / math.sqrt(shape[2]), 0.0)
        raise ValueError(f"{name}: unknown 3-D tensor {shape}")
    if len(shape) == 1:
        print(f"  note: 1-D tensor {name} drawn as a bias (0.1 randn)")
        return ("normal", 0.1, 0.0)
    raise ValueError(f"{name}: unexpected shape {shape}")


def redraw_weights(model, hidden_size, seed, weight_scale=None):
    import torch
    gen = torch.Generator().manual_seed(seed)
    weight_scale = weight_scale or {}
    with torch.no_grad():
        tensors = list(model.named_parameters())
        tensors += [(n, b) for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")]
        for name, t in tensors:
            _, std, mean = draw_kind(name, tuple(t.shape), hidden_size)
            for key, factor in weight_scale.items():
                if name.rsplit(".", 1)[-1] == key:
                    std *= factor
            x = torch.randn(tuple(t.shape), generator=gen, dtype=torch.float32) * std + mean
            t.copy_(x.to(t.dtype))


# ----------------------------------------------------------------------------------------------
# Legacy rope keys

def to_legacy_rope(cfg):
    """Rewrite a transformers-5 config dict to the pre-5 form: rope_theta + rope_scaling."""
    rp = cfg.pop("rope_parameters")
    if not isinstance(rp, dict) or any(isinstance(v, dict) for v in rp.values()):
        raise ValueError(f"cannot express rope_parameters {rp} in legacy form")
    rp = dict(rp)
    cfg["rope_theta"] = rp.pop("rope_theta")
    if "partial_rotary_factor" in rp:
        cfg["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
    rope_type = rp.pop("rope_type", "default")
    if rope_type == "default" and not rp:
        cfg["rope_scaling"] = None
    else:
        scaling = {"type": rope_type}        # DeepSeek's checkpoints spell it "type"
        scaling.update(rp)
        cfg["rope_scaling"] = scaling
    return cfg


# ----------------------------------------------------------------------------------------------
# Reference computation

def load_reference_model(model_cls, path):
    import torch
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    try:
        m = model_cls.from_pretrained(path, experts_implementation="eager", **kw)
    except Exception as e:                          # older/newer API without that argument
        print(f"  (experts_implementation='eager' not accepted: {type(e).__name__}: {e}; retrying)")
        m = model_cls.from_pretrained(path, **kw)
    m.eval()
    return m


def forward_logits(model, ids):
    import torch
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float()


def greedy(model, prompt, n):
    """Plain argmax loop with full recompute; EOS is never special. Returns tokens and margins."""
    ids = list(prompt)
    toks, margins = [], []
    for _ in range(n):
        last = forward_logits(model, ids)[-1]
        top2 = last.topk(2)
        toks.append(int(top2.indices[0]))
        margins.append(float(top2.values[0] - top2.values[1]))
        ids.append(toks[-1])
    return toks, margins


def perturbed_copy(model, rel, seed):
    import torch
    m = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in m.named_parameters():
            p.mul_(1.0 + rel * torch.randn(tuple(p.shape), generator=gen))
    return m


def run_case(case, out_root, transformers_version, keep_tmp=False):
    import torch
    import transformers
    from safetensors.torch import save_file

    config_cls = getattr(transformers, case["config"])
    model_cls = getattr(transformers, case["model"])
    final_dir = os.path.join(out_root, case["name"])
    best = None

    for attempt in range(MAX_ATTEMPTS):
        seed = case["seed"] + 1000 * attempt
        t0 = time.time()
        work = tempfile.mkdtemp(prefix=f"fx_{case['name']}_")
        try:
            kwargs = copy.deepcopy(case["kwargs"])
            for k, v in COMMON.items():
                kwargs.setdefault(k, v)
            config = config_cls(**kwargs)
            torch.manual_seed(seed)
            model = model_cls(config).float().eval()
            redraw_weights(model, config.hidden_size, seed, case.get("weight_scale"))

            save_dir = os.path.join(work, "model")
            shard = case.get("max_shard_size")
            if case["save_dtype"] == "float32":
                save_model(model, save_dir, shard)
            else:
                f32_dir = os.path.join(work, "f32")
                save_model(model, f32_dir)
                bf = model_cls.from_pretrained(f32_dir, dtype=getattr(torch, case["save_dtype"]))
                save_model(bf, save_dir, shard)
                del bf
            del model

            ref = load_reference_model(model_cls, save_dir)

            if case.get("legacy_rope"):
                cfg_path = os.path.join(save_dir, "config.json")
                with open(cfg_path) as f:
                    cfg_v5 = json.load(f)
                probe = list(range(3, 3 + 23))
                before = forward_logits(ref, probe)
                legacy = to_legacy_rope(copy.deepcopy(cfg_v5))
                with open(cfg_path, "w") as f:
                    json.dump(legacy, f, indent=2, sort_keys=True)
                    f.write("\n")
                ref_legacy = load_reference_model(model_cls, save_dir)
                after = forward_logits(ref_legacy, probe)
                diff = float((before - after).abs().max())
                print(f"  legacy rope config: max |logits diff| vs rope_parameters form = {diff:.3g}")
                print(f"  legacy rope keys: rope_theta={legacy['rope_theta']} rope_scaling={legacy['rope_scaling']}")
                if diff != 0.0:
                    print("  WARNING: legacy form does not load identically; keeping the transformers-5 form")
                    with open(cfg_path, "w") as f:
                        json.dump(cfg_v5, f, indent=2, sort_keys=True)
                        f.write("\n")
                else:
                    ref = ref_legacy

            vocab = ref.config.vocab_size
            gen = torch.Generator().manual_seed(seed + 7)
            prompts, tensors, min_margin = [], {}, float("inf")
            full_seqs = []
            for i, n in enumerate(PROMPT_LENGTHS):
                ids = [int(x) for x in torch.randint(0, vocab, (n,), generator=gen)]
                logits = forward_logits(ref, ids)
                cont, margins = greedy(ref, ids, N_CONTINUATION)
                min_margin = min(min_margin, min(margins))
                top5 = logits[-1].topk(5)
                prompts.append({
                    "input_ids": ids,
                    "greedy_continuation": cont,
                    "last_top5_ids": [int(x) for x in top5.indices],
                    "last_top5_logits": [float(x) for x in top5.values],
                })
                tensors[f"logits_{i}"] = logits.contiguous()
                tensors[f"input_ids_{i}"] = torch.tensor(ids, dtype=torch.int32)
                full_seqs.append(ids + cont[:-1])

            # Fragility checks over every position the C++ check will see.
            pert = perturbed_copy(ref, PERTURB_REL, seed + 11)
            pert_diff = max(float((forward_logits(pert, s) - forward_logits(ref, s)).abs().max())
                            for s in full_seqs)
            del pert
            f64_diff = float("nan")
            try:
                ref64 = copy.deepcopy(ref).double()
                f64_diff = max(float((forward_logits(ref64, s).float() - forward_logits(ref, s)).abs().max())
                               for s in full_seqs)
                del ref64
            except Exception as e:
                print(f"  (float64 comparison skipped: {type(e).__name__}: {e})")
            max_abs_logit = max(float(t.abs().max()) for k, t in tensors.items() if k.startswith("logits"))
            ok = min_margin >= MIN_GREEDY_MARGIN and pert_diff <= PERTURB_FLAG
            print(f"  attempt {attempt} seed {seed}: min greedy margin {min_margin:.4g}, "
                  f"perturbation diff {pert_diff:.3g}, |f64-f32| {f64_diff:.3g}, "
                  f"max |logit| {max_abs_logit:.3g}, {time.time() - t0:.1f}s -> {'ok' if ok else 'retry'}")

            score = (ok, min(min_margin / MIN_GREEDY_MARGIN, PERTURB_FLAG / max(pert_diff, 1e-12)))
            if best is None or score > best[0]:
                if best is not None:
                    shutil.rmtree(best[1], ignore_errors=True)
                ref_json = {
                    "class": case["model"],
                    "seed": seed,
                    "transformers": transformers_version,
                    "save_dtype": case["save_dtype"],
                    "prompts": prompts,
                }
                with open(os.path.join(save_dir, "reference.json"), "w") as f:
                    json.dump(ref_json, f, indent=1)
                    f.write("\n")
                save_file(tensors, os.path.join(save_dir, "reference.safetensors"))
                best = (score, work, seed, min_margin, pert_diff, f64_diff)
                work = None
            if ok:
                break
        finally:
            if work is not None and not keep_tmp:
                shutil.rmtree(work, ignore_errors=True)

    score, work, seed, min_margin, pert_diff, f64_diff = best
    if not score[0]:
        print(f"  WARNING: {case['name']}: no seed passed the margin checks; keeping seed {seed} "
              f"(margin {min_margin:.3g}, perturbation {pert_diff:.3g})")
    if os.path.exists(final_dir):
        shutil.rmtree(final_dir)
    shutil.copytree(os.path.join(work, "model"), final_dir)
    shutil.rmtree(work, ignore_errors=True)
    try:
        describe_folder(final_dir)
    except Exception as e:
        print(f"  (describe_folder failed: {type(e).__name__}: {e})")
    return dict(name=case["name"], seed=seed, ok=score[0], min_margin=min_margin, pert_diff=pert_diff,
                f64_diff=f64_diff)


def describe_folder(path):
    from safetensors import safe_open
    total = 0
    for fn in sorted(os.listdir(path)):
        size = os.path.getsize(os.path.join(path, fn))
        total += size
        print(f"    {fn:28s} {size:9d} bytes")
    print(f"    {'total':28s} {total:9d} bytes{'  WARNING: over 1.5 MB' if total > SIZE_WARN_BYTES else ''}")
    with safe_open(os.path.join(path, "model.safetensors"), framework="pt") as f:
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            print(f"    tensor {k} {sl.get_dtype()} {list(sl.get_shape())}")
    with open(os.path.join(path, "config.json")) as f:
        print("    config.json: " + json.dumps(json.load(f), sort_keys=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "models"))
    ap.add_argument("--only", nargs="*", help="case names to build (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave default)")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    args = ap.parse_args()

    cases = [case_by_name(n) for n in args.only] if args.only else CASES
    if args.list:
        for c in cases:
            print(f"{c['name']:24s} {c['model']:24s} {c['save_dtype']:8s} {c['covers']}")
        return 0

    import torch
    import transformers
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    os.makedirs(args.out, exist_ok=True)
    results, failed = [], []
    for case in cases:
        print(f"== {case['name']} ({case['model']}, {case['save_dtype']})", flush=True)
        try:
            results.append(run_case(case, args.out, transformers.__version__))
        except Exception:
            traceback.print_exc()
            failed.append(case["name"])
            print(f"  FAILED: {case['name']}", flush=True)
    print("== summary")
    for r in results:
        print(f"  {r['name']:24s} seed {r['seed']:6d} {'ok  ' if r['ok'] else 'WEAK'} "
              f"margin {r['min_margin']:.3g} perturb {r['pert_diff']:.3g} f64 {r['f64_diff']:.3g}")
    for n in failed:
        print(f"  {n:24s} FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

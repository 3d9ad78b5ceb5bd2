#!/usr/bin/env python3
"""transformers beside bench_model on the GPU machine: the same shape (the config.json that
`bench_model --synthetic NAME --print-config` prints), random bf16 weights made on the GPU, greedy
decode of --gen tokens at each batch size through model.generate (eager attention, KV cache).
Prints one markdown row per batch size: tokens/s of generated tokens (all sequences together).
    python3 tools/bench_transformers.py CONFIG.json [--gen 32] [--batches 1,8] [--prompt 16]
"""
import argparse, json, time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    with open(args.config) as f:
        d = json.load(f)
    cfg = AutoConfig.for_model(d.pop("model_type"), **{k: v for k, v in d.items() if k != "architectures"})
    cfg.architectures = d.get("architectures")
    t0 = time.time()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.eval()
    torch.cuda.synchronize()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: {type(model).__name__}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters made on the GPU in {time.time() - t0:.1f} s")
    print("| transformers test | tok/s |\n|---|---:|")
    g = torch.Generator(device="cuda").manual_seed(0)
    for b in [int(x) for x in args.batches.split(",")]:
        ids = torch.randint(0, cfg.vocab_size, (b, args.prompt), device="cuda", generator=g)
        kw = dict(max_new_tokens=args.gen, min_new_tokens=args.gen, do_sample=False, pad_token_id=0)
        with torch.no_grad():
            model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False, pad_token_id=0)  # warm-up
            torch.cuda.synchronize()
            t = time.time()
            model.generate(ids, **kw)
            torch.cuda.synchronize()
            dt = time.time() - t
        print(f"| tg{args.gen} x {b} sequences | {b * args.gen / dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train the bundled demo model models/shakespeare-moe and write tests/fixtures/demo/.

A small DeepSeek-V3-style MoE (DeepseekV3ForCausalLM: MLA with q_lora_rank, sigmoid routing with
e_score_correction_bias, group-limited top-2 of 8 routed experts, 1 shared expert, first layer
dense) trained on the first 90% (by bytes) of tinyshakespeare.txt with a byte-level BPE tokenizer
(vocab 2000) trained on the same bytes. The router bias is updated without an auxiliary loss
(DeepSeek-V3 section 2.1.2): after each step, each layer's e_score_correction_bias moves by a
fixed step toward balanced expert load.

The corpus is small (about 350k tokens) for 6.2M parameters, so training is short and regularized:
AdamW (weight decay 0.1), bf16 autocast, context 256, batch 32, 1400 steps with a cosine schedule,
dropout 0.3 on the embedding and on every attention / MLP branch (added by forward hooks), and the
checkpoint with the lowest loss on the first 96 held-out windows is the one saved (every 100 steps).

Outputs
  models/shakespeare-moe/     config.json, generation_config.json, model.safetensors (bf16),
                              tokenizer.json, tokenizer_config.json
  tests/fixtures/demo/        reference.json (greedy continuation + held-out perplexity computed in
                              float32 from the saved bf16 weights), heldout.txt, heldout_head.txt

Needs a CUDA GPU with torch, transformers 5.x, tokenizers, safetensors:
    python3 tools/train_demo_model.py --corpus .carry/tinyshakespeare.txt
`--reference-only` recomputes tests/fixtures/demo from an existing models/shakespeare-moe.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

WINDOW = 256
STRIDE = 128
PROMPT = "ROMEO:\nWhat light"
N_GREEDY = 32
HEAD_BYTES = 2000
EOT = "<|endoftext|>"



def save_model(model, path):
    """save_pretrained as safetensors (transformers 5 may no longer take safe_serialization)."""
    try:
        model.save_pretrained(path, safe_serialization=True)
    except TypeError:
        model.save_pretrained(path)

def split_corpus(data):
    """First 90% by bytes for training, the rest held out: cut = floor(0.9 * len)."""
    cut = (len(data) * 9) // 10
    return data[:cut], data[cut:]


def text_chunks(text, size=8192):
    buf, n = [], 0
    for line in text.splitlines(keepends=True):
        buf.append(line)
        n += len(line)
        if n >= size:
            yield "".join(buf)
            buf, n = [], 0
    if buf:
        yield "".join(buf)


def train_tokenizer(train_text, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(text_chunks(train_text), trainer)
    return tok


def demo_config(vocab_size, eot_id):
    from transformers import DeepseekV3Config
    return DeepseekV3Config(
        vocab_size=vocab_size, hidden_size=256, intermediate_size=512, moe_intermediate_size=192,
        num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
        n_shared_experts=1, n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, norm_topk_prob=True, first_k_dense_replace=1,
        q_lora_rank=128, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
        max_position_embeddings=512, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rope_interleave=True, rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.02,
        bos_token_id=eot_id, eos_token_id=eot_id, pad_token_id=None, attention_dropout=0.0,
    )


# ----------------------------------------------------------------------------------------------
# Aux-loss-free balancing: count the experts each router picks, nudge the correction bias.

class LoadTracker:
    def __init__(self, model, cfg):
        import torch
        self.cfg = cfg
        self.gates = []
        self.counts = {}
        self.handles = []
        for name, mod in model.named_modules():
            if hasattr(mod, "e_score_correction_bias") and isinstance(mod.e_score_correction_bias, torch.Tensor):
                self.gates.append((name, mod))
                self.handles.append(mod.register_forward_hook(self._hook(name, mod)))
        self.enabled = True

    def _selection(self, mod, out):
        import torch
        cfg = self.cfg
        if isinstance(out, (tuple, list)) and out[0].dtype in (torch.int64, torch.int32):
            return out[0]
        logits = out[0] if isinstance(out, (tuple, list)) else out
        e = cfg.n_routed_experts
        s = logits.detach().float().view(-1, e).sigmoid() + mod.e_score_correction_bias.float()
        g = s.view(-1, cfg.n_group, e // cfg.n_group).topk(2, dim=-1)[0].sum(-1)
        gi = g.topk(cfg.topk_group, dim=-1)[1]
        gm = torch.zeros_like(g).scatter_(1, gi, 1.0)
        mask = gm.unsqueeze(-1).expand(-1, cfg.n_group, e // cfg.n_group).reshape(-1, e)
        s = s.masked_fill(mask == 0, 0.0)
        return s.topk(cfg.num_experts_per_tok, dim=-1)[1]

    def _hook(self, name, mod):
        import torch

        def fn(module, inputs, out):
            if not self.enabled or not module.training:
                return
            with torch.no_grad():
                idx = self._selection(module, out)
                c = torch.bincount(idx.reshape(-1), minlength=self.cfg.n_routed_experts).float()
                self.counts[name] = self.counts.get(name, 0) + c
        return fn

    def update(self, rate):
        import torch
        loads = {}
        with torch.no_grad():
            for name, mod in self.gates:
                c = self.counts.get(name)
                if c is None:
                    continue
                mod.e_score_correction_bias.add_(rate * torch.sign(c.mean() - c).to(mod.e_score_correction_bias.dtype))
                loads[name] = c
        self.counts = {}
        return loads


# ----------------------------------------------------------------------------------------------

def sliding_window_nll(model, ids, device, window=WINDOW, stride=STRIDE):
    """Sum of NLL and count under the sliding-window definition shared with moe-perplexity.

    Windows start at 0, S, 2S, ...; window [begin, end) scores positions j in
    [max(prev_end, begin + 1), end) with the logits at j - 1; stop once end == N.
    """
    import torch
    n = len(ids)
    t = torch.tensor(ids, dtype=torch.long, device=device)
    total, count, prev_end, begin = 0.0, 0, 0, 0
    while n > 1:
        end = min(begin + window, n)
        lo = max(prev_end, begin + 1)
        if lo < end:
            with torch.no_grad():
                logits = model(input_ids=t[begin:end][None], use_cache=False).logits[0].float()
            rows = torch.arange(lo - 1 - begin, end - 1 - begin, device=device)
            lp = torch.log_softmax(logits[rows], dim=-1)
            total += float(-lp.gather(1, t[lo:end, None]).double().sum())
            count += end - lo
        prev_end = end
        if end == n:
            break
        begin += stride
    return total, count


def greedy(model, prompt_ids, n, device):
    import torch
    ids = list(prompt_ids)
    out, margins = [], []
    for _ in range(n):
        with torch.no_grad():
            last = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0, -1].float()
        top2 = last.topk(2)
        out.append(int(top2.indices[0]))
        margins.append(float(top2.values[0] - top2.values[1]))
        ids.append(out[-1])
    return out, margins


def write_reference(model_dir, ref_dir, heldout_text, device):
    import torch
    import transformers
    from tokenizers import Tokenizer
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    try:
        model = transformers.DeepseekV3ForCausalLM.from_pretrained(model_dir, experts_implementation="eager", **kw)
    except Exception:
        model = transformers.DeepseekV3ForCausalLM.from_pretrained(model_dir, **kw)
    model.to(device).eval()

    prompt_ids = tok.encode(PROMPT, add_special_tokens=False).ids
    cont, margins = greedy(model, prompt_ids, N_GREEDY, device)
    print(f"greedy continuation of {PROMPT!r}: {tok.decode(prompt_ids + cont)!r}")
    print(f"  min greedy margin {min(margins):.4g}")
    if min(margins) < 1e-3:
        print("  WARNING: a greedy step has top-2 logits within 1e-3; a float32 re-implementation may "
              "pick the other token. Prefer another run (seed, steps) for the committed model.")

    t0 = time.time()
    held_ids = tok.encode(heldout_text, add_special_tokens=False).ids
    nll, cnt = sliding_window_nll(model, held_ids, device)
    ppl = math.exp(nll / cnt)
    head_text = heldout_text.encode("utf-8")[:HEAD_BYTES].decode("utf-8")
    head_ids = tok.encode(head_text, add_special_tokens=False).ids
    hnll, hcnt = sliding_window_nll(model, head_ids, device)
    head_ppl = math.exp(hnll / hcnt)
    print(f"held-out: {len(held_ids)} tokens, {cnt} scored, ppl {ppl:.4f}; "
          f"head ({HEAD_BYTES} bytes): {len(head_ids)} tokens, ppl {head_ppl:.4f} ({time.time() - t0:.1f}s)")

    os.makedirs(ref_dir, exist_ok=True)
    ref = {
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "greedy_continuation": cont,
        "heldout_ppl": ppl,
        "heldout_tokens": len(held_ids),
        "heldout_head_ppl": head_ppl,
        "heldout_head_tokens": len(head_ids),
        "window": WINDOW,
        "stride": STRIDE,
        "transformers": transformers.__version__,
        "computed_as": "bf16 weights upcast to float32, eager attention, float32 matmuls (no TF32)",
    }
    with open(os.path.join(ref_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    with open(os.path.join(ref_dir, "heldout.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(heldout_text)
    with open(os.path.join(ref_dir, "heldout_head.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(head_text)
    return model, tok


def check_hf_tokenizer(model_dir, tok):
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(model_dir)
    a = hf(PROMPT, add_special_tokens=False)["input_ids"]
    b = tok.encode(PROMPT, add_special_tokens=False).ids
    print(f"AutoTokenizer: {type(hf).__name__}, bos {hf.bos_token!r} eos {hf.eos_token!r}, "
          f"prompt ids {'match' if a == b else 'DIFFER'} {a}")


def sample_text(model, tok, device, prompt="ROMEO:\n", n=300):
    import torch
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False).ids], device=device)
    torch.manual_seed(1234)
    with torch.no_grad():
        s = model.generate(ids, max_new_tokens=n, do_sample=True, temperature=0.8, top_k=0, top_p=1.0)
        g = model.generate(ids, max_new_tokens=n, do_sample=False)
    print("---- sample, temperature 0.8 ----")
    print(tok.decode(s[0].tolist()))
    print("---- greedy ----")
    print(tok.decode(g[0].tolist()))
    print("----")


def add_residual_dropout(model, p):
    """Dropout on the embedding output and on every attention / MLP branch before the residual add.

    transformers' DeepseekV3 has no hidden dropout of its own; forward hooks add it for training
    only (they are removed before saving, and the saved model is plain DeepseekV3).
    """
    import torch.nn.functional as F
    if p <= 0:
        return []

    def drop(module, inputs, out):
        if not module.training:
            return out
        if isinstance(out, tuple):
            return (F.dropout(out[0], p, True),) + tuple(out[1:])
        return F.dropout(out, p, True)

    handles = [model.model.embed_tokens.register_forward_hook(drop)]
    for layer in model.model.layers:
        handles.append(layer.self_attn.register_forward_hook(drop))
        handles.append(layer.mlp.register_forward_hook(drop))
    print(f"residual dropout p={p} on {len(handles)} modules")
    return handles


def train(args, train_text, held_text):
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import DeepseekV3ForCausalLM

    device = "cuda"
    torch.manual_seed(0)
    t_start = time.time()
    tok = train_tokenizer(train_text, args.vocab)
    eot_id = tok.token_to_id(EOT)
    vocab = tok.get_vocab_size()
    train_ids = torch.tensor(tok.encode(train_text, add_special_tokens=False).ids, dtype=torch.long)
    val_ids = torch.tensor(tok.encode(held_text, add_special_tokens=False).ids, dtype=torch.long)
    print(f"tokenizer: vocab {vocab}, {EOT}={eot_id}; train {len(train_ids)} tokens, held-out {len(val_ids)} "
          f"({time.time() - t_start:.1f}s)")

    cfg = demo_config(vocab, eot_id)
    model = DeepseekV3ForCausalLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters ({2 * n_params / 1e6:.1f} MB in bf16)")
    model.train()

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    tracker = LoadTracker(model, cfg)
    print(f"router gates tracked for bias balancing: {len(tracker.gates)}")
    dropout_handles = add_residual_dropout(model, args.dropout)

    gen = torch.Generator().manual_seed(0)
    ctx, bsz = args.context, args.batch

    def batch(src):
        starts = torch.randint(0, len(src) - ctx - 1, (bsz,), generator=gen)
        x = torch.stack([src[s:s + ctx + 1] for s in starts.tolist()]).to(device, non_blocking=True)
        return x[:, :-1], x[:, 1:]

    val_windows = [val_ids[i:i + ctx + 1] for i in range(0, len(val_ids) - ctx - 1, ctx)][:96]
    val_batch = torch.stack(val_windows).to(device)

    def evaluate():
        model.eval()
        tracker.enabled = False
        losses = []
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            for i in range(0, len(val_batch), 32):
                xb = val_batch[i:i + 32]
                logits = model(input_ids=xb[:, :-1], use_cache=False).logits
                losses.append(F.cross_entropy(logits.float().reshape(-1, vocab), xb[:, 1:].reshape(-1)).item())
        tracker.enabled = True
        model.train()
        return sum(losses) / len(losses)

    warmup = 100
    total_steps = args.max_steps
    step, t0 = 0, time.time()
    best = (float("inf"), None, 0)
    train_loss_ema = None
    history = []
    t_mark = None
    while step < total_steps:
        if step == 20:
            t_mark = time.time()
        if step == 80:
            # Steps 20..80 run warm; budget the rest of the time (evaluation adds a few percent).
            per_step = (time.time() - t_mark) / 60 * 1.05
            left = args.train_seconds - (time.time() - t0)
            total_steps = min(args.max_steps, step + int(left / per_step))
            print(f"{per_step * 1000:.1f} ms/step -> {total_steps} steps in {args.train_seconds}s")
        lr = args.lr * min(1.0, (step + 1) / warmup)
        if step >= warmup and total_steps > warmup:
            frac = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train_ids)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loads = tracker.update(args.bias_rate)
        train_loss_ema = loss.item() if train_loss_ema is None else 0.95 * train_loss_ema + 0.05 * loss.item()
        step += 1
        if step % args.eval_every == 0 or step == total_steps:
            val = evaluate()
            history.append((step, train_loss_ema, val))
            imbalance = ""
            if loads:
                worst = max(float(c.max() / c.mean()) for c in loads.values())
                imbalance = f", max expert load / mean {worst:.2f}"
            print(f"step {step:5d}  lr {lr:.2e}  train {train_loss_ema:.4f}  val {val:.4f}  "
                  f"{time.time() - t0:.0f}s{imbalance}", flush=True)
            if val < best[0]:
                best = (val, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
    train_seconds = time.time() - t0
    print(f"trained {step} steps in {train_seconds:.1f}s; best val {best[0]:.4f} at step {best[2]}")
    model.load_state_dict(best[1])
    for h in tracker.handles + dropout_handles:
        h.remove()
    for name, mod in tracker.gates:
        b = mod.e_score_correction_bias
        print(f"  {name}.e_score_correction_bias = {[round(float(v), 4) for v in b]}")

    # Save: float32 to a scratch folder, reload as bf16 (transformers keeps what it keeps in f32), save.
    model.eval()
    scratch = tempfile.mkdtemp(prefix="demo_f32_")
    save_model(model, scratch)
    bf = DeepseekV3ForCausalLM.from_pretrained(scratch, dtype=torch.bfloat16)
    bf.generation_config.bos_token_id = eot_id
    bf.generation_config.eos_token_id = eot_id
    out = args.out_model
    if os.path.exists(out):
        shutil.rmtree(out)
    save_model(bf, out)
    shutil.rmtree(scratch, ignore_errors=True)
    tc = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": None,
        "pad_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": cfg.max_position_embeddings,
        "added_tokens_decoder": {str(eot_id): {"content": EOT, "lstrip": False, "normalized": False,
                                                "rstrip": False, "single_word": False, "special": True}},
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)
        f.write("\n")
    # tokenizer.json exactly as the tokenizers library writes it
    tok.save(os.path.join(out, "tokenizer.json"))
    for fn in sorted(os.listdir(out)):
        print(f"  {fn:28s} {os.path.getsize(os.path.join(out, fn)):10d} bytes")
    summary = {"train_seconds": round(train_seconds, 1), "steps": step, "best_step": best[2],
               "final_train_loss_ema": history[-1][1] if history else None,
               "best_val_loss": best[0], "history": history, "parameters": n_params,
               "transformers": transformers.__version__}
    print("TRAIN SUMMARY " + json.dumps(summary))
    return summary


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=os.path.join(root, ".carry", "tinyshakespeare.txt"))
    ap.add_argument("--out-model", default=os.path.join(root, "models", "shakespeare-moe"))
    ap.add_argument("--out-ref", default=os.path.join(root, "tests", "fixtures", "demo"))
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--bias-rate", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--train-seconds", type=float, default=200)
    ap.add_argument("--max-steps", type=int, default=1400)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--reference-only", action="store_true")
    args = ap.parse_args()

    with open(args.corpus, "rb") as f:
        data = f.read()
    train_bytes, held_bytes = split_corpus(data)
    train_text = train_bytes.decode("utf-8")
    held_text = held_bytes.decode("utf-8")
    print(f"corpus {len(data)} bytes: train {len(train_bytes)}, held-out {len(held_bytes)}")

    import torch
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, cuda {torch.cuda.is_available()}")
    if not args.reference_only:
        train(args, train_text, held_text)
    model, tok = write_reference(args.out_model, args.out_ref, held_text, "cuda")
    try:
        check_hf_tokenizer(args.out_model, tok)
    except Exception as e:
        print(f"AutoTokenizer check failed: {type(e).__name__}: {e}")
    try:
        sample_text(model, tok, "cuda")
    except Exception as e:
        print(f"sampling failed: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

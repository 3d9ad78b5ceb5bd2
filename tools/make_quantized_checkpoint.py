#!/usr/bin/env python3
"""Writes a Hugging Face checkpoint folder as the quantized checkpoints the hub ships (Python 3,
standard library only; no PyTorch needed):

  fp8    DeepSeek-V3/R1 / Kimi K2 style: every linear weight (rank 2, "*.weight", except the
         embedding, lm_head, the router "mlp.gate" and norms) as float8_e4m3fn ("F8_E4M3") with
         "<name>_scale_inv" (F32, [ceil(rows/128), ceil(cols/128)]), quantization_config
         {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128],
         "activation_scheme": "dynamic"}. Per tile s = amax / 448 (f32), q = e4m3(x / s) rounded
         to nearest even, as DeepSeek's weight_quant does in f32.
  mxfp4  GPT-OSS style: "*.mlp.experts.gate_up_proj" [E, D, 2F] and "down_proj" [E, F, D] (the
         bf16 bank) as "<name>_blocks" (U8, [E, out, in/32, 16], element 2k in the low nibble of
         byte k) and "<name>_scales" (U8 E8M0, [E, out, in/32]): the transpose, as transformers
         stores it; per 32 values the OCP MX scale 2^ceil(log2(amax / 6)) and the nearest E2M1
         value (ties to the even code).

  make_quantized_checkpoint.py IN OUT --format fp8|mxfp4 [--dequantized DIR]

--dequantized also writes DIR: the same model in f32 with the dequantized weights (what the
quantized checkpoint means), for comparisons. Other files of IN (tokenizer, generation config)
are copied. The C++ test tests/quant/test_checkpoint.cpp makes the same checkpoints at test time.
"""
import argparse
import array
import bisect
import json
import math
import shutil
import struct
import sys
from pathlib import Path


def read_safetensors(path):
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[base + begin:base + end])
    return out


def read_folder(folder):
    single = folder / "model.safetensors"
    if single.exists():
        return read_safetensors(single)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(read_safetensors(folder / shard))
    return tensors


def to_floats(dtype, raw):
    if dtype == "F32":
        return array.array("f", raw)
    if dtype == "BF16":
        halves = array.array("H", raw)
        return array.array("f", struct.pack(f"<{len(halves)}I", *[h << 16 for h in halves]))
    if dtype == "F16":
        return array.array("f", struct.unpack(f"<{len(raw) // 2}e", raw))
    return None


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for b in blobs:
            f.write(b)


# ---- e4m3fn ------------------------------------------------------------------------------------

def e4m3_value(code):
    mag, e, m = code & 0x7F, (code >> 3) & 0xF, code & 7
    if mag == 0x7F:
        return math.nan
    v = m * 2.0 ** -9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
    return -v if code & 0x80 else v


E4M3_POSITIVE = [e4m3_value(c) for c in range(0x7F)]  # codes 0..0x7E, increasing


def e4m3_code(x):
    a = abs(x)
    i = bisect.bisect_left(E4M3_POSITIVE, a)
    if i >= len(E4M3_POSITIVE):
        code = 0x7E  # saturate (never reached: |x / s| <= 448)
    elif E4M3_POSITIVE[i] == a or i == 0:
        code = i
    else:
        lo, hi = E4M3_POSITIVE[i - 1], E4M3_POSITIVE[i]
        code = i - 1 if a - lo < hi - a else i if a - lo > hi - a else (i - 1 if (i - 1) % 2 == 0 else i)
    return code | (0x80 if math.copysign(1.0, x) < 0 else 0)


def fp8_selected(name, shape):
    return (len(shape) == 2 and name.endswith(".weight") and "embed_tokens" not in name and "lm_head" not in name
            and not name.endswith(".mlp.gate.weight") and "norm" not in name)


def quantize_fp8(name, shape, x, out, deq):
    rows, cols, t = shape[0], shape[1], 128
    tr, tc = (rows + t - 1) // t, (cols + t - 1) // t
    codes = bytearray(rows * cols)
    scales = array.array("f", [0.0] * (tr * tc))
    y = array.array("f", x)
    for i in range(tr):
        for j in range(tc):
            r0, r1, c0, c1 = i * t, min(rows, (i + 1) * t), j * t, min(cols, (j + 1) * t)
            amax = max(abs(x[r * cols + c]) for r in range(r0, r1) for c in range(c0, c1))
            s = f32(amax / 448.0) if amax > 0 else 1.0
            scales[i * tc + j] = s
            for r in range(r0, r1):
                for c in range(c0, c1):
                    k = r * cols + c
                    q = e4m3_code(f32(x[k] / s))
                    codes[k] = q
                    y[k] = f32(e4m3_value(q) * s)
    out[name] = ("F8_E4M3", shape, bytes(codes))
    out[name + "_scale_inv"] = ("F32", [tr, tc], scales.tobytes())
    deq[name] = ("F32", shape, y.tobytes())


# ---- MXFP4 -------------------------------------------------------------------------------------

FP4 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def mxfp4_block(values):
    amax = max(abs(v) for v in values)
    e = max(-127, min(127, math.ceil(math.log2(amax / 6.0)))) if amax > 0 else -127
    scale = 2.0 ** e
    codes, deq = [], []
    for v in values:
        a = abs(v) / scale
        best = 0
        for k in range(1, 8):
            dk, db = abs(FP4[k] - a), abs(FP4[best] - a)
            if dk < db or (dk == db and k % 2 == 0):
                best = k
        code = best | (8 if v < 0 and best != 0 else 0)
        codes.append(code)
        deq.append(-FP4[best] * scale if code & 8 else FP4[best] * scale)
    packed = bytes(codes[2 * k] | codes[2 * k + 1] << 4 for k in range(16))
    return packed, e + 127, deq


def quantize_mxfp4(name, shape, x, out, deq):
    E, n_in, n_out = shape
    if n_in % 32:
        sys.exit(f"{name}: {n_in} inputs are not whole MXFP4 blocks of 32")
    G = n_in // 32
    blocks, scales = bytearray(), bytearray()
    y = array.array("f", x)
    for e in range(E):
        for o in range(n_out):
            for g in range(G):
                idx = [(e * n_in + g * 32 + j) * n_out + o for j in range(32)]
                packed, s, d = mxfp4_block([x[i] for i in idx])
                blocks += packed
                scales.append(s)
                for i, v in zip(idx, d):
                    y[i] = v
    out[name + "_blocks"] = ("U8", [E, n_out, G, 16], bytes(blocks))
    out[name + "_scales"] = ("U8", [E, n_out, G], bytes(scales))
    deq[name] = ("F32", shape, y.tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--format", choices=["fp8", "mxfp4"], required=True)
    p.add_argument("--dequantized", type=Path)
    a = p.parse_args()
    tensors = read_folder(a.input)
    config = json.loads((a.input / "config.json").read_text())
    out, deq = {}, {}
    for name, (dtype, shape, raw) in tensors.items():
        x = to_floats(dtype, raw)
        if a.format == "fp8" and x is not None and fp8_selected(name, shape):
            quantize_fp8(name, shape, x, out, deq)
        elif a.format == "mxfp4" and x is not None and len(shape) == 3 and (
                name.endswith(".mlp.experts.gate_up_proj") or name.endswith(".mlp.experts.down_proj")):
            quantize_mxfp4(name, shape, x, out, deq)
        else:
            out[name] = (dtype, shape, raw)
            deq[name] = ("F32", shape, x.tobytes()) if x is not None else (dtype, shape, raw)
    if a.format == "fp8":
        qc = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128], "activation_scheme": "dynamic"}
    else:
        qc = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                   "model.embed_tokens", "lm_head"]}
    for folder, tensor_set, quantized in [(a.output, out, True), (a.dequantized, deq, False)]:
        if folder is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for f in a.input.iterdir():
            if f.is_file() and not f.name.startswith("model.safetensors") and f.name != "config.json":
                shutil.copy(f, folder / f.name)
        c = dict(config, quantization_config=qc) if quantized else dict(config)
        if not quantized:
            c["dtype"] = "float32"
        (folder / "config.json").write_text(json.dumps(c, indent=2) + "\n")
        write_safetensors(folder / "model.safetensors", tensor_set)
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()

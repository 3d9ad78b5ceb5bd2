#!/usr/bin/env python3
"""Writes the malformed-checkpoint corpus under tests/fixtures/malformed/ (safetensors and shard
index cases, loader "tensors").

Each case is a tiny checkpoint folder (config.json plus safetensors files and/or an index) that
breaks exactly one rule, and expected.json = {"loader": "tensors", "code": "kFormat",
"contains": [...]}: tests/io/test_malformed_corpus.cpp opens the folder with
TensorStore::open_folder and requires a moe::Error with that code whose message contains every
string of "contains". Python 3 standard library only; the output is deterministic, so re-running
it on a clean tree gives no diff. Only this script's own case folders are rewritten: cases that
other tools add to the same folder (e.g. loader "model") are left alone.

Usage: python3 tools/make_malformed_corpus.py [output_dir]
"""

import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "malformed")

# A small but complete config, so each folder looks like a real checkpoint. The "tensors" loader
# does not read it.
CONFIG = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "vocab_size": 32,
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}

W = "model.layers.0.mlp.gate.weight"  # the tensor most cases are about
N = "model.norm.weight"


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def header_text(obj):
    """JSON with insertion order kept (duplicates are spliced in by hand where needed)."""
    return json.dumps(obj, separators=(",", ":"))


def safetensors(header, data=b"", pad=True, length=None):
    """u64 LE header length + header bytes (space padded to 8 like the reference writer) + data."""
    if isinstance(header, str):
        header = header.encode("utf-8")
    if pad:
        header = header + b" " * ((8 - (8 + len(header)) % 8) % 8)
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def f32_bytes(count, start=0.0):
    return b"".join(struct.pack("<f", start + 0.25 * i) for i in range(count))


def valid_file(tensors):
    """A valid safetensors file from [(name, dtype_size, dtype, shape)], tensors back to back."""
    header, data, off = {}, b"", 0
    for name, dtype, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        size = count * {"F32": 4, "BF16": 2, "F16": 2, "I32": 4}[dtype]
        header[name] = entry(dtype, shape, off, off + size)
        data += bytes((i * 7 + off) % 251 for i in range(size))
        off += size
    return safetensors(header_text(header), data)


CASES = {}


def case(name, code, contains, files):
    assert name not in CASES, name
    CASES[name] = {"expected": {"loader": "tensors", "code": code, "contains": contains}, "files": files}


ST = "model.safetensors"
IDX = "model.safetensors.index.json"

# ---- the 8-byte header length ----------------------------------------------------------------
case("empty_file", "kFormat", [ST, "0 bytes"], {ST: b""})
case("truncated_header_length", "kFormat", [ST, "5 bytes", "8-byte header length"], {ST: b"\x10\x00\x00\x00\x00"})
case("header_length_zero", "kFormat", [ST, "header length 0"], {ST: struct.pack("<Q", 0) + b"{}"})
case("header_length_one", "kFormat", [ST, "header length 1"], {ST: struct.pack("<Q", 1) + b"{}"})
case("header_length_past_end", "kFormat", [ST, "header length 4096", "file size"],
     {ST: safetensors(header_text({W: entry("F32", [2], 0, 8)}), f32_bytes(2), length=4096)})
case("header_length_huge", "kFormat", [ST, "18446744073709551615", "limit"],
     {ST: safetensors("{}", length=0xFFFFFFFFFFFFFFFF)})
case("header_length_over_limit", "kFormat", [ST, "header length 100000001", "limit"],
     {ST: safetensors("{}", length=100_000_001)})

# ---- the JSON header ---------------------------------------------------------------------------
case("header_not_object", "kFormat", [ST, "does not start with '{'"],
     {ST: safetensors(json.dumps([W, "F32"]))})
case("header_leading_space", "kFormat", [ST, "does not start with '{'", "0x20"],
     {ST: safetensors(" {}")})
case("header_invalid_json", "kFormat", [ST, "header", "invalid JSON"],
     {ST: safetensors('{"%s":{"dtype":"F32","shape":[2],"data_offsets":[0,8]' % W, f32_bytes(2))})
case("header_trailing_garbage", "kFormat", [ST, "invalid JSON"],
     {ST: safetensors("{}}")})
case("header_invalid_utf8", "kFormat", [ST, "UTF-8", "0xff"],
     {ST: safetensors(b'{"model.layers.0.\xff.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32_bytes(2))})
case("header_overlong_utf8", "kFormat", [ST, "UTF-8", "0xc0"],
     {ST: safetensors(b'{"a\xc0\xafb":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32_bytes(2))})
case("duplicate_tensor_names", "kFormat", [ST, "duplicate key", W],
     {ST: safetensors('{"%s":%s,"%s":%s}' % (W, header_text(entry("F32", [2], 0, 8)),
                                              W, header_text(entry("F32", [2], 8, 16))), f32_bytes(4))})
case("duplicate_field_in_entry", "kFormat", [ST, "duplicate key \"shape\"", W],
     {ST: safetensors('{"%s":{"dtype":"F32","shape":[2],"shape":[1],"data_offsets":[0,8]}}' % W, f32_bytes(2))})
case("metadata_non_string_value", "kFormat", [ST, "__metadata__", "format", "number"],
     {ST: safetensors(header_text({"__metadata__": {"format": 1}, W: entry("F32", [2], 0, 8)}), f32_bytes(2))})
case("metadata_not_object", "kFormat", [ST, "__metadata__", "array"],
     {ST: safetensors(header_text({"__metadata__": ["pt"], W: entry("F32", [2], 0, 8)}), f32_bytes(2))})
# Deep nesting must not overflow the stack anywhere (parse, error message, destruction).
case("header_deep_nesting", "kFormat", [ST, W, "nests deeper than 3 levels"],
     {ST: safetensors('{"%s":%s%s}' % (W, "[" * 100000, "]" * 100000))})
case("empty_tensor_name", "kFormat", [ST, "empty name"],
     {ST: safetensors(header_text({"": entry("F32", [2], 0, 8)}), f32_bytes(2))})
case("tensor_entry_not_object", "kFormat", [ST, W, "must be an object"],
     {ST: safetensors(header_text({W: ["F32", [2], [0, 8]]}), f32_bytes(2))})

# ---- one tensor entry --------------------------------------------------------------------------
case("missing_dtype", "kFormat", [ST, W, "missing \"dtype\""],
     {ST: safetensors(header_text({W: {"shape": [2], "data_offsets": [0, 8]}}), f32_bytes(2))})
case("unknown_dtype", "kFormat", [ST, W, "unknown dtype \"F24\""],
     {ST: safetensors(header_text({W: entry("F24", [2], 0, 8)}), f32_bytes(2))})
case("dtype_not_string", "kFormat", [ST, W, "dtype must be a string"],
     {ST: safetensors(header_text({W: entry(32, [2], 0, 8)}), f32_bytes(2))})
case("shape_negative", "kFormat", [ST, W, "shape", "-2"],
     {ST: safetensors(header_text({W: entry("F32", [-2], 0, 8)}), f32_bytes(2))})
case("shape_non_integer", "kFormat", [ST, W, "shape", "2.5"],
     {ST: safetensors(header_text({W: entry("F32", [2.5], 0, 8)}), f32_bytes(2))})
case("shape_not_array", "kFormat", [ST, W, "shape must be an array"],
     {ST: safetensors(header_text({W: entry("F32", "2", 0, 8)}), f32_bytes(2))})
case("shape_product_overflow", "kFormat", [ST, W, "overflows", "[1099511627776, 1099511627776]"],
     {ST: safetensors(header_text({W: entry("F32", [2 ** 40, 2 ** 40], 0, 8)}), f32_bytes(2))})
case("shape_bytes_overflow", "kFormat", [ST, W, "overflows", "BF16"],
     {ST: safetensors(header_text({W: entry("BF16", [2 ** 63], 0, 8)}), f32_bytes(2))})
case("shape_span_mismatch", "kFormat", [ST, W, "shape [3, 4]", "needs 48 bytes", "data_offsets [0, 40]"],
     {ST: safetensors(header_text({W: entry("F32", [3, 4], 0, 40)}), f32_bytes(10))})
case("missing_data_offsets", "kFormat", [ST, W, "missing \"data_offsets\""],
     {ST: safetensors(header_text({W: {"dtype": "F32", "shape": [2]}}), f32_bytes(2))})
case("data_offsets_wrong_arity", "kFormat", [ST, W, "data_offsets must be an array [begin, end]"],
     {ST: safetensors(header_text({W: {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]}}), f32_bytes(2))})
case("data_offsets_negative", "kFormat", [ST, W, "data_offsets", "-8"],
     {ST: safetensors(header_text({W: entry("F32", [2], -8, 0)}), f32_bytes(2))})
case("offsets_reversed", "kFormat", [ST, W, "data_offsets [8, 0]"],
     {ST: safetensors(header_text({W: entry("F32", [2], 8, 0)}), f32_bytes(2))})
case("offset_past_end", "kFormat", [ST, W, "data_offsets [0, 64]", "past the data buffer of 8 bytes"],
     {ST: safetensors(header_text({W: entry("F32", [16], 0, 64)}), f32_bytes(2))})

# ---- the tensors together ----------------------------------------------------------------------
case("first_tensor_not_at_zero", "kFormat", [ST, W, "must begin at 0"],
     {ST: safetensors(header_text({W: entry("F32", [2], 8, 16)}), f32_bytes(4))})
case("gap_between_tensors", "kFormat", [ST, N, "gap of 4 bytes", W],
     {ST: safetensors(header_text({W: entry("F32", [2], 0, 8), N: entry("F32", [2], 12, 20)}), f32_bytes(5))})
case("overlapping_tensors", "kFormat", [ST, "overlap", W, N],
     {ST: safetensors(header_text({W: entry("F32", [2], 0, 8), N: entry("F32", [2], 4, 12)}), f32_bytes(3))})
case("aliased_tensors", "kFormat", [ST, "overlap"],
     {ST: safetensors(header_text({W: entry("F32", [2], 0, 8), N: entry("F32", [2], 0, 8)}), f32_bytes(2))})
case("trailing_bytes", "kFormat", [ST, "4 trailing bytes"],
     {ST: safetensors(header_text({W: entry("F32", [2], 0, 8)}), f32_bytes(3))})

# ---- the folder and the shard index ------------------------------------------------------------
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"
E = "model.embed_tokens.weight"
shard1 = valid_file([(E, "F32", [4, 2]), (N, "F32", [2])])
shard2 = valid_file([(W, "F32", [4, 2])])
good_map = {E: SHARD1, N: SHARD1, W: SHARD2}


def index(weight_map, metadata=None):
    return json.dumps({"metadata": metadata if metadata is not None else {"total_size": 104},
                       "weight_map": weight_map}, indent=2).encode()


case("no_weights", "kIo", ["no model.safetensors or model.safetensors.index.json"], {})
case("index_missing_shard", "kIo", [IDX, "model-00003-of-00003.safetensors", W, "does not exist"],
     {SHARD1: shard1, IDX: index({E: SHARD1, N: SHARD1, W: "model-00003-of-00003.safetensors"})})
case("index_parent_path", "kFormat", [IDX, W, "\"..\"", "../" + SHARD2],
     {SHARD1: shard1, IDX: index({E: SHARD1, N: SHARD1, W: "../" + SHARD2})})
case("index_parent_path_inside", "kFormat", [IDX, W, "\"..\""],
     {SHARD1: shard1, SHARD2: shard2, IDX: index({E: SHARD1, N: SHARD1, W: "sub/../" + SHARD2})})
case("index_absolute_path", "kFormat", [IDX, W, "absolute path", "/etc/passwd"],
     {SHARD1: shard1, IDX: index({E: SHARD1, N: SHARD1, W: "/etc/passwd"})})
case("index_tensor_missing_from_shard", "kFormat", [IDX, "model.layers.1.mlp.gate.weight", SHARD2, "does not contain it"],
     {SHARD1: shard1, SHARD2: shard2, IDX: index(dict(good_map, **{"model.layers.1.mlp.gate.weight": SHARD2}))})
case("index_shard_tensor_unlisted", "kFormat", [IDX, SHARD1, N, "does not list"],
     {SHARD1: shard1, SHARD2: shard2, IDX: index({E: SHARD1, W: SHARD2})})
case("index_tensor_in_two_shards", "kFormat", [IDX, W, SHARD1, "assigns to"],
     {SHARD1: valid_file([(E, "F32", [4, 2]), (N, "F32", [2]), (W, "F32", [4, 2])]), SHARD2: shard2,
      IDX: index(good_map)})
case("index_weight_map_not_object", "kFormat", [IDX, "weight_map must be an object", "array"],
     {SHARD1: shard1, SHARD2: shard2, IDX: json.dumps({"weight_map": [[E, SHARD1]]}).encode()})
case("index_weight_map_missing", "kFormat", [IDX, "weight_map is missing"],
     {SHARD1: shard1, SHARD2: shard2, IDX: json.dumps({"metadata": {"total_size": 104}}).encode()})
case("index_shard_not_string", "kFormat", [IDX, W, "number"],
     {SHARD1: shard1, SHARD2: shard2, IDX: index({E: SHARD1, N: SHARD1, W: 2})})
case("index_invalid_json", "kFormat", [IDX, "invalid JSON", "line 3"],
     {SHARD1: shard1, SHARD2: shard2, IDX: b'{\n  "weight_map": {\n    "a": "b",,\n  }\n}\n'})
case("index_duplicate_tensor", "kFormat", [IDX, "duplicate key", W, "weight_map"],
     {SHARD1: shard1, SHARD2: shard2,
      IDX: ('{"weight_map": {"%s": "%s", "%s": "%s", "%s": "%s", "%s": "%s"}}'
            % (E, SHARD1, N, SHARD1, W, SHARD2, W, SHARD1)).encode()})
case("index_metadata_not_object", "kFormat", [IDX, "metadata must be an object"],
     {SHARD1: shard1, SHARD2: shard2, IDX: index(good_map, metadata="v1")})
case("index_corrupt_shard", "kFormat", [SHARD2, "4 trailing bytes"],
     {SHARD1: shard1, SHARD2: shard2 + b"\0\0\0\0", IDX: index(good_map)})
case("index_shard_is_folder", "kIo", [IDX, "subdir", "not a regular file"],
     {SHARD1: shard1, "subdir/.keep": b"", IDX: index({E: SHARD1, N: SHARD1, W: "subdir"})})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    for name, spec in sorted(CASES.items()):
        folder = os.path.join(out, name)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        with open(os.path.join(folder, "config.json"), "w", newline="\n") as f:
            json.dump(CONFIG, f, indent=2, sort_keys=True)
            f.write("\n")
        for rel, data in spec["files"].items():
            path = os.path.join(folder, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        with open(os.path.join(folder, "expected.json"), "w", newline="\n") as f:
            json.dump(spec["expected"], f, indent=2)
            f.write("\n")
    print(f"wrote {len(CASES)} cases to {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the GGUF test corpus (python3 standard library only; the outputs are committed):

  tests/fixtures/gguf/valid/*.gguf       valid files (edge cases: no tensors, version 2, every
                                         metadata type, arrays of strings and of arrays, padding)
  tests/fixtures/gguf/valid/manifest.json   what each valid file holds, for the reader's test
  tests/fixtures/gguf/malformed/*.gguf   one broken rule each, a few hundred bytes
  tests/fixtures/gguf/malformed/manifest.json  per file: the ErrorCode the reader must raise and
                                         a fragment of its message

The encoding follows ggml's docs/gguf.md: little-endian; "GGUF", u32 version, u64 tensor count,
u64 metadata count, metadata (string key, u32 type, value), tensor infos (string name, u32
n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset), padding to the alignment,
data. Usage: python3 tools/make_malformed_gguf.py [--out tests/fixtures/gguf]
"""

import argparse
import json
import os
import struct

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMAT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
                 U64: "<Q", I64: "<q", F64: "<d"}
TYPE_NAME = {U8: "u8", I8: "i8", U16: "u16", I16: "i16", U32: "u32", I32: "i32", F32: "f32", BOOL: "bool",
             STRING: "string", ARRAY: "array", U64: "u64", I64: "i64", F64: "f64"}

# ggml type id -> (name, block elements, block bytes), for the types the corpus uses.
GGML = {
    "f32": (0, 1, 4), "f16": (1, 1, 2), "q4_0": (2, 32, 18), "q8_0": (8, 32, 34), "q4_K": (12, 256, 144),
    "q6_K": (14, 256, 210), "iq4_xs": (23, 256, 136), "i8": (24, 1, 1), "i32": (26, 1, 4), "bf16": (30, 1, 2),
    "mxfp4": (39, 32, 17),
}


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def gstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return u64(len(b)) + b


def encode_value(t, v):
    """The encoding of a value of type t (without the type tag). Arrays: v = (element type, list)."""
    if t == STRING:
        return gstr(v)
    if t == ARRAY:
        et, items = v
        return u32(et) + u64(len(items)) + b"".join(encode_value(et, x) for x in items)
    return struct.pack(SCALAR_FORMAT[t], v)


def kv(key, t, v):
    return gstr(key) + u32(t) + encode_value(t, v)


def tensor_bytes(type_name, ne):
    _, blk, size = GGML[type_name]
    n = 1
    for e in ne:
        n *= e
    return n // blk * size


def fill(n, seed):
    return bytes((i * 7 + seed * 13 + 1) & 0xFF for i in range(n))


def build(kvs, tensors, version=3, alignment=32, n_kv=None, n_tensors=None, pad=True, magic=b"GGUF"):
    """A GGUF file. kvs: list of encoded entries (kv()). tensors: list of dicts with name, type,
    ne (ggml order), and optionally offset / data / n_dims / raw_type overrides."""
    head = magic + u32(version) + u64(len(tensors) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv) + b"".join(kvs)
    offset = 0
    blobs = []
    for i, t in enumerate(tensors):
        ne = t["ne"]
        data = t.get("data")
        if data is None:
            data = fill(tensor_bytes(t["type"], ne), i)
        off = t.get("offset", offset)
        head += gstr(t["name"]) + u32(t.get("n_dims", len(ne))) + b"".join(u64(e) for e in ne)
        head += u32(t.get("raw_type", GGML[t["type"]][0] if t["type"] in GGML else 0)) + u64(off)
        if off + len(data) <= 1 << 20:  # hostile offsets (2^64 - 32) stay in the info only
            blobs.append((off, data))
            offset = (max(offset, off + len(data)) + alignment - 1) // alignment * alignment
    if not tensors and not pad:
        return head
    data_start = (len(head) + alignment - 1) // alignment * alignment
    out = bytearray(head + b"\0" * (data_start - len(head)))
    end = max([off + len(d) for off, d in blobs], default=0)
    end = (end + alignment - 1) // alignment * alignment if pad else end
    out += b"\0" * end
    for off, d in blobs:
        out[data_start + off:data_start + off + len(d)] = d
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Valid files and what the reader must find in them.

def meta_json(t, v):
    if t == ARRAY:
        et, items = v
        return {"type": "array", "element_type": TYPE_NAME[et], "value": [meta_json(et, x) for x in items]}
    if t == BOOL:
        return {"type": "bool", "value": bool(v)}
    return {"type": TYPE_NAME[t], "value": v}


def valid_files():
    files = []

    def add(name, entries, tensors, description, **kw):
        kvs = [kv(k, t, v) for k, t, v in entries]
        data = build(kvs, tensors, **kw)
        expect_tensors = []
        for i, t in enumerate(tensors):
            d = t.get("data") or fill(tensor_bytes(t["type"], t["ne"]), i)
            expect_tensors.append({"name": t["name"], "type": t["type"], "ne": t["ne"],
                                   "shape": list(reversed(t["ne"])), "bytes": len(d), "byte_sum": sum(d),
                                   "first_byte": d[0]})
        files.append((name, data, {
            "file": name, "description": description, "version": kw.get("version", 3),
            "alignment": kw.get("alignment", 32),
            "metadata": [{"key": k, **meta_json(t, v)} for k, t, v in entries],
            "tensors": expect_tensors}))

    add("empty.gguf", [], [], "no metadata and no tensors: the 24-byte header alone", pad=False)
    add("no_tensors.gguf", [("general.architecture", STRING, "llama"), ("general.name", STRING, "no tensors"),
                            ("llama.block_count", U32, 2)], [],
        "metadata only; the file ends right after it, without padding", pad=False)
    add("version2.gguf", [("general.architecture", STRING, "llama"), ("llama.context_length", U64, 4096)],
        [{"name": "token_embd.weight", "type": "f32", "ne": [4, 3]}], "GGUF version 2 (same layout as 3)", version=2)
    every = [
        ("t.u8", U8, 255), ("t.i8", I8, -128), ("t.u16", U16, 65535), ("t.i16", I16, -32768),
        ("t.u32", U32, 4294967295), ("t.i32", I32, -2147483648), ("t.f32", F32, 0.5), ("t.bool.true", BOOL, 1),
        ("t.bool.false", BOOL, 0), ("t.string", STRING, "caf\u00e9 \u4f60\u597d"), ("t.string.empty", STRING, ""),
        ("t.u64", U64, 18446744073709551615), ("t.i64", I64, -9223372036854775808), ("t.f64", F64, -1.25),
        ("t.array.u8", ARRAY, (U8, [1, 2, 3])), ("t.array.i32", ARRAY, (I32, [-1, 0, 7])),
        ("t.array.f32", ARRAY, (F32, [0.25, -2.0])), ("t.array.bool", ARRAY, (BOOL, [1, 0, 1])),
        ("t.array.string", ARRAY, (STRING, ["<s>", "", "hello", "\u0120world"])),
        ("t.array.empty", ARRAY, (F64, [])),
        ("t.array.nested", ARRAY, (ARRAY, [(U16, [1, 2]), (STRING, ["a", "bc"]), (ARRAY, [(I8, [-3])])])),
        ("general.architecture", STRING, "qwen3moe"),
    ]
    add("every_type.gguf", every, [
        {"name": "f32.odd", "type": "f32", "ne": [5, 3]},
        {"name": "f16.vec", "type": "f16", "ne": [7]},
        {"name": "bf16.4d", "type": "bf16", "ne": [3, 1, 2, 2]},
        {"name": "q8_0.rows", "type": "q8_0", "ne": [64, 3]},
        {"name": "q4_K.row", "type": "q4_K", "ne": [256, 1]},
        {"name": "mxfp4.experts", "type": "mxfp4", "ne": [32, 2, 3]},
        {"name": "i32.ids", "type": "i32", "ne": [3]},
        {"name": "f32.scalar", "type": "f32", "ne": []},
    ], "every metadata value type, arrays of strings and of arrays, tensors of several types and odd shapes, "
        "a scalar (n_dims 0)")
    add("align64.gguf", [("general.alignment", U32, 64), ("general.architecture", STRING, "llama")],
        [{"name": "a", "type": "i8", "ne": [3]}, {"name": "b", "type": "q4_0", "ne": [32, 2]},
         {"name": "c", "type": "f32", "ne": [1]}], "general.alignment 64, tensors padded apart", alignment=64)
    add("align1.gguf", [("general.alignment", U32, 1)],
        [{"name": "x", "type": "i8", "ne": [3]}, {"name": "y", "type": "i8", "ne": [2]}],
        "general.alignment 1: tensors packed without padding", alignment=1)
    tokens = ["<unk>", "<s>", "</s>", "a", "b", "ab", "\u0120", "\u0120ab"]
    add("tokenizer.gguf", [
        ("general.architecture", STRING, "llama"),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "qwen2"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 1, 1, 1, 1, 1])),
        ("tokenizer.ggml.merges", ARRAY, (STRING, ["a b", "\u0120 ab"])),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.padding_token_id", U32, 0),
        ("tokenizer.ggml.add_bos_token", BOOL, 1),
        ("tokenizer.chat_template", STRING, "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
    ], [], "tokenizer metadata as llama.cpp's converter writes it (gpt2 model)")
    add("tokenizer_spm.gguf", [
        ("general.architecture", STRING, "llama"),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>", "<0x0A>", "\u2581a", "b"])),
        ("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, 0.0, 0.0, -1.5, -2.0])),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3, 6, 1, 1])),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
    ], [], "tokenizer metadata of a llama/SPM vocabulary (scores, byte tokens)")
    return files


# ---------------------------------------------------------------------------------------------
# Malformed files: each breaks one rule of the reader.

BASE_KVS = [kv("general.architecture", STRING, "llama"), kv("general.name", STRING, "corpus")]


def base_tensors():
    return [{"name": "token_embd.weight", "type": "f32", "ne": [4, 2]},
            {"name": "blk.0.ffn_down.weight", "type": "q8_0", "ne": [32, 2]}]


def header(version=3, n_tensors=0, n_kv=0):
    return b"GGUF" + u32(version) + u64(n_tensors) + u64(n_kv)


def big_endian_file():
    # The same layout with every integer big-endian (GGUF v3 allows such files; we do not).
    key = b"general.architecture"
    return (b"GGUF" + struct.pack(">I", 3) + struct.pack(">Q", 0) + struct.pack(">Q", 1) + struct.pack(">Q", len(key))
            + key + struct.pack(">I", STRING) + struct.pack(">Q", 5) + b"llama")


def nested(depth):
    v = (U8, [1])
    for _ in range(depth - 1):
        v = (ARRAY, [v])
    return v


def malformed_files():
    cases = []

    def add(name, data, code, message, description):
        cases.append((name, data, {"file": name, "code": code, "message": message, "description": description}))

    good = build(BASE_KVS, base_tensors())
    # -- header --
    add("empty_file.gguf", b"", "kFormat", "too short for the GGUF magic", "zero bytes")
    add("short_magic.gguf", b"GGU", "kFormat", "too short for the GGUF magic", "three bytes")
    add("bad_magic.gguf", b"GGML" + good[4:], "kFormat", "not a GGUF file: magic bytes 47 47 4d 4c", "GGML magic")
    add("safetensors_magic.gguf", u64(2) + b"{}", "kFormat", "not a GGUF file", "a safetensors file")
    add("truncated_version.gguf", b"GGUF\x03\x00", "kFormat", "truncated: version", "cut inside the version")
    add("version0.gguf", header(0), "kFormat", "invalid GGUF version 0", "version 0")
    add("version1.gguf", header(1), "kUnsupported", "GGUF version 1", "version 1 used 32-bit counts")
    add("version4.gguf", header(4), "kUnsupported", "GGUF version 4 is newer", "a future version")
    add("big_endian.gguf", big_endian_file(), "kUnsupported", "big-endian GGUF file", "big-endian v3")
    add("truncated_tensor_count.gguf", b"GGUF" + u32(3) + b"\0\0\0", "kFormat", "truncated: tensor count",
        "cut inside the tensor count")
    add("truncated_metadata_count.gguf", b"GGUF" + u32(3) + u64(0) + b"\x01", "kFormat", "truncated: metadata count",
        "cut inside the metadata count")
    add("huge_metadata_count.gguf", header(3, 0, 2 ** 63) + BASE_KVS[0], "kFormat",
        "metadata count 9223372036854775808 exceeds the limit", "metadata count 2^63")
    add("huge_tensor_count.gguf", header(3, 2 ** 64 - 1, 0) + b"\0" * 64, "kFormat",
        "tensor count 18446744073709551615 exceeds the limit", "tensor count 2^64-1")
    add("metadata_count_past_end.gguf", header(3, 0, 1000) + b"".join(BASE_KVS), "kFormat",
        "1000 metadata entries and 0 tensor infos need at least 14000 bytes", "1000 entries in 80 bytes")
    add("tensor_count_past_end.gguf", header(3, 100, 1) + BASE_KVS[0] + b"\0" * 100, "kFormat",
        "100 tensor infos need at least", "100 tensor infos in 150 bytes")
    # -- metadata entries --
    add("huge_key_length.gguf", header(3, 0, 1) + u64(2 ** 64 - 1) + b"general" + b"\0" * 20, "kFormat",
        "key length 18446744073709551615 exceeds the limit of 65535 bytes", "key length 2^64-1")
    add("key_past_end.gguf", header(3, 0, 1) + u64(1000) + b"general.architecture", "kFormat",
        "truncated: key of 1000 bytes", "key length 1000 in a 50-byte file")
    add("empty_key.gguf", header(3, 0, 1) + gstr("") + u32(U32) + u32(7), "kFormat", "empty key", "a key of 0 bytes")
    add("unknown_value_type.gguf", header(3, 0, 1) + gstr("general.x") + u32(13) + u32(0), "kFormat",
        "unknown value type 13", "value type 13")
    add("value_type_max.gguf", header(3, 0, 1) + gstr("general.x") + u32(2 ** 32 - 1) + u32(0), "kFormat",
        "unknown value type 4294967295", "value type 2^32-1")
    add("truncated_u32_value.gguf", header(3, 0, 1) + gstr("llama.block_count") + u32(U32) + b"\x02\x00", "kFormat",
        "truncated: u32 at offset", "cut inside a u32 value")
    add("truncated_f64_value.gguf", header(3, 0, 1) + gstr("general.x") + u32(F64) + b"\0" * 7, "kFormat",
        "truncated: f64", "cut inside an f64 value")
    add("truncated_value_type.gguf", header(3, 0, 1) + gstr("general.architecture") + b"\x08\x00", "kFormat",
        "truncated: value type", "cut inside the value type")
    add("huge_string_length.gguf", header(3, 0, 1) + gstr("general.name") + u32(STRING) + u64(2 ** 62) + b"x" * 16,
        "kFormat", "string value length 4611686018427387904 exceeds the limit", "string length 2^62")
    add("string_past_end.gguf", header(3, 0, 1) + gstr("general.name") + u32(STRING) + u64(500) + b"abc", "kFormat",
        "truncated: string value of 500 bytes", "string length 500 in a 60-byte file")
    add("bool_value_2.gguf", header(3, 0, 1) + gstr("general.flag") + u32(BOOL) + b"\x02", "kFormat",
        "bool value 0x02 at offset", "a bool of 2")
    add("duplicate_key.gguf", build(BASE_KVS + [kv("general.name", STRING, "again")], base_tensors()), "kFormat",
        "duplicate metadata key \"general.name\" (entries #1 and #2)", "general.name twice")
    add("key_with_control_bytes.gguf", header(3, 0, 2) + gstr(b"bad\x01key") + u32(U8) + b"\x01"
        + gstr(b"bad\x01key") + u32(U8) + b"\x02", "kFormat", "duplicate metadata key \"bad\\x01key\"",
        "a duplicate key with a control byte (escaped in the message)")
    # -- arrays --
    add("array_huge_length.gguf", header(3, 0, 1) + gstr("a") + u32(ARRAY) + u32(U8) + u64(2 ** 40) + b"\0" * 32,
        "kFormat", "array of u8 length 1099511627776 at offset 41 exceeds the limit of 16777216 elements",
        "2^40 u8 elements")
    add("array_length_past_end.gguf", header(3, 0, 1) + gstr("a") + u32(ARRAY) + u32(U32) + u64(1000) + u32(1) * 4,
        "kFormat", "array of u32 length 1000 at offset 41 needs at least 4 bytes per element",
        "1000 u32 elements in 16 bytes")
    add("string_array_past_end.gguf",
        header(3, 0, 1) + gstr("tokenizer.ggml.tokens") + u32(ARRAY) + u32(STRING) + u64(100) + gstr("a") * 3,
        "kFormat", "array of string length 100 at offset 61 needs at least 8 bytes per element",
        "100 strings in 27 bytes")
    add("string_array_element_past_end.gguf",
        header(3, 0, 1) + gstr("tokenizer.ggml.tokens") + u32(ARRAY) + u32(STRING) + u64(2) + gstr("ab") + u64(400)
        + b"x" * 8, "kFormat", "truncated: string value of 400 bytes", "the second token runs past the end")
    add("array_unknown_element_type.gguf", header(3, 0, 1) + gstr("a") + u32(ARRAY) + u32(99) + u64(1) + b"\0" * 8,
        "kFormat", "unknown array element type 99", "element type 99")
    add("array_too_deep.gguf", header(3, 0, 1) + gstr("a") + u32(ARRAY) + encode_value(ARRAY, nested(9)), "kFormat",
        "arrays nested 9 deep", "nine levels of arrays")
    add("array_bool_element_7.gguf", header(3, 0, 1) + gstr("a") + u32(ARRAY) + u32(BOOL) + u64(3) + b"\x01\x00\x07",
        "kFormat", "bool value 0x07 at offset 51", "a bool array element of 7")
    add("array_truncated_header.gguf", header(3, 0, 1) + gstr("a") + u32(ARRAY) + u32(U8) + b"\x05\x00", "kFormat",
        "truncated: array length", "cut inside an array's length")
    # -- general.alignment --
    add("alignment_u64.gguf", build([kv("general.alignment", U64, 32)] + BASE_KVS, base_tensors()), "kFormat",
        "\"general.alignment\" must be a u32, found u64 32", "alignment stored as u64")
    add("alignment_string.gguf", build([kv("general.alignment", STRING, "32")], []), "kFormat",
        "must be a u32, found string \"32\"", "alignment stored as a string")
    add("alignment_zero.gguf", build([kv("general.alignment", U32, 0)], []), "kFormat",
        "general.alignment 0 is not a power of two", "alignment 0")
    add("alignment_48.gguf", build([kv("general.alignment", U32, 48)], [], alignment=48), "kFormat",
        "general.alignment 48 is not a power of two", "alignment 48")
    add("alignment_huge.gguf", build([kv("general.alignment", U32, 2 ** 31)], [], pad=False), "kFormat",
        "general.alignment 2147483648 is not a power of two between 1 and 1048576", "alignment 2^31")
    # -- tensor infos --
    def with_tensor(**override):
        t = dict(base_tensors()[1])
        t.update(override)
        return build(BASE_KVS, [base_tensors()[0], t])

    add("tensor_empty_name.gguf", with_tensor(name=""), "kFormat", "tensor info #1: empty name", "a tensor named \"\"")
    add("tensor_huge_name.gguf", header(3, 1, 0) + u64(2 ** 63) + b"name" + b"\0" * 40, "kFormat",
        "tensor info #0: name length 9223372036854775808 exceeds the limit of 1024 bytes", "name length 2^63")
    add("tensor_long_name.gguf", build(BASE_KVS, [{"name": "w" * 1025, "type": "f32", "ne": [1]}]), "kFormat",
        "name length 1025 exceeds the limit of 1024 bytes", "a 1025-byte name")
    add("tensor_n_dims_5.gguf", with_tensor(ne=[32, 1, 1, 1, 1]), "kFormat", "n_dims 5 is outside 0..4", "n_dims 5")
    add("tensor_n_dims_huge.gguf", header(3, 1, 0) + gstr("t") + u32(2 ** 31) + b"\0" * 40, "kFormat",
        "tensor \"t\" (#0): n_dims 2147483648 is outside 0..4", "n_dims 2^31")
    add("tensor_zero_extent.gguf", with_tensor(ne=[32, 0]), "kFormat",
        "tensor \"blk.0.ffn_down.weight\" (#1): ne[1] = 0 is outside", "an extent of 0")
    add("tensor_extent_2_63.gguf", build(BASE_KVS, [{"name": "t", "type": "i8", "ne": [2 ** 63], "data": b"\0"}]),
        "kFormat", "ne[0] = 9223372036854775808 is outside 1..9223372036854775807", "an extent of 2^63")
    add("tensor_element_overflow.gguf",
        build(BASE_KVS, [{"name": "t", "type": "i8", "ne": [2 ** 32, 2 ** 32], "data": b"\0"}]), "kFormat",
        "element count of ne = [4294967296, 4294967296] overflows 63 bits", "2^32 x 2^32 elements")
    add("tensor_byte_overflow.gguf",
        build(BASE_KVS, [{"name": "t", "type": "f32", "ne": [2 ** 31, 2 ** 31], "data": b"\0" * 4}]), "kFormat",
        "byte size of ne = [2147483648, 2147483648] with type f32 overflows 64 bits", "2^62 f32 elements")
    add("tensor_unknown_type.gguf", with_tensor(raw_type=99, type="q8_0"), "kUnsupported",
        "unknown ggml type id 99", "ggml type 99")
    add("tensor_type_max.gguf", with_tensor(raw_type=2 ** 32 - 1, type="q8_0"), "kUnsupported",
        "unknown ggml type id 4294967295", "ggml type 2^32-1")
    add("tensor_removed_type_q4_2.gguf", with_tensor(raw_type=4, type="q4_0"), "kUnsupported",
        "ggml type id 4 (at offset", "Q4_2 (removed from ggml)")
    add("tensor_removed_type_q4_0_4_4.gguf", with_tensor(raw_type=31, type="q4_0"), "kUnsupported",
        "ggml type id 31 (at offset", "Q4_0_4_4 (removed from gguf files)")
    add("tensor_q8_0_ne0_33.gguf", with_tensor(ne=[33, 2], data=b"\0" * 68), "kFormat",
        "ne[0] = 33 is not a multiple of the 32-element block of type q8_0", "a q8_0 row of 33")
    add("tensor_q4_K_ne0_128.gguf", build(BASE_KVS, [{"name": "t", "type": "q4_K", "ne": [128, 2], "data": b"\0" * 144}]),
        "kFormat", "ne[0] = 128 is not a multiple of the 256-element block of type q4_K", "a q4_K row of 128")
    add("tensor_offset_unaligned.gguf", with_tensor(offset=40), "kFormat",
        "data offset 40 is not a multiple of the alignment 32", "offset 40 with alignment 32")
    add("tensor_offset_unaligned_64.gguf",
        build([kv("general.alignment", U32, 64)], [{"name": "a", "type": "f32", "ne": [8]},
                                                   {"name": "b", "type": "f32", "ne": [8], "offset": 32}], alignment=64),
        "kFormat", "data offset 32 is not a multiple of the alignment 64", "offset 32 with alignment 64")
    add("tensor_data_past_end.gguf", good[:-40], "kFormat",
        "tensor \"blk.0.ffn_down.weight\" (#1): data at offset 32 of 68 bytes (type q8_0, ne = [32, 2]) runs past the "
        "end of the data section", "the file lost its last 40 bytes")
    add("tensor_offset_huge.gguf", with_tensor(offset=2 ** 64 - 32), "kFormat",
        "data at offset 18446744073709551584 of 68 bytes", "offset 2^64-32")
    add("tensor_overlap.gguf", with_tensor(offset=0, type="f32", ne=[8]), "kFormat",
        "tensor \"blk.0.ffn_down.weight\" (#1): data [0, 32) overlaps tensor \"token_embd.weight\" (#0) at [0, 32)",
        "two tensors at offset 0")
    add("tensor_duplicate_name.gguf", with_tensor(name="token_embd.weight"), "kFormat",
        "duplicate tensor name \"token_embd.weight\" (tensor infos #0 and #1)", "the same name twice")
    add("tensor_truncated_extent.gguf", good[:good.index(b"blk.0") + 21 + 4 + 3], "kFormat", "truncated: extent",
        "cut inside an extent")
    add("tensor_truncated_offset.gguf", good[:good.index(b"blk.0") + 21 + 4 + 16 + 4 + 2], "kFormat",
        "truncated: data offset", "cut inside the data offset")
    add("tensor_info_truncated_name.gguf", header(3, 1, 0) + u64(40) + b"blk" + b"\0" * 30, "kFormat",
        "tensor info #0: truncated: name of 40 bytes", "the name runs past the end")
    add("no_data_section.gguf", no_data_section(), "kFormat", "the data section would start at offset",
        "tensor infos end the file: no padding, no data")
    return cases


def no_data_section():
    head = header(3, 1, 2) + b"".join(BASE_KVS) + gstr("t") + u32(1) + u64(4) + u32(0) + u64(0)
    assert len(head) % 32 != 0  # else the (empty) padding would end exactly at the end of the file
    return head


def write(out_dir):
    valid_dir = os.path.join(out_dir, "valid")
    bad_dir = os.path.join(out_dir, "malformed")
    os.makedirs(valid_dir, exist_ok=True)
    os.makedirs(bad_dir, exist_ok=True)
    for d in (valid_dir, bad_dir):  # cases that were renamed or dropped must not linger
        for name in os.listdir(d):
            if name.endswith(".gguf"):
                os.remove(os.path.join(d, name))
    valid = valid_files()
    for name, data, _ in valid:
        with open(os.path.join(valid_dir, name), "wb") as f:
            f.write(data)
    with open(os.path.join(valid_dir, "manifest.json"), "w") as f:
        json.dump({"files": [m for _, _, m in valid]}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    bad = malformed_files()
    names = set()
    for name, data, _ in bad:
        assert name not in names, name
        names.add(name)
        assert len(data) <= 4096, (name, len(data))
        with open(os.path.join(bad_dir, name), "wb") as f:
            f.write(data)
    with open(os.path.join(bad_dir, "manifest.json"), "w") as f:
        json.dump({"cases": [m for _, _, m in bad]}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(valid)} valid files in {valid_dir}, {len(bad)} malformed files in {bad_dir}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                                                 "gguf"))
    write(os.path.normpath(p.parse_args().out))


if __name__ == "__main__":
    main()

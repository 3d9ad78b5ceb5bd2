// Cross-checks the GGUF corpus against an independent implementation, @huggingface/gguf (the
// parser the Hugging Face Hub uses), and writes what it saw for the C++ tests to compare with:
//
//   npm install --prefix /tmp/gguf-fixtures @huggingface/gguf@0.4.6
//   node tools/make_gguf_hf_fixtures.mjs [--gguf /tmp/gguf-fixtures/node_modules/@huggingface/gguf]
//
// Writes tests/fixtures/gguf/hf/parsed.json (its parse of every tests/fixtures/gguf/valid/*.gguf:
// version, data offset, typed metadata, tensor infos; 64-bit integers as decimal strings) and
// tests/fixtures/gguf/hf/written.gguf (its serializeGgufMetadata of every_type.gguf's metadata, a
// file made by another writer). Two keys are left out of written.gguf because that serializer
// cannot write them: arrays of arrays (it has no element type for the inner arrays) and arrays of
// u8 (it tests the element type with `!subType`, and u8 is type 0).
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const ggufDir = resolve(
  argv.includes("--gguf") ? argv[argv.indexOf("--gguf") + 1] : "/tmp/gguf-fixtures/node_modules/@huggingface/gguf",
);
const pkg = JSON.parse(readFileSync(join(ggufDir, "package.json"), "utf8"));
const { gguf, serializeGgufMetadata } = await import(pathToFileURL(join(ggufDir, "dist/index.mjs")).href);

const validDir = join(root, "tests/fixtures/gguf/valid");
const outDir = join(root, "tests/fixtures/gguf/hf");
mkdirSync(outDir, { recursive: true });

// JSON cannot hold BigInt: 64-bit values become decimal strings (the C++ test knows their type).
const plain = (v) => (typeof v === "bigint" ? v.toString() : Array.isArray(v) ? v.map(plain) : v);

const files = [];
for (const name of readdirSync(validDir).filter((n) => n.endsWith(".gguf")).sort()) {
  const r = await gguf(join(validDir, name), { allowLocalFile: true, typedMetadata: true });
  const metadata = [];
  for (const [key, entry] of Object.entries(r.typedMetadata)) {
    if (["version", "tensor_count", "kv_count"].includes(key)) continue;  // the header, not metadata
    const m = { key, type: entry.type, value: plain(entry.value) };
    if ("subType" in entry) m.subType = entry.subType;
    metadata.push(m);
  }
  files.push({
    file: name,
    version: r.metadata.version,
    tensor_data_offset: plain(r.tensorDataOffset),
    metadata,
    tensors: r.tensorInfos.map((t) => ({
      name: t.name, n_dims: t.n_dims, ne: plain(t.shape), type: t.dtype, offset: plain(t.offset),
    })),
  });
}
writeFileSync(join(outDir, "parsed.json"),
  JSON.stringify({ parser: `@huggingface/gguf ${pkg.version}`, files }, null, 1) + "\n");

// written.gguf: every_type.gguf's metadata (less the two keys above) through the other writer.
const src = await gguf(join(validDir, "every_type.gguf"), { allowLocalFile: true, typedMetadata: true });
const typed = { ...src.typedMetadata };
delete typed["t.array.nested"];
delete typed["t.array.u8"];
typed.tensor_count = { value: 0n, type: 10 };
typed["t.written_by"] = { value: `@huggingface/gguf ${pkg.version}`, type: 8 };
const bytes = serializeGgufMetadata(typed, { littleEndian: true, alignment: 32 });
writeFileSync(join(outDir, "written.gguf"), bytes);
console.log(`${files.length} files parsed by @huggingface/gguf ${pkg.version}; written.gguf is ${bytes.length} bytes`);

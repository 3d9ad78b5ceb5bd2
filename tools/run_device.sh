#!/usr/bin/env bash
# Runs the fixture and demo-model generators on the GPU machine and packs what they write into
# archives under $OUT (see tools/README.md). Run from the repository root:
#     bash tools/run_device.sh 2>&1 | tee "$OUT/log.txt"
# STEPS picks a subset (comma list of fixtures, tokenizers, train, reference, src; default all).
# FIXTURE_ARGS / TOKENIZER_ARGS / TRAIN_ARGS are appended to the respective command lines.
set -u
OUT=${OUT:-${TMPDIR:-/tmp}/moecpp_out}
STAGE=${STAGE:-${TMPDIR:-/tmp}/moecpp_stage}
STEPS=${STEPS:-fixtures,tokenizers,train,src}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$STAGE"
want() { [[ ",$STEPS," == *",$1,"* ]]; }

python3 -c 'import sys, torch, transformers, tokenizers, safetensors
print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "tokenizers", tokenizers.__version__, "safetensors", safetensors.__version__, "cuda", torch.cuda.is_available())'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

TRAIN_PID=
if want train || want reference; then
  # "reference" alone recomputes the demo reference from the committed models/shakespeare-moe.
  model_dir="$STAGE/models/shakespeare-moe" extra=
  want train || { model_dir=models/shakespeare-moe; extra=--reference-only; }
  ( python3 tools/train_demo_model.py --corpus .carry/tinyshakespeare.txt \
      --out-model "$model_dir" --out-ref "$STAGE/tests/fixtures/demo" $extra ${TRAIN_ARGS:-} \
      > "$OUT/train_log.txt" 2>&1 || echo "TRAIN FAILED rc=$?" >> "$OUT/train_log.txt" ) &
  TRAIN_PID=$!
fi

if want fixtures; then
  echo "== make_fixtures $(date +%T)"
  python3 tools/make_fixtures.py --out "$STAGE/tests/fixtures/models" --threads 8 ${FIXTURE_ARGS:-} \
    || echo "FIXTURES FAILED rc=$?"
fi

if want tokenizers; then
  echo "== make_tokenizer_fixtures $(date +%T)"
  python3 tools/make_tokenizer_fixtures.py --corpus .carry/tinyshakespeare.txt \
    --out "$STAGE/tests/fixtures/tokenizers" ${TOKENIZER_ARGS:-} || echo "TOKENIZERS FAILED rc=$?"
fi

if want src; then
  # The installed transformers sources of the families covered, for reading back here.
  python3 - "$STAGE/src_dump" <<'EOF' || echo "SRC DUMP FAILED"
import os, shutil, sys, transformers
root = os.path.dirname(transformers.__file__)
dst = sys.argv[1]
files = ["modeling_rope_utils.py", "configuration_utils.py", "conversion_mapping.py", "core_model_loading.py",
         "masking_utils.py", "integrations/moe.py", "integrations/sdpa_attention.py"]
for fam in ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3", "gpt_oss", "glm4_moe"]:
    d = os.path.join(root, "models", fam)
    if os.path.isdir(d):
        files += [os.path.join("models", fam, f) for f in os.listdir(d)
                  if f.startswith(("modeling_", "configuration_")) and f.endswith(".py")]
for f in files:
    src = os.path.join(root, f)
    if os.path.exists(src):
        os.makedirs(os.path.dirname(os.path.join(dst, f)), exist_ok=True)
        shutil.copy(src, os.path.join(dst, f))
print("src dump:", len(files), "files")
EOF
fi

if [ -n "$TRAIN_PID" ]; then
  echo "== waiting for training $(date +%T)"
  wait "$TRAIN_PID"
  tail -n 60 "$OUT/train_log.txt"
fi

echo "== packing $(date +%T)"
cd "$STAGE" || exit 1
parts=$(ls -d tests/fixtures/tokenizers tests/fixtures/demo src_dump 2>/dev/null)
[ -n "$parts" ] && tar czf "$OUT/extra.tar.gz" $parts
[ -d models ] && tar cf "$OUT/demo_model.tar" models
python3 - "$OUT" <<'EOF'
import os, sys, tarfile
out = sys.argv[1]
root = "tests/fixtures/models"
if os.path.isdir(root):
    limit, part, size, tf = 14 * 2**20, 0, 0, None
    for case in sorted(os.listdir(root)):
        p = os.path.join(root, case)
        n = sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p))
        if tf is None or size + n > limit:
            if tf is not None:
                tf.close()
                part += 1
            tf, size = tarfile.open(os.path.join(out, f"fixtures_{part}.tar"), "w"), 0
        tf.add(p)
        size += n
    if tf is not None:
        tf.close()
EOF
ls -la "$OUT"

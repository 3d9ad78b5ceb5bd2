#!/usr/bin/env python3
# On the GPU machine: compares two running moe-server instances of the same model (CUDA_PORT, CPU_PORT),
# e.g. `moe-server --model M --port 18081 --backend cuda` and `... --port 18082 --backend cpu`: greedy
# completions of 8 prompts alone on each, the same 8 sent concurrently to the first (batched), one streamed
# chat reply (SSE ending in [DONE]) and /metrics. Prints the counts of equal texts; exit 1 if any differ.
#   tools/check_server_backends.py CUDA_PORT CPU_PORT
import json, sys, urllib.request, concurrent.futures, time
cuda, cpu = int(sys.argv[1]), int(sys.argv[2])
def post(port, path, body, stream=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read().decode()
def wait(port):
    for _ in range(60):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read(); return
        except Exception: time.sleep(1)
wait(cuda); wait(cpu)
prompts = ["ROMEO:", "First Citizen:\nBefore we proceed", "To be, or not to be", "KING HENRY:", "O, ", "Speak, ", "JULIET:\nWherefore", "Good morrow"]
def comp(port, p):
    return json.loads(post(port, "/v1/completions", {"prompt": p, "max_tokens": 40, "temperature": 0}))["choices"][0]["text"]
alone = {p: comp(cuda, p) for p in prompts}
ref = {p: comp(cpu, p) for p in prompts}
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    batched = dict(zip(prompts, ex.map(lambda p: comp(cuda, p), prompts)))
same_cpu = sum(alone[p] == ref[p] for p in prompts)
same_batch = sum(alone[p] == batched[p] for p in prompts)
print(f"cuda alone == cpu: {same_cpu}/{len(prompts)}; cuda alone == cuda batched(8 concurrent): {same_batch}/{len(prompts)}")
for p in prompts:
    if alone[p] != ref[p]: print("DIFF", repr(p), repr(alone[p][:80]), repr(ref[p][:80]))
s = post(cuda, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Who art thou?"}], "max_tokens": 20, "temperature": 0, "stream": True})
lines = [l for l in s.split("\n") if l.startswith("data: ")]
text = "".join(json.loads(l[6:])["choices"][0]["delta"].get("content", "") for l in lines[:-1] if json.loads(l[6:])["choices"])
print(f"stream: {len(lines)} events, ends with [DONE]: {lines[-1] == 'data: [DONE]'}, text {text[:60]!r}")
m = urllib.request.urlopen(f"http://127.0.0.1:{cuda}/metrics", timeout=5).read().decode()
print("metrics lines:", len(m.splitlines()), [l for l in m.splitlines() if "activation" in l][:2])
sys.exit(0 if same_cpu == same_batch == len(prompts) else 1)

#!/usr/bin/env python3
"""GPU-machine helper of `npm run bench:cuda` (bench/cuda.ts runs it; needs PyTorch, safetensors, transformers).

Subcommands (each prints one JSON object on its last stdout line):
  info                        card name, driver, CUDA runtime, torch / transformers versions
  copybw                      device-to-device copy bandwidth (bytes read + bytes written per second), the
                              median of 20 event-timed copies of a 2 GiB buffer after warm-up
  gen --shape S --out DIR     a random-weight bf16 Hugging Face checkpoint with the real shapes of S
                              (llama-3.2-1b | qwen3-8b): config.json + model.safetensors, no tokenizer
                              (bench/cuda.ts feeds token ids). Weights are drawn on the GPU (seeded normal,
                              std 0.02; norms 1 + N(0, 0.02)); skipped when DIR already holds that shape.
  hf --model DIR --contexts 1024,8192 [--tokens N]
                              transformers on the same checkpoint: bf16, attn_implementation="sdpa",
                              static cache, greedy decode (model.generate, do_sample=False, eager mode, no
                              torch.compile). Decode tokens/s = (N2 - N1) / (t(N2) - t(N1)) for two generate
                              calls with N1 = 8 and N2 = 8 + N new tokens on the same prompt, so prefill cancels.
"""
import argparse
import json
import os
import sys
import time

SHAPES = {
    # https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json (shapes only)
    "llama-3.2-1b": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=2048, intermediate_size=8192,
        num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
        rms_norm_eps=1e-5, rope_theta=500000.0, max_position_embeddings=131072, tie_word_embeddings=True,
        rope_scaling=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192, rope_type="llama3"),
        attention_bias=False, mlp_bias=False, hidden_act="silu", bos_token_id=128000, eos_token_id=128001,
    ),
    # https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json (shapes only)
    "qwen3-8b": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=4096, intermediate_size=12288,
        num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=40960, tie_word_embeddings=False,
        attention_bias=False, hidden_act="silu", bos_token_id=151643, eos_token_id=151645,
        use_sliding_window=False, sliding_window=None, max_window_layers=36,
    ),
}


def out(obj):
    print(json.dumps(obj), flush=True)


def cmd_info(_):
    import torch
    import subprocess
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip().splitlines()
    try:
        import transformers
        tv = transformers.__version__
    except Exception as e:  # noqa: BLE001
        tv = f"unavailable ({e})"
    p = torch.cuda.get_device_properties(0)
    out(dict(smi=smi[0] if smi else "", name=p.name, sms=p.multi_processor_count, torch=torch.__version__,
             cuda=torch.version.cuda, transformers=tv))


def cmd_copybw(_):
    import torch
    n = 2 << 30  # bytes per buffer
    a = torch.randint(0, 255, (n,), dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(5):
        b.copy_(a)
    torch.cuda.synchronize()
    ts = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    ts.sort()
    med = ts[len(ts) // 2]
    assert torch.equal(a[:1 << 20], b[:1 << 20])
    out(dict(copy_bytes=n, seconds=med, gbps=2 * n / med / 1e9))


def cmd_gen(args):
    import torch
    from safetensors.torch import save_file
    cfg = dict(SHAPES[args.shape])
    cfg["torch_dtype"] = "bfloat16"
    os.makedirs(args.out, exist_ok=True)
    cpath = os.path.join(args.out, "config.json")
    wpath = os.path.join(args.out, "model.safetensors")
    if os.path.exists(cpath) and os.path.exists(wpath):
        with open(cpath) as f:
            if json.load(f).get("hidden_size") == cfg["hidden_size"]:
                out(dict(shape=args.shape, dir=args.out, reused=True, bytes=os.path.getsize(wpath)))
                return
    t0 = time.time()
    g = torch.Generator(device="cuda")
    g.manual_seed(args.seed)
    D, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def mat(r, c):
        return (torch.randn((r, c), generator=g, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

    def norm(n):
        return (1.0 + torch.randn((n,), generator=g, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

    t = {"model.embed_tokens.weight": mat(V, D), "model.norm.weight": norm(D)}
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = mat(V, D)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(D)
        t[p + "post_attention_layernorm.weight"] = norm(D)
        t[p + "self_attn.q_proj.weight"] = mat(H * hd, D)
        t[p + "self_attn.k_proj.weight"] = mat(KV * hd, D)
        t[p + "self_attn.v_proj.weight"] = mat(KV * hd, D)
        t[p + "self_attn.o_proj.weight"] = mat(D, H * hd)
        t[p + "mlp.gate_proj.weight"] = mat(F, D)
        t[p + "mlp.up_proj.weight"] = mat(F, D)
        t[p + "mlp.down_proj.weight"] = mat(D, F)
        if args.shape.startswith("qwen3"):
            t[p + "self_attn.q_norm.weight"] = norm(hd)
            t[p + "self_attn.k_norm.weight"] = norm(hd)
    save_file(t, wpath, metadata={"format": "pt"})
    with open(cpath, "w") as f:
        json.dump(cfg, f, indent=1)
    out(dict(shape=args.shape, dir=args.out, reused=False, bytes=os.path.getsize(wpath), seconds=time.time() - t0))


def cmd_hf(args):
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa",
                                                 device_map="cuda")
    model.eval()
    load_s = time.time() - t0
    V = model.config.vocab_size
    rows = []
    n1, n2 = 8, 8 + args.tokens

    def gen(ids, n):
        torch.cuda.synchronize()
        s = time.perf_counter()
        with torch.inference_mode():
            o = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                               do_sample=False, cache_implementation="static", pad_token_id=0)
        torch.cuda.synchronize()
        assert o.shape[1] == ids.shape[1] + n, o.shape
        return time.perf_counter() - s

    for ctx in args.contexts:
        g = torch.Generator().manual_seed(ctx)
        ids = torch.randint(1000, V - 1000, (1, ctx), generator=g).to("cuda")
        try:
            gen(ids, n1)  # warm-up: cache allocation, kernels
            best = None
            for _ in range(args.runs):
                a, b = gen(ids, n1), gen(ids, n2)
                dt = (b - a) / (n2 - n1)
                best = dt if best is None else min(best, dt)
            rows.append(dict(context=ctx, ms_per_token=best * 1e3, tokens_per_s=1.0 / best))
        except torch.cuda.OutOfMemoryError as e:  # report, keep going
            rows.append(dict(context=ctx, error=f"out of memory: {str(e)[:120]}"))
            torch.cuda.empty_cache()
    out(dict(model=args.model, load_seconds=load_s, rows=rows))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    sub.add_parser("copybw")
    g = sub.add_parser("gen")
    g.add_argument("--shape", required=True, choices=sorted(SHAPES))
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=1234)
    h = sub.add_parser("hf")
    h.add_argument("--model", required=True)
    h.add_argument("--contexts", type=lambda s: [int(x) for x in s.split(",")], default=[1024])
    h.add_argument("--tokens", type=int, default=48)
    h.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    {"info": cmd_info, "copybw": cmd_copybw, "gen": cmd_gen, "hf": cmd_hf}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

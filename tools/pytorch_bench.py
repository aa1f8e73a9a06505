#!/usr/bin/env python3
"""PyTorch baseline for GpuBench: the same llama shape with random weights (no download), greedy decode.

For each dtype (fp32, fp16), mode (eager: dynamic KV cache, no compile; compile: static KV cache, which
transformers' generate compiles itself with CUDA graphs) and batch size: one warm-up generate (compiles), then one timed
generate of a 16-token random prompt per sequence plus exactly --new-tokens new tokens. Prints tokens/s =
batch * new tokens / time (the prefill is included; GpuBench's decode rate leaves it out, a small difference
with 16 prompt tokens and 128 new ones) and appends one JSON line per run to --out. Runs go in the order
given and none starts once --budget seconds have passed, so put the ones that matter first.
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "stories260k": dict(hidden_size=64, intermediate_size=172, num_hidden_layers=5, num_attention_heads=8,
                        num_key_value_heads=4, vocab_size=512, max_position_embeddings=512),
    "llama2-110m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                        num_key_value_heads=12, vocab_size=32000, max_position_embeddings=1024),
    "llama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                       num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="llama-1.1b", choices=sorted(SHAPES))
    p.add_argument("--dtypes", default="fp32,fp16")
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--batches", default="1,8,32,64")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--budget", type=float, default=420, help="seconds after which no new run starts")
    p.add_argument("--out", default="pytorch-bench.jsonl")
    a = p.parse_args()
    start = time.time()
    torch.manual_seed(1)
    config = LlamaConfig(**SHAPES[a.shape], rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base = LlamaForCausalLM(config).eval()  # random init; std 0.02 differs from GpuBench, speed does not care
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, shape {a.shape}", flush=True)
    rows = []
    for dtype_name in a.dtypes.split(","):
        dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
        for mode in a.modes.split(","):
            model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
            model.load_state_dict(base.state_dict())
            # With a static cache, generate() compiles the forward itself and marks each CUDA-graph step;
            # compiling model.forward by hand instead lets a graph replay overwrite the cache it returned.
            cache = "static" if mode == "compile" else None
            model.generation_config.disable_compile = mode != "compile"
            for batch in [int(b) for b in a.batches.split(",")]:
                if time.time() - start > a.budget:
                    print(f"skipped {dtype_name} {mode} batch {batch}: over the {a.budget:.0f} s budget", flush=True)
                    continue
                ids = torch.randint(3, config.vocab_size, (batch, a.prompt), device=device)
                ids[:, 0] = 1
                kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=a.new_tokens,
                              min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0)
                if cache:
                    kwargs["cache_implementation"] = cache
                try:
                    with torch.inference_mode():
                        model.generate(ids, **kwargs)  # warm-up: compiles, captures graphs
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        out = model.generate(ids, **kwargs)
                        torch.cuda.synchronize()
                        seconds = time.perf_counter() - t0
                except Exception as e:  # one failing configuration must not hide the others
                    print(f"failed {dtype_name} {mode} batch {batch}: {type(e).__name__}: {str(e)[:300]}", flush=True)
                    continue
                new = out.shape[1] - ids.shape[1]
                assert new == a.new_tokens, f"generated {new} tokens, wanted {a.new_tokens}"
                row = dict(shape=a.shape, dtype=dtype_name, mode=mode, batch=batch, new_tokens=new,
                           seconds=round(seconds, 4), tokens_per_s=round(batch * new / seconds, 1))
                rows.append(row)
                print(f"pytorch {dtype_name:4} {mode:7} batch {batch:3}: {row['tokens_per_s']:10.1f} tok/s", flush=True)
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            del model
            torch.cuda.empty_cache()
    print("\nshape dtype mode    batch      tok/s")
    for r in rows:
        print(f"{r['shape']} {r['dtype']:5} {r['mode']:7} {r['batch']:5} {r['tokens_per_s']:10.1f}")


if __name__ == "__main__":
    main()

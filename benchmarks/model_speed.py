"""Foundry vs transformers' LlamaForCausalLM: training and cached-generation throughput.

Both models get the same config and the same weights (Foundry's state dict loaded strictly into
Llama), sdpa attention and fp32, in one process. Single training steps and single generations are
interleaved A-B-B-A so load changes on a shared machine hit both models alike; the median per model
is reported. The peak memory of a training step is measured too (``HeapPeak``; glibc's malloc
statistics, so Linux; ratio = Llama / Foundry).

    python benchmarks/model_speed.py            # hidden 256, 4 layers, batch 8 x 256
    python benchmarks/model_speed.py --quick    # smaller and fewer repeats, < 1 minute
    python benchmarks/model_speed.py --device cuda --bf16 --hidden 768 --layers 12 --vocab 32768 \
        --batch 16 --seq-len 1024               # the `small` recipe's shape on a GPU, with MFU
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import LlamaForCausalLM

from lmfoundry.modeling import FoundryConfig, FoundryForCausalLM
from lmfoundry.modeling.convert import llama_config_from_foundry
from lmfoundry.training.throughput import mfu, peak_flops


def build_pair(hidden: int, layers: int, vocab: int, seq_len: int) -> dict[str, torch.nn.Module]:
    config = FoundryConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 64 * 64 or 64,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 128),
        max_position_embeddings=max(seq_len, 512),
    )
    torch.manual_seed(0)
    foundry = FoundryForCausalLM(config)
    llama = LlamaForCausalLM(llama_config_from_foundry(config))
    llama.load_state_dict(foundry.state_dict(), strict=True)
    for model in (foundry, llama):
        model.set_attn_implementation("sdpa")
        assert model.config._attn_implementation == "sdpa"
    return {"foundry": foundry, "llama": llama}


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer or a memory reading sees it done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model: torch.nn.Module, batch: torch.Tensor, bf16: bool = False) -> Callable[[], float]:
    """Returns a measurement: tokens/s of one forward + backward + AdamW step (bf16 autocast if asked)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def measure() -> float:
        model.train()
        _sync(batch.device)
        start = time.perf_counter()
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(batch.device)
        return batch.numel() / (time.perf_counter() - start)

    return measure


def generate_run(
    model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int, bf16: bool = False
) -> Callable[[], float]:
    """Returns a measurement: generated tokens/s of one greedy decode with the KV cache."""

    @torch.no_grad()
    @torch.autocast(prompt.device.type, dtype=torch.bfloat16, enabled=bf16)
    def measure() -> float:
        model.eval()
        _sync(prompt.device)
        start = time.perf_counter()
        model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )
        _sync(prompt.device)
        return prompt.shape[0] * new_tokens / (time.perf_counter() - start)

    return measure


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


class HeapPeak(TorchDispatchMode):
    """The most heap in use (glibc ``mallinfo2``: allocated arena bytes + mmapped blocks) seen after
    any torch op, forward and backward alike. CPU tensors live on the malloc heap, so this is the
    CPU analogue of ``torch.cuda.max_memory_allocated``."""

    def __init__(self) -> None:
        super().__init__()
        self._mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        self._mallinfo2.restype = _Mallinfo2
        self.peak = 0

    def in_use(self) -> int:
        info = self._mallinfo2()
        return info.uordblks + info.hblkhd

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.in_use())
        return out


def step_peak_memory_mb(model: torch.nn.Module, batch: torch.Tensor, bf16: bool = False) -> float:
    """MB memory grows by at its peak during one training step, over what it holds between steps
    (weights, gradients freed, AdamW state: a warm-up step creates the state first). On a GPU,
    from torch's allocator statistics; on CPU, from the heap (``HeapPeak``)."""
    step = train_step(model, batch, bf16)
    step()
    gc.collect()
    if batch.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(batch.device)
        baseline = torch.cuda.memory_allocated(batch.device)
        step()
        return (torch.cuda.max_memory_allocated(batch.device) - baseline) / 2**20
    with HeapPeak() as heap:
        baseline = heap.in_use()
        step()
    return (heap.peak - baseline) / 2**20


def interleave(measures: dict[str, Callable[[], float]], rounds: int) -> tuple[dict[str, float], float]:
    """Per-model median rate, and the median over rounds of the paired ratio first/second model.

    Each round runs A-B-B-A after one warm-up call each. A round's ratio compares the two models
    under the same machine state, so slow drifts of load (±10-30% here) cancel in the ratio instead
    of landing on whichever model happened to run during a busy stretch.
    """
    for measure in measures.values():
        measure()  # warm-up: allocator, optimizer state, kernels
    names = list(measures)
    results: dict[str, list[float]] = {name: [] for name in names}
    ratios = []
    for _ in range(rounds):
        this_round: dict[str, list[float]] = {name: [] for name in names}
        for name in [*names, *reversed(names)]:
            this_round[name].append(measures[name]())
        for name in names:
            results[name].extend(this_round[name])
        ratios.append(statistics.mean(this_round[names[0]]) / statistics.mean(this_round[names[1]]))
    return {name: statistics.median(values) for name, values in results.items()}, statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats (< 1 minute)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 weights), as mixed-precision training")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    batch_size, seq_len = (4, 128) if args.quick else (args.batch, args.seq_len)
    train_rounds, generate_rounds = (3, 2) if args.quick else (16, 8)
    prompt_len, new_tokens = (16, 16) if args.quick else (32, 64)

    models = {name: model.to(device) for name, model in build_pair(args.hidden, args.layers, args.vocab, seq_len).items()}
    n_params = models["foundry"].num_parameters()
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, args.vocab, (batch_size, seq_len), generator=generator).to(device)
    prompt = torch.randint(1, args.vocab, (batch_size, prompt_len), generator=generator).to(device)

    train, train_ratio = interleave({n: train_step(m, batch, args.bf16) for n, m in models.items()}, train_rounds)
    generate, generate_ratio = interleave(
        {n: generate_run(m, prompt, new_tokens, args.bf16) for n, m in models.items()}, generate_rounds
    )
    memory = {name: step_peak_memory_mb(model, batch, args.bf16) for name, model in models.items()}
    peak = peak_flops(device)
    flops = models["foundry"].flops_per_token(seq_len)

    precision = "bf16 autocast" if args.bf16 else "fp32"
    print(f"config: hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, {n_params / 1e6:.1f}M params, "
          f"sdpa, {precision}, {device} ({args.threads} CPU threads); train batch {batch_size}x{seq_len}, "
          f"generate batch {batch_size} prompt {prompt_len} + {new_tokens} new tokens; "
          f"medians of {2 * train_rounds} interleaved steps / {2 * generate_rounds} generations per model; "
          f"ratio = median of per-round paired ratios")
    rows = (("train_tokens_per_s", train, train_ratio), ("generate_tokens_per_s", generate, generate_ratio))
    print(f"{'metric':<24}{'foundry':>12}{'llama':>12}{'ratio':>8}")
    for name, result, ratio in rows:
        print(f"{name:<24}{result['foundry']:>12.1f}{result['llama']:>12.1f}{ratio:>8.3f}")
    if peak:
        print(f"{'train_mfu':<24}{mfu(flops, train['foundry'], peak, 1):>12.3f}{mfu(flops, train['llama'], peak, 1):>12.3f}")
    memory_ratio = memory["llama"] / memory["foundry"]
    print(f"{'train_step_peak_mb':<24}{memory['foundry']:>12.1f}{memory['llama']:>12.1f}{memory_ratio:>8.3f}"
          "   (peak heap growth in a step; lower is better, ratio = llama / foundry)")
    for name, result, ratio in rows:
        print(f"RESULT {name} ours={result['foundry']:.1f} ref={result['llama']:.1f} ratio={ratio:.3f} target=1.0")
    print(f"RESULT train_step_peak_mb ours={memory['foundry']:.1f} ref={memory['llama']:.1f} "
          f"ratio={memory_ratio:.3f} target=1.0")


if __name__ == "__main__":
    main()

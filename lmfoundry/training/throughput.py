"""Tokens per second and model FLOPs utilisation (MFU, PaLM appendix B).

MFU = achieved model FLOPs / peak FLOPs: ``flops_per_token * tokens_per_s / (peak * devices)``.
The peak is the dense bf16 tensor-core figure of the device, looked up by name in a small table,
or ``train.peak_flops_per_device`` from the recipe (which also enables MFU on CPU, where there is no
meaningful table entry).
"""

from __future__ import annotations

import torch

# Dense (no sparsity) bf16 peak FLOP/s per device, from the vendors' data sheets. Matched in order
# against torch.cuda.get_device_name(), so more specific names come first.
PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("A6000", 155e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),  # fp16: V100 has no bf16
    ("T4", 65e12),  # fp16
    ("MI300X", 1307e12),
    ("MI250X", 383e12),
]


def peak_flops(device: torch.device, configured: float | None = None) -> float | None:
    """Peak FLOP/s of one device: the configured value, else the table entry for this GPU, else None."""
    if configured:
        return float(configured)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in name.lower():
            return flops
    return None


def mfu(flops_per_token: float, tokens_per_s: float, peak_per_device: float | None, devices: int) -> float | None:
    """Fraction of peak achieved, or None when the peak is unknown."""
    if not peak_per_device:
        return None
    return flops_per_token * tokens_per_s / (peak_per_device * devices)

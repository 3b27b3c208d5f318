"""The recipe's ``generate`` section: how ``lmfoundry generate`` and ``lmfoundry chat`` sample and load."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplingSettings:
    """How tokens are picked (``temperature == 0`` means greedy) and how the model is loaded."""

    max_new_tokens: int = field(default=64, metadata={"alias": "--max-new-tokens"})
    """tokens to generate"""
    temperature: float = field(default=0.8, metadata={"alias": "--temperature"})
    """sampling temperature; 0 = greedy"""
    top_p: float = field(default=0.95, metadata={"alias": "--top-p"})
    """nucleus sampling: the smallest token set with this probability"""
    top_k: int = field(default=50, metadata={"alias": "--top-k"})
    """sample among the k likeliest tokens; 0 = off"""
    seed: int | None = field(default=None, metadata={"alias": "--seed"})
    """seed for reproducible sampling"""
    device: str = field(default="auto", metadata={"alias": "--device"})
    """auto (CUDA, then MPS, then CPU), cpu, cuda or mps"""
    revision: str | None = field(default=None, metadata={"alias": "--revision"})
    """Hub branch, tag or commit"""
    trust_remote_code: bool = field(default=False, metadata={"alias": "--trust-remote-code"})
    """run the model folder's or Hub repo's own modeling code (a Foundry model needs none: lmfoundry has its classes)"""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens: expected a positive integer, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"--temperature: expected a value >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top-p: expected a value in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"--top-k: expected an integer >= 0 (0 = off), got {self.top_k}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}")

    def generate_kwargs(self) -> dict:
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_new_tokens": self.max_new_tokens}

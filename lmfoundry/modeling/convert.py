"""Convert saved checkpoints between the Foundry and Llama layouts.

The two models share parameter names and shapes, so conversion rewrites ``config.json`` and copies
the safetensors files byte for byte: weights (and their dtype) survive a round trip bitwise, and
sharded checkpoints stay sharded. Before anything is written the weight names are checked against
the target architecture, so a checkpoint that would not load ``strict`` is refused. Tokenizer and
generation-config files travel along. The output folder is built next to the destination and
moved into place, so an interrupted conversion never leaves a folder that looks complete.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedConfig

from lmfoundry.modeling import configuration_foundry, modeling_foundry
from lmfoundry.modeling.configuration_foundry import FoundryConfig
from lmfoundry.modeling.modeling_foundry import AUTO_MAP, FoundryForCausalLM

logger = logging.getLogger(__name__)

# Config fields that mean the same thing in both models (LlamaConfig's names).
SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_parameters",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "attention_dropout",
    "initializer_range",
    "use_cache",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
# Files the conversion writes itself; everything else in the source folder is copied unchanged.
_REWRITTEN = {"config.json", "configuration_foundry.py", "modeling_foundry.py"}


def llama_config_from_foundry(config: FoundryConfig, source: str = "FoundryConfig") -> LlamaConfig:
    """The LlamaConfig of the same architecture; ``source`` names the config in error messages.

    Raises ValueError for options Llama cannot express (``qk_norm``); ``z_loss_coef`` only shapes
    the training loss, so it is dropped with a warning.
    """
    if config.qk_norm:
        raise ValueError(
            f"{source}: qk_norm=true has no Llama equivalent (LlamaAttention has no q_norm/k_norm); "
            "only checkpoints trained with qk_norm=false convert to Llama"
        )
    if config.z_loss_coef:
        logger.warning("dropping z_loss_coef=%s: it is a training-only loss term Llama does not have",
                       config.z_loss_coef)
    return LlamaConfig(
        **{name: copy.deepcopy(getattr(config, name)) for name in SHARED_FIELDS},
        hidden_act="silu",
        head_dim=config.head_dim,
        architectures=["LlamaForCausalLM"],
    )


def foundry_config_from_llama(llama_config: LlamaConfig, source: str = "LlamaConfig") -> FoundryConfig:
    """The FoundryConfig of the same architecture; ``source`` names the config in error messages.

    Raises ValueError for Llama configs Foundry cannot express (an activation other than SiLU, a
    head_dim other than hidden_size / num_attention_heads, or any invalid Foundry config).
    """
    if llama_config.model_type != "llama":
        raise ValueError(f"{source}: model_type is {llama_config.model_type!r}, expected 'llama'")
    if llama_config.hidden_act != "silu":
        raise ValueError(f"{source}: hidden_act={llama_config.hidden_act!r}; Foundry's MLP is SwiGLU (silu) only")
    derived_head_dim = llama_config.hidden_size // llama_config.num_attention_heads
    if llama_config.head_dim != derived_head_dim:
        raise ValueError(
            f"{source}: head_dim={llama_config.head_dim} differs from hidden_size / "
            f"num_attention_heads = {derived_head_dim}; Foundry derives head_dim and cannot express it"
        )
    return FoundryConfig(
        **{name: copy.deepcopy(getattr(llama_config, name)) for name in SHARED_FIELDS},
        architectures=["FoundryForCausalLM"],
    )


def foundry_to_llama(src_dir: str | os.PathLike, dst_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a ``LlamaForCausalLM`` checkpoint equivalent to the Foundry checkpoint in ``src_dir``."""
    src = Path(src_dir)
    llama_config = llama_config_from_foundry(FoundryConfig.from_pretrained(src), str(src / "config.json"))
    _check_weight_names(src, LlamaForCausalLM, llama_config)
    return _write_converted(src, Path(dst_dir), llama_config, overwrite, with_foundry_code=False)


def llama_to_foundry(src_dir: str | os.PathLike, dst_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a Foundry checkpoint (with its remote code) equivalent to the Llama checkpoint in ``src_dir``."""
    src = Path(src_dir)
    config = foundry_config_from_llama(LlamaConfig.from_pretrained(src), str(src / "config.json"))
    config.auto_map = dict(AUTO_MAP)
    _check_weight_names(src, FoundryForCausalLM, config)
    return _write_converted(src, Path(dst_dir), config, overwrite, with_foundry_code=True)


def _check_weight_names(src: Path, model_cls: type, config: PreTrainedConfig) -> None:
    """Refuse checkpoints whose tensor names are not exactly what ``model_cls`` loads strictly."""
    files = sorted(src.glob("*.safetensors"))
    if not files:
        found = ", ".join(sorted(p.name for p in src.iterdir())) or "nothing"
        raise ValueError(f"{src}: no *.safetensors weights to convert (found: {found}); only safetensors are supported")
    names: set[str] = set()
    for path in files:
        with safe_open(path, framework="pt") as handle:
            names.update(handle.keys())
    with torch.device("meta"):
        expected = set(model_cls(config).state_dict())
    if config.tie_word_embeddings:  # a tied head may or may not be stored; it is rebuilt from the embedding
        expected.discard("lm_head.weight")
        names.discard("lm_head.weight")
    missing, unexpected = sorted(expected - names), sorted(names - expected)
    if missing or unexpected:
        raise ValueError(
            f"{src}: weights do not match {model_cls.__name__} for this config "
            f"(missing: {missing[:5] or 'none'}, unexpected: {unexpected[:5] or 'none'})"
        )


def _write_converted(
    src: Path, dst: Path, config: PreTrainedConfig, overwrite: bool, with_foundry_code: bool
) -> Path:
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; pass overwrite=True to replace it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    staging.chmod(0o755)
    try:
        for path in src.iterdir():
            if path.is_file() and path.name not in _REWRITTEN:
                shutil.copy2(path, staging / path.name)
        config.save_pretrained(staging)
        if with_foundry_code:
            for module in (configuration_foundry, modeling_foundry):
                shutil.copy2(module.__file__, staging / Path(module.__file__).name)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("converted %s -> %s (%s)", src, dst, type(config).__name__)
    return dst


__all__ = [
    "SHARED_FIELDS",
    "foundry_config_from_llama",
    "foundry_to_llama",
    "llama_config_from_foundry",
    "llama_to_foundry",
]

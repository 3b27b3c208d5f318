#!/usr/bin/env bash
# The GPU checks, as one prepared command for a session that is lent a GPU (about 8 minutes on one H200):
#   1. benchmarks/model_speed.py at the `small` recipe's shape under bf16 autocast: Foundry vs
#      LlamaForCausalLM training and generation tokens/s, MFU, peak memory.
#   2. the real training loop, `accelerate launch` on one GPU in bf16 with torch.compile: the `small`
#      model for STEPS steps; metrics.jsonl carries tokens/s and MFU per logged step.
#   3. the same loop under FSDP2 (lmfoundry/recipes/accelerate/fsdp.yaml, one process per GPU) for
#      STEPS/2 steps with a sharded DCP checkpoint, then resumed from it for STEPS/4 more: the path
#      tests/test_fsdp.py proves on 2 CPU processes (the log must say every parameter tensor is sharded).
#   4. if deepspeed is importable: a few steps under ZeRO-3 (deepspeed_zero3.yaml), whose log must
#      count the whole model's parameters, not the 0-size ZeRO-3 placeholders.
# The data is the running Python's standard library (tokenizer + shards built here), so the check
# needs only torch, transformers, accelerate, tokenizers, tiktoken, safetensors, matplotlib and
# PyYAML, which the device image has; neither datasets nor datatrove is imported.
#
#   bash benchmarks/device_check.sh                       # on the GPU machine; results under $OUT
#   DEVICE_CHECK_CPU=1 bash benchmarks/device_check.sh    # rehearsal on CPU: tiny shapes, a few minutes
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
log() { echo "== $* ($(date +%T))"; }

if [[ -n "${DEVICE_CHECK_CPU:-}" ]]; then
  STEPS=${STEPS:-8}
  speed=(--quick --threads 2)
  model=(--model.hidden_size 64 --model.intermediate_size 128 --model.num_hidden_layers 2
         --model.num_attention_heads 4 --model.num_key_value_heads 2 --model.max_position_embeddings 128)
  train=(--train.seq_len 128 --train.micro_batch_size 4 --train.global_batch_size 8 --train.compile false
         --train.mixed_precision no)
  launch=(--cpu --num_processes 1 --mixed_precision no)
  # the CPU test's path: accelerate's FSDP2 plugin over gloo, 2 processes (ACCELERATE_USE_CPU=1)
  fsdp=(--config_file lmfoundry/recipes/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no)
  export ACCELERATE_USE_CPU=1
  zero3=(--config_file lmfoundry/recipes/accelerate/deepspeed_zero3.yaml --num_processes 2 --mixed_precision no)
  vocab=1024
else
  STEPS=${STEPS:-60}
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  speed=(--device cuda --bf16 --threads 16 --hidden 768 --layers 12 --vocab 32768 --batch 16 --seq-len 1024)
  model=()
  train=(--train.micro_batch_size 16 --train.global_batch_size 64)
  launch=(--num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no)
  GPUS=$(nvidia-smi -L | wc -l)
  fsdp=(--config_file lmfoundry/recipes/accelerate/fsdp.yaml --num_processes "$GPUS")
  zero3=(--config_file lmfoundry/recipes/accelerate/deepspeed_zero3.yaml --num_processes "$GPUS")
  vocab=32768
fi
common=(--train.shards "$OUT/shards" --train.tokenizer "$OUT/tokenizer" --train.max_tokens null
        --train.log_every 5 --train.eval_every 0 --train.sample_every 0 --train.report_to none
        --train.warmup_steps 10 "${model[@]}" "${train[@]}")

log "1/4 model_speed"
python benchmarks/model_speed.py "${speed[@]}" 2>&1 | tee "$OUT/model_speed.txt"

log "data: tokenizer and shards from the standard library"
python - "$OUT" "$vocab" <<'EOF'
import json, sys, sysconfig
from pathlib import Path
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.tokenization import train_tokenizer
out, vocab = Path(sys.argv[1]), int(sys.argv[2])
corpus = out / "stdlib.jsonl"
with corpus.open("w", encoding="utf-8") as f:
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):  # top-level modules, ~7 MB
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            f.write(json.dumps({"text": text}) + "\n")
train_tokenizer([corpus], vocab, out / "tokenizer", held_out_fraction=0.01)
config = TokenizeConfig(val_fraction=0.01, workers=8, overwrite=True)
manifest = tokenize_shards(config, [corpus], out / "tokenizer", out / "shards")
print({split: manifest["splits"][split]["tokens"] for split in manifest["splits"]})
EOF

report() {  # the last train record of a run: loss, tokens/s, MFU
  python - "$1/metrics.jsonl" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
run = next(r for r in records if r.get("kind") == "run")
last = [r for r in records if r.get("kind") == "train"][-1]
print({k: run.get(k) for k in ("device_type", "device_name", "num_processes", "mixed_precision", "distributed_type", "versions")})
print({k: last.get(k) for k in ("step", "loss", "grad_norm", "tokens_per_s", "mfu", "train_time_s")})
EOF
}

log "2/4 training loop, one GPU, bf16"
rm -rf "$OUT/single"
accelerate launch "${launch[@]}" -m lmfoundry train small --output "$OUT/single" "${common[@]}" \
  --train.max_steps "$STEPS" 2>&1 | tail -n 20 | tee "$OUT/single.txt"
report "$OUT/single" | tee -a "$OUT/single.txt"

log "3/4 FSDP2: train, sharded checkpoint, resume"
rm -rf "$OUT/fsdp"
half=$((STEPS / 2)); more=$((STEPS / 2 + STEPS / 4))
accelerate launch "${fsdp[@]}" -m lmfoundry train small --output "$OUT/fsdp" "${common[@]}" \
  --train.compile false --train.max_steps "$half" --train.checkpoint_every "$half" 2>&1 | tail -n 20 | tee "$OUT/fsdp.txt"
accelerate launch "${fsdp[@]}" -m lmfoundry train small --output "$OUT/fsdp" --resume "${common[@]}" \
  --train.compile false --train.max_steps "$more" --train.checkpoint_every "$half" 2>&1 | tail -n 20 | tee -a "$OUT/fsdp.txt"
report "$OUT/fsdp" | tee -a "$OUT/fsdp.txt"
grep -q "FSDP: \([0-9]*\) of \1 parameter tensors sharded" "$OUT/fsdp/train.log" || { echo "FSDP did not shard"; exit 1; }

if python -c "import deepspeed" 2>/dev/null; then
  log "4/4 DeepSpeed ZeRO-3: a few steps"
  rm -rf "$OUT/zero3"
  # DeepSpeed on CPU needs the process not forced onto the CPU (its own CPU accelerator runs it)
  env -u ACCELERATE_USE_CPU accelerate launch "${zero3[@]}" -m lmfoundry train small --output "$OUT/zero3" "${common[@]}" \
    --train.compile false --train.max_steps 10 2>&1 | tail -n 20 | tee "$OUT/zero3.txt"
  report "$OUT/zero3" | tee -a "$OUT/zero3.txt"
  grep "parameters" "$OUT/zero3/train.log" | tee -a "$OUT/zero3.txt"
  if grep -q "training 0.00M parameters" "$OUT/zero3/train.log"; then echo "ZeRO-3 parameter count is wrong"; exit 1; fi
else
  log "4/4 skipped: deepspeed is not installed (DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed)"
fi
log "done: $OUT"

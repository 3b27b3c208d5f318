#!/usr/bin/env bash
# The GPU checks, as one prepared command for a session that is lent a GPU (about 8 minutes on one H200):
#   1. benchmarks/model_speed.py at the `small` recipe's shape under bf16 autocast: Foundry vs
#      LlamaForCausalLM training and generation tokens/s, MFU, peak memory.
#   2. the real training loop, `accelerate launch` on one GPU in bf16 with torch.compile: the `small`
#      model for STEPS steps; metrics.jsonl carries tokens/s and MFU per logged step, and the peak
#      GPU memory in use during the run (nvidia-smi, sampled every 0.5 s) lands in $OUT/<step>.txt.
#   3. the same loop under FSDP2 (lmfoundry/recipes/accelerate/fsdp.yaml, one process per GPU) for
#      STEPS/2 steps with a sharded DCP checkpoint, then resumed from it for STEPS/4 more: the path
#      tests/test_fsdp.py proves on 2 CPU processes (the log must say every parameter tensor is a
#      DTensor and, with more than one process, that rank 0 holds only its share; on one GPU the
#      mesh is 1-wide, so that share is the whole model).
#   4. if deepspeed is importable: a few steps under ZeRO-3 (deepspeed_zero3.yaml), whose log must
#      count the whole model's parameters, not the 0-size ZeRO-3 placeholders, and shard them the same way.
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

check_sharded() {  # check_sharded TRAIN_LOG KIND PROCESSES: the loop's "KIND: S of N parameter tensors
  # sharded; rank 0 holds L of T parameters" line: every tensor sharded and, over P > 1 processes, L <= T/P + 1%
  local line s n l t
  line=$(grep -oE "$2: [0-9]+ of [0-9]+ parameter tensors sharded; rank 0 holds [0-9]+ of [0-9]+" "$1" | tail -n 1)
  [[ -n $line ]] || { echo "$2: no sharding line in $1"; exit 1; }
  read -r s n l t <<<"$(sed -E 's/.*: ([0-9]+) of ([0-9]+) .* holds ([0-9]+) of ([0-9]+)/\1 \2 \3 \4/' <<<"$line")"
  [[ $s -eq $n ]] || { echo "$2 sharded only $s of $n parameter tensors"; exit 1; }
  if (( $3 > 1 && l * $3 > t + t / 100 )); then echo "$2: rank 0 holds $l of $t parameters over $3 processes"; exit 1; fi
  echo "$line (over $3 process(es))"
}

MEMORY_PID=
trap '[[ -z $MEMORY_PID ]] || kill "$MEMORY_PID" 2>/dev/null || true' EXIT  # a failed step leaves no sampler
memory_start() {  # on a GPU: sample the memory in use (MiB, every GPU) every 0.5 s into $OUT/$1.mem
  [[ -n "${DEVICE_CHECK_CPU:-}" ]] && return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT/$1.mem" &
  MEMORY_PID=$!
}
memory_stop() {  # the peak of that sampling, appended to $OUT/$1.txt
  [[ -z $MEMORY_PID ]] && return 0
  kill "$MEMORY_PID" 2>/dev/null || true; wait "$MEMORY_PID" 2>/dev/null || true; MEMORY_PID=
  echo "peak GPU memory in use (nvidia-smi, CUDA context and allocator cache included): $(sort -n "$OUT/$1.mem" | tail -n 1) MiB" \
    | tee -a "$OUT/$1.txt"
}

if [[ -n "${DEVICE_CHECK_CPU:-}" ]]; then
  STEPS=${STEPS:-8}
  speed=(--quick --threads 2)
  model=(--model.hidden_size 64 --model.intermediate_size 128 --model.num_hidden_layers 2
         --model.num_attention_heads 4 --model.num_key_value_heads 2 --model.max_position_embeddings 128)
  train=(--train.seq_len 128 --train.micro_batch_size 4 --train.global_batch_size 8 --train.compile false
         --train.mixed_precision no)
  launch=(--cpu --num_processes 1 --mixed_precision no)
  # the CPU test's path: accelerate's FSDP2 plugin over gloo, 2 processes (ACCELERATE_USE_CPU=1)
  PROCESSES=2
  fsdp=(--config_file lmfoundry/recipes/accelerate/fsdp.yaml --num_processes "$PROCESSES" --mixed_precision no)
  export ACCELERATE_USE_CPU=1
  zero3=(--config_file lmfoundry/recipes/accelerate/deepspeed_zero3.yaml --num_processes "$PROCESSES" --mixed_precision no)
  vocab=1024
else
  STEPS=${STEPS:-60}
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  speed=(--device cuda --bf16 --threads 16 --hidden 768 --layers 12 --vocab 32768 --batch 16 --seq-len 1024)
  model=()
  train=(--train.micro_batch_size 16 --train.global_batch_size 64)
  launch=(--num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no)
  PROCESSES=$(nvidia-smi -L | wc -l)  # one per GPU
  fsdp=(--config_file lmfoundry/recipes/accelerate/fsdp.yaml --num_processes "$PROCESSES")
  zero3=(--config_file lmfoundry/recipes/accelerate/deepspeed_zero3.yaml --num_processes "$PROCESSES")
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
train_tokenizer([corpus], vocab, out / "tokenizer", held_out_fraction=0.01, overwrite=True)  # a rerun in the same $OUT
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
memory_start single
accelerate launch "${launch[@]}" -m lmfoundry train small --output "$OUT/single" "${common[@]}" \
  --train.max_steps "$STEPS" 2>&1 | tail -n 20 | tee "$OUT/single.txt"
memory_stop single
report "$OUT/single" | tee -a "$OUT/single.txt"

log "3/4 FSDP2: train, sharded checkpoint, resume"
rm -rf "$OUT/fsdp"
half=$((STEPS / 2)); more=$((STEPS / 2 + STEPS / 4))
memory_start fsdp
accelerate launch "${fsdp[@]}" -m lmfoundry train small --output "$OUT/fsdp" "${common[@]}" \
  --train.compile false --train.max_steps "$half" --train.checkpoint_every "$half" 2>&1 | tail -n 20 | tee "$OUT/fsdp.txt"
accelerate launch "${fsdp[@]}" -m lmfoundry train small --output "$OUT/fsdp" --resume "${common[@]}" \
  --train.compile false --train.max_steps "$more" --train.checkpoint_every "$half" 2>&1 | tail -n 20 | tee -a "$OUT/fsdp.txt"
memory_stop fsdp
report "$OUT/fsdp" | tee -a "$OUT/fsdp.txt"
check_sharded "$OUT/fsdp/train.log" FSDP "$PROCESSES" | tee -a "$OUT/fsdp.txt"

if python -c "import deepspeed" 2>/dev/null; then
  log "4/4 DeepSpeed ZeRO-3: a few steps"
  rm -rf "$OUT/zero3"
  memory_start zero3
  # DeepSpeed on CPU needs the process not forced onto the CPU (its own CPU accelerator runs it)
  env -u ACCELERATE_USE_CPU accelerate launch "${zero3[@]}" -m lmfoundry train small --output "$OUT/zero3" "${common[@]}" \
    --train.compile false --train.max_steps 10 2>&1 | tail -n 20 | tee "$OUT/zero3.txt"
  memory_stop zero3
  report "$OUT/zero3" | tee -a "$OUT/zero3.txt"
  grep "training .* parameters" "$OUT/zero3/train.log" | tee -a "$OUT/zero3.txt"
  if grep -q "training 0.00M parameters" "$OUT/zero3/train.log"; then echo "ZeRO-3 parameter count is wrong"; exit 1; fi
  check_sharded "$OUT/zero3/train.log" DEEPSPEED "$PROCESSES" | tee -a "$OUT/zero3.txt"
else
  log "4/4 skipped: deepspeed is not installed (DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed)"
fi
log "done: $OUT"

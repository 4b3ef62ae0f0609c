#!/usr/bin/env bash
# Every accuracy number of the demo model card (docs/demo_model.md, its int8/int4 rows included), for one
# HF model directory, as JSON lines (one `onepass eval --json` object per line, tagged with "row"):
#
#     bash tools/demo_model/eval_all.sh MODEL_DIR CORPUS OUT_DIR      # about 11 minutes on 2 cores
#
# CORPUS is make_corpus.py's output (test.jsonl, train.jsonl); OUT_DIR gets results.jsonl, the two
# training-clip manifests and the ONNX exports. Summarise with tools/demo_model/eval_table.py. CHUNKS="80"
# limits the held-out chunk sizes (default 1120 560 160 80).
set -euo pipefail
model=$1 corpus=$2 out=$3
mkdir -p "$out"
res=$out/results.jsonl
: > "$res"
test=$corpus/test.jsonl

run() {  # run ROW ARGS...: one eval, its JSON line tagged with the row name
    local row=$1
    shift
    onepass eval --manifest "$@" --json | tail -n 1 | python -c "import json, sys; d = json.load(sys.stdin); \
d['row'] = '$row'; print(json.dumps(d))" >> "$res"
    echo "$row done" >&2
}

# training clips: the first 50 per language of the 9 base voice variants and of the newer (wide) ones
python - "$corpus/train.jsonl" "$out" <<'EOF'
import json, sys
from tools.demo_model.make_corpus import TRAIN_VARIANTS

rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
for group in ("base", "wide"):
    picked = []
    for lang in ("en-US", "es-ES", "de-DE"):
        mine = [r for r in rows if r["lang"] == lang
                and ((r["voice"].split("+") + [""])[1] in TRAIN_VARIANTS) == (group == "base")]
        picked += mine[:50]
    with open(f"{sys.argv[2]}/train50_{group}.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in picked)
EOF

for c in ${CHUNKS:-1120 560 160 80}; do
    run "offline $c" "$test" --model "$model" --chunk-ms $c --mode offline
    run "stream $c" "$test" --model "$model" --chunk-ms $c --mode stream
done
run "auto offline 1120" "$test" --model "$model" --chunk-ms 1120 --language auto
run "auto stream 80" "$test" --model "$model" --chunk-ms 80 --mode stream --language auto
run "torch offline 1120" "$test" --model "$model" --chunk-ms 1120 --backend torch
for g in base wide; do
    if [ -s "$out/train50_$g.jsonl" ]; then  # empty for a corpus without --train-variants wide
        run "train50 $g" "$out/train50_$g.jsonl" --model "$model" --chunk-ms 1120
    fi
done
for q in none int8 int4; do
    onepass export --model "$model" --quantize $q --chunk-ms 1120 --out "$out/onnx_$q" > /dev/null
    du -b "$out/onnx_$q/onepass_core.onnx" | awk -v q=$q '{print "{\"row\": \"size " q "\", \"bytes\": " $1 "}"}' >> "$res"
    for c in 1120 160; do
        run "$q stream $c" "$test" --model "$model" --backend onnxruntime --onnx-dir "$out/onnx_$q" \
            --chunk-ms $c --mode stream
    done
    run "$q offline 1120" "$test" --model "$model" --backend onnxruntime --onnx-dir "$out/onnx_$q" \
        --chunk-ms 1120 --mode offline
done

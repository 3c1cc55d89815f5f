#!/usr/bin/env bash
# The tracer's own cost: bench figures in peer mode without and with
# `shortpath trace --follow` attached (every packet, --sample 1, and a
# 1-in-100 sample). Output: a Markdown table for docs/PERFORMANCE.md.
# Usage: scripts/tracer-cost.sh [SECONDS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
reps=${2:-3}
sp=target/release/shortpath
lab=spcost
$sp lab down --name $lab >/dev/null 2>&1 || true
$sp lab up --name $lab --mode peer >/dev/null 2>&1
tmp=$(mktemp -d)
trap '$sp lab down --name $lab >/dev/null 2>&1; rm -rf "$tmp"' EXIT

tests=(udp_rr tcp_rr tcp_stream udp_pps)
bench() { # test -> value
  $sp bench --name $lab --modes peer --tests "$1" --cpu 0 --duration "$secs" --warmup 0.5 --rounds 1 \
    --json "$tmp/spcost.json" >/dev/null 2>&1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[2]))["summary"]["peer"][sys.argv[1]]["value"])' "$1" "$tmp/spcost.json"
}
traced() { # test sample -> value
  local follow
  follow=$(python3 -c "print($secs + 2)")
  $sp trace --name $lab --follow --duration "$follow" --sample "$2" --json "$tmp/spcost-trace.json" >/dev/null 2>&1 &
  local pid=$!
  sleep 0.5
  local v
  v=$(bench "$1")
  wait $pid
  echo "$v"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "| Test (peer mode) | Without tracer | Tracer, every packet | Cost | Tracer, 1 in 100 | Cost |"
echo "| --- | --- | --- | --- | --- | --- |"
for t in "${tests[@]}"; do
  base=(); all=(); some=()
  for _ in $(seq "$reps"); do
    base+=("$(bench "$t")")
    all+=("$(traced "$t" 1)")
    some+=("$(traced "$t" 100)")
  done
  b=$(printf '%s\n' "${base[@]}" | median)
  a=$(printf '%s\n' "${all[@]}" | median)
  s=$(printf '%s\n' "${some[@]}" | median)
  unit=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(iter(d["summary"]["peer"].values()))["unit"])' "$tmp/spcost.json")
  python3 -c 'import sys; t,u,b,a,s=sys.argv[1:]; b,a,s=float(b),float(a),float(s); f=lambda v: f"{v:,.0f}" if v>100 else f"{v:.2f}"; print(f"| {t} ({u}) | {f(b)} | {f(a)} | {(a/b-1)*100:+.0f} % | {f(s)} | {(s/b-1)*100:+.0f} % |")' "$t" "$unit" "$b" "$a" "$s"
done

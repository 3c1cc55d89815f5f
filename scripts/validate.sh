#!/usr/bin/env bash
# Side-by-side of shortpath's load generator with iperf3 (TCP stream) and
# sockperf (UDP ping-pong) on the host path and the pod path, same lab,
# same CPU placement (client and server on CPU 0). Output: a Markdown table
# for docs/PERFORMANCE.md. Usage: scripts/validate.sh [SECONDS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
reps=${2:-3}
sp=target/release/shortpath
lab=spval
$sp lab down --name $lab >/dev/null 2>&1 || true
$sp lab up --name $lab >/dev/null 2>&1
tmp=$(mktemp -d)
trap '$sp lab down --name $lab >/dev/null 2>&1; rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

iperf() { # client-ns server-ns addr
  local out=()
  for _ in $(seq "$reps"); do
    $sp lab exec --name $lab "$2" -- taskset -c 0 iperf3 -s -1 -B "$3" >/dev/null 2>&1 &
    sleep 0.5
    out+=("$($sp lab exec --name $lab "$1" -- taskset -c 0 iperf3 -c "$3" -t "$secs" -J |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')")
    wait
  done
  printf '%s\n' "${out[@]}" | median
}

sockperf_p50() { # client-ns server-ns addr -> p50 round trip in µs (sockperf prints half of it)
  local out=()
  for _ in $(seq "$reps"); do
    # `lab exec` execs the command in place, so this PID is the server's:
    # stop exactly it (a pattern match would reach sockperf servers outside
    # the lab).
    $sp lab exec --name $lab "$2" -- taskset -c 0 sockperf sr -i "$3" -p 11111 >/dev/null 2>&1 &
    local server=$!
    sleep 0.5
    out+=("$($sp lab exec --name $lab "$1" -- taskset -c 0 sockperf pp -i "$3" -p 11111 -t "$secs" -m 16 2>&1 |
      sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' | awk '{print $1*2}')")
    kill "$server" 2>/dev/null || true
    wait "$server" || true
  done
  printf '%s\n' "${out[@]}" | median
}

ours() { # modes -> JSON
  $sp bench --name $lab --modes "$1" --tests udp_rr,tcp_stream --cpu 0 --duration "$secs" --rounds "$reps" --json "$tmp/spval.json" >/dev/null 2>&1
  cat "$tmp/spval.json"
}

echo "| Path | Mode | iperf3 Gbit/s | shortpath tcp_stream Gbit/s | sockperf p50 RTT µs | shortpath udp_rr p50 µs |"
echo "| --- | --- | --- | --- | --- | --- |"
for mode in bridge peer; do
  $sp mode --name $lab $mode >/dev/null 2>&1
  i=$(iperf pod-a pod-b 172.17.2.2)
  s=$(sockperf_p50 pod-a pod-b 172.17.2.2)
  o=$(ours $mode)
  read -r ot op <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1])["summary"][sys.argv[2]]; print(round(d["tcp_stream"]["value"],2), round(d["udp_rr"]["p50_us"],1))' "$o" $mode)"
  printf '| pod → remote pod | %s | %.2f | %s | %.1f | %s |\n' $mode "$i" "$ot" "$s" "$op"
done
$sp mode --name $lab bridge >/dev/null 2>&1
i=$(iperf node-a node-b 192.168.1.2)
s=$(sockperf_p50 node-a node-b 192.168.1.2)
o=$(ours host)
read -r ot op <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1])["summary"]["host"]; print(round(d["tcp_stream"]["value"],2), round(d["udp_rr"]["p50_us"],1))' "$o")"
printf '| node → node (host) | - | %.2f | %s | %.1f | %s |\n' "$i" "$ot" "$s" "$op"

#!/usr/bin/env bash
# Tensor parallelism on a real localhost cluster (issue 5): strata-coordinator + CPU
# strata-workers whose TP ranks all-reduce over Gloo, serving tests/fixtures/oracle/glm;
# `strata generate --raw-ids` must give exactly strata-run's greedy ids, on prompts longer than
# index_topk.
#  - TP=2 (1 stage × 2 workers), the ranks meeting in TP rank 0's gRPC rendezvous store. A TP rank
#    killed mid-stream (rank 1, then rank 0, which serves the store) ends every stream UNAVAILABLE
#    and makes the coordinator NOT_READY; once it is back the whole group meets again under a new
#    rendezvous id, the coordinator is READY and serves the same ids.
#  - PP=2 × TP=2 (4 workers), meeting in a --tp-store-dir directory; 8 concurrent streams; a rank
#    of the last stage killed and restarted.
#   tp_cluster_integration_test.sh COORDINATOR STRATA WORKER RUN   (run from the repository root)
# Every child is killed by its pid in teardown; every wait is bounded.
set -uo pipefail
coordinator=$1 strata=$2 worker=$3 run=$4
model=tests/fixtures/oracle/glm
tp_size=2
source "$(dirname "$0")/cluster_test_lib.sh"

compute_expected

# TP=2: one stage of two workers, rendezvous over gRPC at rank 0.
a=$(start_worker a) || fail "worker a did not start"
b=$(start_worker b) || fail "worker b did not start"
c1=$(start_coordinator c1 1 "$a" "$b") || fail "coordinator c1 did not start"
wait_state "$c1" READY || fail "TP=2 never READY"
check_cluster "$c1" "TP=2"
grep -q "tensor-parallel rank 1 of 2" "$tmp/b.log" || fail "worker b is not TP rank 1"
grep -q "formed over Gloo ($a," "$tmp/b.log" || fail "rank 1 did not meet in rank 0's store"

kill_mid_stream "$c1" b
restart_worker "$c1" b "$b"
grep -q "data plane formed again" "$tmp/a.log" || fail "surviving rank 0 did not meet again"
check_cluster "$c1" "TP=2 after restarting TP rank 1"
kill_mid_stream "$c1" a
restart_worker "$c1" a "$a"
check_cluster "$c1" "TP=2 after restarting TP rank 0 (the store)"
kill -TERM "$(cat "$tmp/c1.pid")" "$(cat "$tmp/a.pid")" "$(cat "$tmp/b.pid")"

# PP=2 × TP=2: four workers, stage-major, meeting in a shared directory.
mkdir -p "$tmp/gloo"
worker_flags=(--device cpu --kv_cache_mb 64 --tp_store_dir "$tmp/gloo")
ws=()
for n in p0 p1 p2 p3; do ws+=("$(start_worker $n)") || fail "worker $n did not start"; done
c2=$(start_coordinator c2 2 "${ws[@]}") || fail "coordinator c2 did not start"
wait_state "$c2" READY || fail "PP=2 × TP=2 never READY"
check_cluster "$c2" "PP=2 x TP=2"
grep -q "formed over Gloo ($tmp/gloo" "$tmp/p3.log" || fail "p3 did not meet in --tp-store-dir"

# Concurrent streams on the TP cluster, each with its full token count.
gens=()
for i in $(seq 8); do
  timeout 120 "$strata" generate --server "$c2" --prompt-ids "$i,${prompts[1]}" --max-tokens 9 \
    --ignore-eos --raw-ids >"$tmp/many$i.out" 2>&1 &
  gens+=($!)
done
for g in "${gens[@]}"; do wait "$g" || fail "a concurrent stream failed"; done
for i in $(seq 8); do
  n=$(grep -o '"ids":\[[^]]*\]' "$tmp/many$i.out" | tr ',' '\n' | wc -l)
  [[ $n == 9 ]] || fail "concurrent stream $i: $n tokens, expected 9: $(cat "$tmp/many$i.out")"
done
echo "PP=2 x TP=2: 8 concurrent streams complete"

kill_mid_stream "$c2" p3
restart_worker "$c2" p3 "${ws[3]}"
check_cluster "$c2" "PP=2 x TP=2 after restarting stage 1 TP rank 1"
echo "tp_cluster_integration_test: OK"

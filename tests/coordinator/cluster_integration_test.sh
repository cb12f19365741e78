#!/usr/bin/env bash
# A real cluster on localhost: strata-coordinator + CPU strata-workers (PP=1, then PP=2) serving
# tests/fixtures/oracle/glm; `strata generate --raw-ids` must give exactly strata-run's greedy ids,
# including a prompt longer than index_topk. Killing a worker mid-stream ends every stream
# UNAVAILABLE and health says NOT_READY; once the worker is back on its ports (gRPC and data plane)
# the cluster serves strata-run's ids again: PP=2 (the last stage killed, then the first) and PP=1.
# PP=3 serves tests/fixtures/oracle/dsv32 (4 full-indexer layers; GLM's [full, shared, full,
# shared] cannot make 3 stages that each start on a full layer).
#   cluster_integration_test.sh COORDINATOR STRATA WORKER RUN   (run from the repository root)
# Every child is killed by its pid in teardown; every wait is bounded.
set -uo pipefail
coordinator=$1 strata=$2 worker=$3 run=$4
model=tests/fixtures/oracle/glm
source "$(dirname "$0")/cluster_test_lib.sh"

compute_expected


# PP=1
w0=$(start_worker w0) || fail "worker w0 did not start"
c1=$(start_coordinator c1 1 "$w0") || fail "coordinator c1 did not start"
wait_state "$c1" READY || fail "PP=1 never READY"
check_cluster "$c1" "PP=1"
kill -TERM "$(cat "$tmp/c1.pid")" "$(cat "$tmp/w0.pid")"

# PP=2
a=$(start_worker a) || fail "worker a did not start"
b=$(start_worker b) || fail "worker b did not start"
c2=$(start_coordinator c2 2 "$a" "$b") || fail "coordinator c2 did not start"
wait_state "$c2" READY || fail "PP=2 never READY"
check_cluster "$c2" "PP=2"

# 32 concurrent streams, each with its full token count.
gens=()
for i in $(seq 32); do
  timeout 120 "$strata" generate --server "$c2" --prompt-ids "$i,${prompts[0]}" --max-tokens 9 \
    --ignore-eos --raw-ids >"$tmp/many$i.out" 2>&1 &
  gens+=($!)
done
for g in "${gens[@]}"; do wait "$g" || fail "a concurrent stream failed"; done
for i in $(seq 32); do
  n=$(grep -o '"ids":\[[^]]*\]' "$tmp/many$i.out" | tr ',' '\n' | wc -l)
  [[ $n == 9 ]] || fail "concurrent stream $i: $n tokens, expected 9: $(cat "$tmp/many$i.out")"
done
echo "PP=2: 32 concurrent streams complete"

# PP=2: kill the last stage mid-stream, restart it; then the same for the first stage.
kill_mid_stream "$c2" b
restart_worker "$c2" b "$b"
check_cluster "$c2" "PP=2 after restarting the last stage"
kill_mid_stream "$c2" a
restart_worker "$c2" a "$a"
check_cluster "$c2" "PP=2 after restarting the first stage"
kill -TERM "$(cat "$tmp/c2.pid")" "$(cat "$tmp/a.pid")" "$(cat "$tmp/b.pid")"

# PP=1: kill the only worker mid-stream, restart it on its port, serve again.
w1=$(start_worker w1) || fail "worker w1 did not start"
c3=$(start_coordinator c3 1 "$w1") || fail "coordinator c3 did not start"
wait_state "$c3" READY || fail "PP=1 (c3) never READY"
timeout 60 "$strata" generate --server "$c3" --prompt-ids "${prompts[0]}" --max-tokens 490 \
  --ignore-eos --raw-ids >"$tmp/killed0.out" 2>"$tmp/killed0.err" &
gen=$!
for _ in $(seq 200); do
  timeout 10 "$strata" health --server "$c3" | grep -q '^requests: [1-9][0-9]* running' && break
done
kill -KILL "$(cat "$tmp/w1.pid")"
wait $gen
rc=$?
[[ $rc == 1 ]] || fail "PP=1 stream served by a killed worker exited $rc, expected 1"
wait_state "$c3" NOT_READY || fail "PP=1 not NOT_READY after the worker died"
timeout 10 "$strata" health --server "$c3" | grep -q '^live: yes$' || fail "coordinator not live"
start_worker w1b "${w1##*:}" >/dev/null || fail "worker w1 did not restart on its port"
wait_state "$c3" READY || fail "PP=1 not READY again after the worker came back"
check_cluster "$c3" "PP=1 after reconnect"
kill -TERM "$(cat "$tmp/c3.pid")" "$(cat "$tmp/w1b.pid")"

# PP=3 on the DeepSeek-V3.2 fixture: three stages of full-indexer layers.
model=tests/fixtures/oracle/dsv32
compute_expected
x=$(start_worker x) || fail "worker x did not start"
y=$(start_worker y) || fail "worker y did not start"
z=$(start_worker z) || fail "worker z did not start"
c4=$(start_coordinator c4 3 "$x" "$y" "$z") || fail "coordinator c4 did not start"
wait_state "$c4" READY || fail "PP=3 never READY"
check_cluster "$c4" "PP=3 (dsv32)"
echo "cluster_integration_test: OK"

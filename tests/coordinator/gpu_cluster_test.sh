#!/usr/bin/env bash
# GPU workers on one GPU (label gpu; exits 77 without one). Several strata-worker processes share
# cuda:0 and serve models/strata-tiny-glm; `strata generate --raw-ids` must give exactly
# `strata-run --device cuda:0`'s greedy ids:
#  - PP=2 over UCX and TP=2 over Gloo, then PP=2 × TP=2 over TCP and Gloo: the cluster file says
#    data_plane {pipeline: host, tensor_parallel: gloo}, so hidden states go device → host →
#    link → host → device and the TP partial sums are reduced on host copies (NCCL refuses two
#    ranks on one GPU).
#  - one worker with data_plane {pipeline: nccl, tensor_parallel: nccl}: the coordinator asks it
#    for an NCCL unique id in the handshake and it joins an NCCL world of one rank in LoadShard.
#   gpu_cluster_test.sh COORDINATOR STRATA WORKER RUN   (run from the repository root)
# STRATA_GPU_TEST_DEVICE=cpu runs the same clusters on CPU workers (the NCCL part is skipped): a
# check of this script on a machine without a GPU. STRATA_GPU_TEST_PARTS picks parts (default
# "pp tp pptp nccl").
set -uo pipefail
coordinator=$1 strata=$2 worker=$3 run=$4
device=${STRATA_GPU_TEST_DEVICE:-cuda:0}
parts=" ${STRATA_GPU_TEST_PARTS:-pp tp pptp nccl} "
want() { [[ $parts == *" $1 "* ]]; }
if [[ $device != cpu ]] && ! ls /dev/nvidia[0-9]* >/dev/null 2>&1 &&
  ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "gpu_cluster_test: no GPU, skipped"
  exit 77
fi
model=models/strata-tiny-glm
run_flags=(--device "$device")
worker_flags=(--device "$device" --kv_cache_mb 256)
coordinator_extra="data_plane: {pipeline: host, tensor_parallel: gloo}"
source "$(dirname "$0")/cluster_test_lib.sh"

compute_expected
echo "strata-run --device $device: ${expected[*]}"

if want pp; then  # PP=2 over UCX: two workers on one GPU.
  a=$(start_worker a) || fail "worker a did not start"
  b=$(start_worker b) || fail "worker b did not start"
  c1=$(start_coordinator c1 2 "$a" "$b") || fail "coordinator c1 did not start"
  wait_state "$c1" READY || fail "PP=2 never READY"
  check_cluster "$c1" "PP=2 on $device (UCX)"
  kill -TERM "$(cat "$tmp/c1.pid")" "$(cat "$tmp/a.pid")" "$(cat "$tmp/b.pid")"
fi

if want tp; then  # TP=2 over Gloo on host copies.
  tp_size=2
  a=$(start_worker ta) || fail "worker ta did not start"
  b=$(start_worker tb) || fail "worker tb did not start"
  c2=$(start_coordinator c2 1 "$a" "$b") || fail "coordinator c2 did not start"
  wait_state "$c2" READY || fail "TP=2 never READY"
  check_cluster "$c2" "TP=2 on $device (Gloo)"
  kill -TERM "$(cat "$tmp/c2.pid")" "$(cat "$tmp/ta.pid")" "$(cat "$tmp/tb.pid")"
fi

if want pptp; then  # PP=2 × TP=2 over TCP links: four workers on one GPU.
  tp_size=2
  worker_flags=(--device "$device" --kv_cache_mb 128 --data_plane tcp)
  ws=()
  for n in q0 q1 q2 q3; do ws+=("$(start_worker $n)") || fail "worker $n did not start"; done
  c3=$(start_coordinator c3 2 "${ws[@]}") || fail "coordinator c3 did not start"
  wait_state "$c3" READY || fail "PP=2 x TP=2 never READY"
  check_cluster "$c3" "PP=2 x TP=2 on $device (TCP, Gloo)"
  kill -TERM "$(cat "$tmp/c3.pid")"
  for n in q0 q1 q2 q3; do kill -TERM "$(cat "$tmp/$n.pid")"; done
fi

if want nccl && [[ $device != cpu ]]; then
  # NCCL end to end with a world of one rank.
  tp_size=1
  worker_flags=(--device "$device" --kv_cache_mb 256)
  coordinator_extra="data_plane: {pipeline: nccl, tensor_parallel: nccl}"
  n=$(start_worker n) || fail "worker n did not start"
  c4=$(start_coordinator c4 1 "$n") || fail "coordinator c4 did not start"
  wait_state "$c4" READY || fail "the NCCL cluster never READY"
  grep -q "NCCL unique id created" "$tmp/n.log" || fail "worker n was not asked for an NCCL id"
  grep -q "NCCL world rank 0 of 1 joined" "$tmp/n.log" || fail "worker n joined no NCCL world"
  check_cluster "$c4" "PP=1 on $device with an NCCL world of one"
fi
echo "gpu_cluster_test: OK"

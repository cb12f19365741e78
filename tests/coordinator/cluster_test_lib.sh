# Shared by the localhost cluster tests (cluster_integration_test.sh, tp_cluster_integration_test.sh,
# gpu_cluster_test.sh): temporary directory and child teardown, bounded waits, starting workers and
# coordinators, killing and restarting a worker mid-stream, and the check that a cluster's greedy
# ids equal strata-run's. The caller sets coordinator, strata, worker, run and model first, and may
# set worker_flags (strata-worker's flags besides its ports), run_flags (strata-run's besides the
# model and prompt), tp_size and coordinator_extra (more lines of the cluster file).
tmp=$(mktemp -d)
pids=()
worker_flags=(${worker_flags[@]+"${worker_flags[@]}"})
[[ ${#worker_flags[@]} -gt 0 ]] || worker_flags=(--device cpu --kv_cache_mb 64)
run_flags=(${run_flags[@]+"${run_flags[@]}"})
tp_size=${tp_size:-1}
coordinator_extra=${coordinator_extra:-}
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}

# wait_for FILE REGEX: the line of FILE matching REGEX, within 60 s.
wait_for() {
  for _ in $(seq 600); do
    grep -Eo "$2" "$1" 2>/dev/null | head -1 | grep . && return 0
    sleep 0.1
  done
  return 1
}

wait_state() {  # SERVER STATE
  for _ in $(seq 600); do
    timeout 10 "$strata" health --server "$1" 2>/dev/null | grep -q "^state: $2$" && return 0
    sleep 0.1
  done
  return 1
}

data_plane_port() {  # NAME → the data-plane port worker NAME printed
  grep -Eo 'data plane [a-z]+ [0-9.]+:[0-9]+' "$tmp/$1.log" | head -1 | sed 's/.*://'
}

start_worker() {  # NAME [PORT [DATA_PLANE_PORT]] → prints host:port
  "$worker" --listen "127.0.0.1:${2:-0}" --data_plane_port "${3:-0}" "${worker_flags[@]}" \
    >"$tmp/$1.log" 2>&1 &
  pids+=($!)
  echo $! >"$tmp/$1.pid"
  local pid=$!
  for _ in $(seq 600); do
    grep -Eo 'listening on [0-9.]+:[0-9]+' "$tmp/$1.log" 2>/dev/null | head -1 |
      sed 's/listening on //' | grep . && return 0
    kill -0 $pid 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_coordinator() {  # NAME NUM_STAGES WORKER... → prints host:port
  local name=$1 stages=$2
  shift 2
  {
    echo "model_dir: $model"
    echo "tensor_parallel_size: $tp_size"
    echo "pipeline: {num_stages: $stages, workers: [$(IFS=,; echo "$*")]}"
    echo "kv_cache: {latent_dtype: f32, indexer_dtype: f32}"
    echo "scheduler: {max_model_len: 512}"
    echo "timeouts: {connect_s: 5, step_s: 30, data_plane_s: 10}"
    [[ -n $coordinator_extra ]] && echo "$coordinator_extra"
  } >"$tmp/$name.yaml"
  "$coordinator" --config "$tmp/$name.yaml" --listen 127.0.0.1:0 >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  echo $! >"$tmp/$name.pid"
  wait_for "$tmp/$name.log" 'serving on [0-9.]+:[0-9]+' | sed 's/serving on //'
}

# index_topk is 8 in the fixtures: every prompt but the first is longer.
prompts=("5,17,42,99,3" "$(seq -s, 10 90)" "$(seq -s, 200 2 460)")
compute_expected() {  # strata-run's ids for every prompt on $model
  expected=()
  for p in "${prompts[@]}"; do
    out=$(timeout 120 "$run" --model "$model" --prompt_ids "$p" --max_new_tokens 12 \
      ${run_flags[@]+"${run_flags[@]}"} 2>/dev/null) || fail "strata-run failed on $p"
    expected+=("$(grep -o '"ids":\[[^]]*\]' <<<"$out")")
  done
}

check_cluster() {  # SERVER LABEL
  for i in "${!prompts[@]}"; do
    out=$(timeout 120 "$strata" generate --server "$1" --prompt-ids "${prompts[$i]}" \
      --max-tokens 12 --raw-ids) || fail "$2: strata generate failed on prompt $i"
    got=$(grep -o '"ids":\[[^]]*\]' <<<"$out")
    [[ $got == "${expected[$i]}" ]] || fail "$2 prompt $i: got $got, strata-run ${expected[$i]}"
  done
  echo "$2: ${#prompts[@]} prompts match strata-run"
}

# kill_mid_stream SERVER NAME: four long streams, worker NAME killed (-9) once health shows them
# running; every stream must end UNAVAILABLE and health NOT_READY.
kill_mid_stream() {
  local gens=() i rc
  for i in 1 2 3 4; do
    timeout 60 "$strata" generate --server "$1" --prompt-ids "$i,${prompts[0]}" --max-tokens 490 \
      --ignore-eos --raw-ids >"$tmp/killed$i.out" 2>"$tmp/killed$i.err" &
    gens+=($!)
  done
  for _ in $(seq 200); do
    timeout 10 "$strata" health --server "$1" | grep -q '^requests: [1-9][0-9]* running' && break
  done
  kill -KILL "$(cat "$tmp/$2.pid")"
  for i in 1 2 3 4; do
    wait "${gens[$((i - 1))]}"
    rc=$?
    [[ $rc == 1 ]] || fail "stream $i, served by killed worker $2, exited $rc, expected 1"
    grep -q "UNAVAILABLE" "$tmp/killed$i.err" || fail "no UNAVAILABLE: $(cat "$tmp/killed$i.err")"
  done
  wait_state "$1" NOT_READY || fail "not NOT_READY after worker $2 died"
}

# restart_worker SERVER NAME ADDRESS: NAME again on its gRPC and data-plane ports (taken at once,
# though its old connections are in TIME_WAIT), then READY.
restart_worker() {
  local dp
  dp=$(data_plane_port "$2")
  mv "$tmp/$2.log" "$tmp/$2.old.log"
  start_worker "$2" "${3##*:}" "$dp" >/dev/null || fail "worker $2 did not restart on its ports"
  [[ $(data_plane_port "$2") == "$dp" ]] || fail "worker $2 restarted on another data-plane port"
  wait_state "$1" READY || fail "not READY again after worker $2 came back"
}

#!/usr/bin/env bash
# One GPU-machine session for the DSA kernels (issue 6): gpu tests, strata-kernel-bench, Nsight
# Compute durations, compute-sanitizer. The bundle is a `tar cJf b.tar.xz dev` of
# `../shared/tools/device-bundle dev build/bin/strata-kernel-bench build/bin/kernels_*_cuda_test`
# (stripped), placed with this script in .dev-kern6/ and carried; logs and bench.json go to $OUT.
# Usage (repo root on the GPU machine): bash .dev-kern6/kernels_run.sh tests bench ncu san
# (NCU_CASES="kernel-regex@launches per run@bench filter;...", BENCH_FILTER="--filter ...")
set -uo pipefail
d=.dev-kern6
mkdir -p /tmp/k6b && tar xJf $d/b.tar.xz -C /tmp/k6b && source /tmp/k6b/dev/env.sh
bin=/tmp/k6b/dev/bin
nvidia-smi -L
for step in "$@"; do
  case $step in
    tests)
      for t in cache_write indexer_logits indexer_fp8_overlap indexer_topk sparse_mla; do
        s=$(date +%s)
        timeout ${TEST_TIMEOUT:-200} $bin/kernels_${t}_cuda_test --gtest_brief=1 > /tmp/t.log 2>&1
        echo "test $t rc=$? $(( $(date +%s) - s ))s"
        grep -E "FAILED|Failure|Expected|Which is|overlap|inputs:|PASSED|error" /tmp/t.log | head -20
        cat /tmp/t.log >> $OUT/tests.log
      done ;;
    san)
      san() { timeout 70 compute-sanitizer --tool $1 --error-exitcode 9 $bin/$2 --gtest_brief=1 \
          --gtest_filter="$3" > $OUT/san.tmp 2>&1; echo "san $1 $2 rc=$?";
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAILED|Invalid|Race|Hazard" $OUT/san.tmp | head -6
        cat $OUT/san.tmp >> $OUT/sanitize.log; rm -f $OUT/san.tmp; }
      san memcheck kernels_sparse_mla_cuda_test '*MergeSplits*:*ForcedSplits*:*Batches*:*PaddedRows*:*EveryHead*'
      san racecheck kernels_sparse_mla_cuda_test '*ForcedSplits*:*PaddedRows*'
      san memcheck kernels_indexer_topk_cuda_test '*SplitRadix*:*FusedSlots*:*Ties*'
      san memcheck kernels_indexer_logits_cuda_test '*PagedLogits*/5:*PagedLogits*/13:*Ragged*/1:*Ragged*/3' ;;
    bench)
      timeout ${BENCH_TIMEOUT:-200} $bin/strata-kernel-bench --json $OUT/bench.json --samples 15 \
        ${BENCH_FILTER:---filter indexer --filter sparse_mla_decode --filter cache_write} \
        > $OUT/bench.txt 2>&1; echo "bench rc=$?"; grep -vE "^ *$" $OUT/bench.txt | cut -c1-118 ;;
    ncu)
      IFS=';' read -ra cases <<< "${NCU_CASES:-}"
      for c in "${cases[@]}"; do
        k=${c%%@*}; rest=${c#*@}; n=${rest%%@*}; f=${rest#*@}; name=$(echo "$f" | tr -c 'a-zA-Z0-9' '_')
        timeout 60 ncu -k "regex:$k" --launch-skip $n --launch-count $n --section SpeedOfLight \
          $bin/strata-kernel-bench --filter "$f" --samples 1 --no-graph > /tmp/ncu.txt 2>&1
        echo "ncu $f rc=$?"; grep -E "^  [A-Za-z].*\(|Duration|DRAM Throughput" /tmp/ncu.txt | head -16
        cat /tmp/ncu.txt >> $OUT/ncu.txt
      done ;;
  esac
done

#!/usr/bin/env bash
# Benchmarks: builds build/release and runs `otsync-bench merge`.
#   --peers   also runs the same workload on Yjs (tools/bench/peers, pinned in its
#             package.json) in this run and prints the ratios.
# Extra arguments go to otsync-bench (e.g. --million 200000).
set -euo pipefail
cd "$(dirname "$0")/.."

peers=0
args=()
for a in "$@"; do
    case "$a" in
        --peers) peers=1 ;;
        *) args+=("$a") ;;
    esac
done

if ((peers)); then tools/setup.sh --peers; else tools/setup.sh; fi
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target otsync-bench

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
ours=$(build/release/tools/otsync-bench merge --json "${args[@]}")
build/release/tools/otsync-bench merge "${args[@]}"
client=$(build/release/tools/otsync-bench client --json)
build/release/tools/otsync-bench client

if ((peers)); then
    (cd tools/bench/peers && npm ci --silent --no-audit --no-fund)
    theirs=$(cd tools/bench/peers && node --expose-gc yjs_merge.mjs --json)
    echo
    echo "yjs $(node -p "require('./tools/bench/peers/node_modules/yjs/package.json').version") on node $(node --version):"
    (cd tools/bench/peers && node --expose-gc yjs_merge.mjs)
    echo
    OURS="$ours" CLIENT="$client" THEIRS="$theirs" node -e '
        const o = JSON.parse(process.env.OURS), y = JSON.parse(process.env.THEIRS);
        const c = JSON.parse(process.env.CLIENT);
        const row = (label, a, b) => console.log(label.padEnd(34), (a / b).toFixed(1) + "x");
        console.log("otsync / yjs (higher is better for speed, lower for size):");
        row("merge ops/s (in memory)", o["merge.ops_per_s"], y["merge.ops_per_s"]);
        row("decode+merge ops/s vs applyUpdate", o["merge.decode_and_merge_ops_per_s"], y["merge.ops_per_s"]);
        row("1M ops merge ops/s", o["million.apply_ops_per_s"], y["million.apply_ops_per_s"]);
        row("bytes/op base", o["bytes_per_op.base"], y["bytes_per_op.base"]);
        row("bytes/op edits", o["bytes_per_op.edits"], y["bytes_per_op.edits"]);
        row("memory per OT", o["mem.bytes_per_ot"], y["mem.bytes_per_ot"]);
        row("client persisted download vs yjs merge", c["download.10000.persisted_ops_per_s"], y["merge.ops_per_s"]);
        const ok = o["merge.ops_per_s"] >= 2 * y["merge.ops_per_s"] && o["bytes_per_op.edits"] <= 34 && o["bytes_per_op.base"] <= 34;
        console.log(ok ? "targets met: merge >= 2x Yjs, <= 34 bytes/op" : "TARGETS MISSED");
    '
fi

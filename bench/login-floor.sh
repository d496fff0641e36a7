#!/usr/bin/env bash
# bench/login-floor.sh: ottr's logins against their floor, one bare Go TLS
# 1.3 handshake with the same certificate (issue 14), measured so that a
# machine whose speed changes from one second to the next (a shared or
# virtual one) still gives a ratio: every login benchmark runs between two
# runs of the floor, each a process of its own on core 0 (the benchmarks'
# client with it), and each sample is the login's server CPU divided by
# the mean of the two floors around it. A sample whose two floors differ
# by more than 15% is dropped (the machine changed speed meanwhile).
# Prints, per benchmark, the median ratio of the samples kept, their
# min–max and how many were kept, and the median server CPU.
#
# usage: bench/login-floor.sh [-n OPS] [-r REPS] [-b BINARY [-C DIR]] [BENCHMARK...]
#
#   -n OPS     operations per run (default 500)
#   -r REPS    samples per benchmark (default 5)
#   -b BINARY  a test binary of ./server (go test -c) to run instead of
#              building one from the work tree
#   -C DIR     the directory to run BINARY in: its ./server (default this
#              work tree's)
#   BENCHMARK  names without "Benchmark" (default: Login LoginSASL2
#              LoginSASL2Direct FASTResumed FASTResumedDirect)
#
# Needs Go (unless -b), taskset, awk. Loopback only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ops=500
reps=5
bin=
dir=$root/server
while getopts n:r:b:C: o; do
	case $o in
	n) ops=$OPTARG ;;
	r) reps=$OPTARG ;;
	b) bin=$OPTARG ;;
	C) dir=$OPTARG ;;
	*) sed -n '2,25p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(Login LoginSASL2 LoginSASL2Direct FASTResumed FASTResumedDirect)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$bin" ]; then
	bin=$work/server.test
	(cd "$root" && go test -c -o "$bin" ./server)
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# run NAME: the server-µs/op of one run of BenchmarkNAME.
run() {
	(cd "$dir" && taskset -c 0 "$bin" -test.run '^$' -test.bench "^Benchmark$1\$" -test.benchtime "${ops}x") |
		awk '{for (i = 1; i < NF; i++) if ($(i+1) == "server-µs/op") print $i}'
}

printf '| operation | server CPU (median) | ÷ bare TLS (median of samples) | min–max | samples kept |\n'
printf '|:--|--:|--:|--:|--:|\n'
for b in "${benches[@]}"; do
	: >"$work/$b"
	floor=$(run BareTLS)
	for _ in $(seq "$reps"); do
		op=$(run "$b")
		if [ -z "$op" ]; then
			break # not in this build
		fi
		next=$(run BareTLS)
		echo "$op $floor $next" >>"$work/$b"
		floor=$next
	done
	awk -v name="$b" '
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
			return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
		}
		{
			lo = $2 < $3 ? $2 : $3; hi = $2 < $3 ? $3 : $2
			if (hi > lo * 1.15) next
			k++; r[k] = $1 / (($2 + $3) / 2); c[k] = $1
			if (k == 1 || r[k] < min) min = r[k]
			if (k == 1 || r[k] > max) max = r[k]
		}
		END {
			if (NR == 0) exit
			if (k == 0) { printf "| %s | — | — | — | 0 of %d |\n", name, NR; exit }
			printf "| %s | %.0f µs | %.2f× | %.2f–%.2f | %d of %d |\n", name, median(c, k), median(r, k), min, max, k, NR
		}' "$work/$b"
done

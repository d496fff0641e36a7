#!/usr/bin/env bash
# bench/compare.sh: ottr against Prosody and ejabberd on this machine, with
# the same load tool (cmd/ottr-bench), the same accounts and the same ECDSA
# P-256 certificate, TLS 1.3 full handshakes. The server runs on core 0 and
# the load on core 1 (taskset); every scenario of every round gets a fresh
# server process. The figures that decide are the server's CPU time per
# operation (utime+stime from /proc over the measured phase).
#
# Writes bench/results/*.json (one summary per run) and
# bench/results/compare.md (medians and ratios), replacing what was there.
#
# usage: bench/compare.sh [--quick] [--rounds N] [--servers "ottr prosody ejabberd"]
#                         [--no-scale] [--no-install] [--rev COMMIT] [--base COMMIT]
#                         [--report] [--out DIR] [--port-base N]
#
#   --quick       small sizes, one round: about 2 minutes
#   (default)     3 rounds, then ottr with 1k–10k idle sessions: about 8 minutes
#   --no-scale    skip ottr's 1k–10k idle sessions series
#   --no-install  do not apt-get install missing peers (they are skipped)
#   --rev COMMIT  the ottr commit to build and measure (default HEAD; the
#                 work tree's uncommitted changes are never measured)
#   --base COMMIT also build ottr at COMMIT ("ottr-base") and measure it
#                 beside --rev in every round: each ottr scenario runs on
#                 rev then base (base then rev in even rounds), with the
#                 same accounts, config and port; compare.md gains a table
#                 of their CPU/op and the ratio rev ÷ base. ottr's time
#                 doubles; the 1k–10k idle series stays rev only
#   --report      only draw compare.md again from the results
#   --out DIR     write the results there instead of bench/results
#   --port-base N loopback ports N (ottr), N+1 (Prosody), N+2 (ejabberd),
#                 N+3 (ejabberd's Erlang distribution); default 28222,
#                 below the ephemeral range (a client socket in TIME_WAIT
#                 on a listening port would block the next start)
#
# Needs: Go, openssl, jq, taskset; root for apt-get and for running
# ejabberd as its own user. Loopback only; every run is bounded.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
results="$here/results"

quick=0
rounds=3
servers="ottr prosody ejabberd"
scale=1
install=1
rev=HEAD
base=
report_only=0
port_base=28222
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; rounds=1; shift ;;
	--rounds) rounds=$2; shift 2 ;;
	--servers) servers=$2; shift 2 ;;
	--no-scale) scale=0; shift ;;
	--no-install) install=0; shift ;;
	--rev) rev=$2; shift 2 ;;
	--base) base=$2; shift 2 ;;
	--report) report_only=1; shift ;;
	--out) results=$2; shift 2 ;;
	--port-base) port_base=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ -n "$base" ] && [[ " $servers " != *" ottr "* ]]; then
	echo "compare.sh: --base needs ottr among --servers" >&2
	exit 2
fi

# Sizes. Users: user0…userN-1, password pw, on the domain localhost.
if [ "$quick" = 1 ]; then
	login_n=600 msg_m=30000 rate=5000 rate_s=3 idle_k=500 scale_ks="1000 2000" scale_login_n=1000 scale_msg_m=30000 floor_n=500
else
	login_n=3000 msg_m=200000 rate=5000 rate_s=10 idle_k=2000 scale_ks="1000 2000 5000 10000" scale_login_n=3000 scale_msg_m=100000 floor_n=2000
fi
login_users=100 pairs=50 window=32 workers=16
users=$((idle_k > 2 * pairs ? idle_k : 2 * pairs))
password=pw
seed=XVGR73KMZH2M4XMY # public test values: this is a throwaway server
secret=JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7
lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
[ $((port_base + 3)) -lt "$lo" ] || echo "compare: warning: ports $port_base… are in the ephemeral range (from $lo)" >&2
port_ottr=$port_base port_prosody=$((port_base + 1)) port_ejabberd=$((port_base + 2))
port_ejabberd_dist=$((port_base + 3)) # Erlang distribution on a fixed port: no epmd daemon is started

# --- the table: medians over the rounds.
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# med tag scenario jq-path
med() {
	local files
	files=$(compgen -G "$results/$1-$2-r*.json") || return 0
	# shellcheck disable=SC2086
	jq -r "$3" $files | median
}
fmt() { # number decimals [unit]
	if [ -n "$1" ] && [ "$1" != null ]; then printf "%'.${2}f%s" "$1" "${3:+ $3}"; else printf '—'; fi
}
ratio() { # peer ottr
	[ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f×", a / b}' || printf '—'
}
# minmax: "min max" of the numbers read, nothing for fewer than two.
minmax() { sort -g | awk '{a[NR]=$1} END {if (NR > 1) print a[1] " " a[NR]}'; }
# spread tag scenario jq-path: minmax over the rounds.
spread() {
	local files
	files=$(compgen -G "$results/$1-$2-r*.json") || return 0
	# shellcheck disable=SC2086
	jq -r "$3" $files | minmax
}
# paired auth scenario jq-path: rev ÷ base of each round that has both, one a line.
paired() {
	local f g
	for f in $(compgen -G "$results/ottr-$1-$2-r*.json" || true); do
		g=$results/ottr-base-${f#"$results"/ottr-}
		[ -f "$g" ] || continue
		jq -rn --slurpfile a "$f" --slurpfile b "$g" "(\$a[0] | $3) / (\$b[0] | $3)"
	done
}
# base_row label auth scenario jq-path decimals unit: one line of the rev
# against base table.
base_row() {
	local r b cell=() tag s p
	p=$(paired "$2" "$3" "$4")
	r=$(med "ottr-$2" "$3" "$4")
	b=$(med "ottr-base-$2" "$3" "$4")
	for tag in ottr ottr-base; do
		s=$(spread "$tag-$2" "$3" "$4")
		cell+=("$(fmt "$(med "$tag-$2" "$3" "$4")" "$5" "$6")${s:+ ($(fmt "${s% *}" "$5")–$(fmt "${s#* }" "$5"))}")
	done
	s=$(minmax <<<"$p")
	[ -n "$s" ] && p=$(printf '%.3f (%.3f–%.3f)' "$(median <<<"$p")" ${s% *} ${s#* }) || p=
	printf '| %s | %s | %s | %s | %s |\n' "$1" "${cell[0]}" "${cell[1]}" \
		"$([ -n "$r" ] && [ -n "$b" ] && awk -v a="$r" -v b="$b" 'BEGIN {printf "%.3f", a / b}' || printf '—')" "${p:-—}"
}

report() {
	local md=$results/compare.md row tag note k f
	{
	echo "Measured $started on $machine,"
	if [ -n "$base_version" ]; then
		echo "ottr $version (--rev) and ottr-base $base_version (--base)$peers,"
	else
		echo "ottr $version$peers,"
	fi
	echo "load average before the run: $loadavg (other work on the machine slows throughput, less so CPU/op),"
	echo "with \`bench/compare.sh$([ "$quick" = 1 ] && echo ' --quick')${base_version:+ --base $base_version}\`: $rounds round(s), medians; server on core 0, load on core 1."
	echo "Logins: $login_n, $workers workers, STARTTLS + SASL + bind. Messages: $pairs pairs, window $window, $msg_m messages;"
	echo "latency at a fixed $rate msg/s offered for ${rate_s} s. Idle: $idle_k sessions with initial presence."
	echo
	echo "| server | auth | logins/s | CPU/login | msgs/s | CPU/msg | e2e p50 / p99 at $rate msg/s | RSS per idle TLS session | load CPU/login, /msg |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|"
	for row in "${rows[@]}"; do
		set -- $row
		tag="$1-$(echo "$2" | tr 'A-Z' 'a-z')"
		note=$2
		[ "$row" = "prosody PLAIN" ] && note="PLAIN (hashed)"
		[ "$row" = "ottr PLAIN" ] && note="PLAIN (hashed)"
		[ "$row" = "ottr-base PLAIN" ] && note="PLAIN (hashed)"
		[ "$row" = "ejabberd PLAIN" ] && note="PLAIN (stored plain)"
		printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s / %s |\n' "$1" "$note" \
			"$(fmt "$(med $tag login .ops_per_s)" 0)" "$(fmt "$(med $tag login .server_cpu_us_per_op)" 0 µs)" \
			"$(fmt "$(med $tag msg .ops_per_s)" 0)" "$(fmt "$(med $tag msg .server_cpu_us_per_op)" 1 µs)" \
			"$(fmt "$(med $tag rate '.latency.p50_us / 1000')" 2)" "$(fmt "$(med $tag rate '.latency.p99_us / 1000')" 2 ms)" \
			"$(fmt "$(med $tag idle .rss_per_session_kib)" 1 KiB)" \
			"$(fmt "$(med $tag login .own_cpu_us_per_op)" 0)" "$(fmt "$(med $tag msg .own_cpu_us_per_op)" 1 µs)"
	done
	case " ${rows[*]} " in *" ottr PLAIN "*) echo; echo "ottr PLAIN: logins only; messages and memory do not depend on the mechanism." ;; esac
	local peer_rows=()
	for row in "${rows[@]}"; do
		case $row in "ottr "* | "ottr-base "*) ;; *) peer_rows+=("$row") ;; esac
	done
	if [ ${#peer_rows[@]} -gt 0 ]; then
		echo
		echo "Server CPU per operation, ratio to ottr's (X-TOKEN; for logins also to ottr with PLAIN):"
		echo
		echo "| server | CPU/login ÷ ottr X-TOKEN | CPU/login ÷ ottr PLAIN | CPU/msg ÷ ottr | RSS/session ÷ ottr |"
		echo "|---|--:|--:|--:|--:|"
		ox_login=$(med ottr-x-token login .server_cpu_us_per_op)
		op_login=$(med ottr-plain login .server_cpu_us_per_op)
		o_msg=$(med ottr-x-token msg .server_cpu_us_per_op)
		o_rss=$(med ottr-x-token idle .rss_per_session_kib)
		for row in "${peer_rows[@]}"; do
			set -- $row
			tag="$1-$(echo "$2" | tr 'A-Z' 'a-z')"
			printf '| %s %s | %s | %s | %s | %s |\n' "$1" "$2" \
				"$(ratio "$(med $tag login .server_cpu_us_per_op)" "$ox_login")" \
				"$(ratio "$(med $tag login .server_cpu_us_per_op)" "$op_login")" \
				"$(ratio "$(med $tag msg .server_cpu_us_per_op)" "$o_msg")" \
				"$(ratio "$(med $tag idle .rss_per_session_kib)" "$o_rss")"
		done
	fi
	if [ -n "$base_version" ]; then
		echo
		echo "ottr $version (--rev) against ottr $base_version (--base), measured side by side (rev and base alternately within each round, on the same"
		echo "accounts, config and port): the server's CPU per operation, median over $rounds round(s)$([ "$rounds" -gt 1 ] && echo ' (min–max)'), the ratio"
		echo "of the medians rev ÷ base, and (from 2 rounds) the median (min–max) of each round's own ratio:"
		echo
		echo "| scenario | rev $version | base $base_version | rev ÷ base | per round |"
		echo "|---|--:|--:|--:|--:|"
		base_row "CPU/login, X-TOKEN" x-token login .server_cpu_us_per_op 0 µs
		base_row "CPU/login, PLAIN (hashed)" plain login .server_cpu_us_per_op 0 µs
		base_row "CPU/msg" x-token msg .server_cpu_us_per_op 2 µs
		base_row "CPU/msg at $rate msg/s" x-token rate .server_cpu_us_per_op 2 µs
		base_row "CPU/idle session (login + presence)" x-token idle .server_cpu_us_per_op 0 µs
		base_row "RSS per idle TLS session" x-token idle .rss_per_session_kib 1 KiB
	fi
	if [ -s "$results/login-floor.md" ]; then
		echo
		echo "ottr's logins against their floor, one bare Go TLS 1.3 handshake with the same certificate (bench/login-floor.sh:"
		echo "server CPU per operation, the server and its client on core 0, each login run between two runs of the floor; the"
		echo "goal is at most 1.5× for a token login, and a FAST reconnection over a resumed TLS session cheaper than a full login):"
		echo
		cat "$results/login-floor.md"
	fi
	if ls "$results"/scale-k*-idle.json >/dev/null 2>&1; then
		echo
		echo "ottr (X-TOKEN) with K idle sessions held open (one round): its RSS, and logins ($scale_login_n) and messages ($scale_msg_m) beside them:"
		echo
		echo "| idle sessions | server RSS | RSS per session | CPU/login | logins/s | CPU/msg | msgs/s | msg e2e p99 |"
		echo "|--:|--:|--:|--:|--:|--:|--:|--:|"
		for k in $scale_ks; do
			f=$results/scale-k$k
			[ -f "$f-idle.json" ] || continue
			get() { [ -f "$f-$1.json" ] && jq -r "$2" "$f-$1.json" || true; }
			printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(fmt "$(get idle .ops)" 0)" \
				"$(fmt "$(get idle '.rss_after_kib / 1024')" 1 MiB)" "$(fmt "$(get idle .rss_per_session_kib)" 1 KiB)" \
				"$(fmt "$(get login .server_cpu_us_per_op)" 0 µs)" "$(fmt "$(get login .ops_per_s)" 0)" \
				"$(fmt "$(get msg .server_cpu_us_per_op)" 1 µs)" "$(fmt "$(get msg .ops_per_s)" 0)" \
				"$(fmt "$(get msg '.latency.p99_us / 1000')" 1 ms)"
		done
	fi
	echo
	echo "CPU/op is the server's utime+stime (/proc/PID/stat, all threads) over the measured phase divided by the operations;"
	echo "RSS per session is the growth of VmRSS from before the sessions to 2 s after the last one, divided by the sessions."
	echo "Throughput and latency depend on the load generator sharing the machine; CPU/op does not."
	} >"$md"
}

if [ "$report_only" = 1 ]; then
	base_version= # absent from the run.env of a run before --base
	# shellcheck disable=SC1091
	source "$results/run.env"
	report
	cat "$results/compare.md"
	exit 0
fi

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in go git openssl jq taskset setpriv; do
	command -v "$tool" >/dev/null || die "$tool is missing"
done
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server on 0, load on 1)"
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/ottr-compare.XXXXXX)
chmod 755 "$work"
server_pid= holder_pid= failures=0
cleanup() {
	[ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null || true
	stop_server || true
	[ "${KEEP:-0}" = 1 ] && log "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# What is measured is a commit, HEAD or --rev (and --base), never the work
# tree's uncommitted changes; the load tool is HEAD's.
# build commit dir binary: go build ./cmd/… of commit's tree, unpacked in work/dir.
build() {
	git -C "$root" rev-parse -q --verify "$1^{commit}" >/dev/null || die "no commit $1"
	mkdir -p "$work/$2"
	git -C "$root" archive "$1" | tar -x -C "$work/$2"
	(cd "$work/$2" && go build -o "$work/bin/$3" "./cmd/${3%-base}") || die "building $3 at $1 failed"
}
log "building ottr at $rev${base:+, ottr-base at $base} and ottr-bench at HEAD"
build HEAD src ottr-bench
build "$rev" src-rev ottr
version=$(git -C "$root" rev-parse --short "$rev")
base_version=
if [ -n "$base" ]; then
	build "$base" src-base ottr-base
	base_version=$(git -C "$root" rev-parse --short "$base")
fi
bench=$work/bin/ottr-bench

# The shared certificate: ECDSA P-256, for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$work/key.pem" -out "$work/cert.pem" -days 7 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/combined.pem"
chmod 644 "$work"/*.pem

# Peers from Debian, if missing.
have_prosody=0 have_ejabberd=0
install_peer() { # package
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed" && return 0
	[ "$install" = 1 ] || return 1
	log "installing $1 from Debian"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >"$work/apt-$1.log" 2>&1 ||
		{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >"$work/apt-$1.log" 2>&1; }
}
case " $servers " in *" prosody "*) install_peer prosody && have_prosody=1 || log "no prosody: skipped" ;; esac
case " $servers " in *" ejabberd "*) install_peer ejabberd && have_ejabberd=1 || log "no ejabberd: skipped" ;; esac
pgrep -x prosody >/dev/null && log "note: a system Prosody is running; it shares core time"

# port_busy port: something already listens there (another run, another
# server): starting ours would measure theirs.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# await_start name port log: wait for the server we started to listen.
await_start() {
	wait_port "$2" && kill -0 "$server_pid" 2>/dev/null ||
		die "$1 did not start: $(tail -5 "$3")"
}

wait_port() { # port
	for _ in $(seq 1 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

stop_server() {
	[ -n "$server_pid" ] || return 0
	kill "$server_pid" 2>/dev/null || true
	for _ in $(seq 1 200); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$server_pid" 2>/dev/null || true
	server_pid=
}

# --- ottr: bin/NAME (ottr, or ottr-base for --base) with its config and
# data in work/NAME. Both get the same config but for data_dir (an older
# build need not read a newer one's database) and the same accounts.
ottr_config() { # name
	local d=$work/$1
	mkdir -p "$d"
	cat >"$d/ottr.toml" <<-EOF
		data_dir = "$d/data"
		[log]
		level = "warn"
		[c2s]
		listen = ["127.0.0.1:$port_ottr"]
		[tls]
		cert = "$work/cert.pem"
		key = "$work/key.pem"
		[[host]]
		name = "localhost"
		otp_seed = "$seed"
		token_secret = "$secret"
		[limits]
		# One address sends all the load: lift the per-address limits.
		max_connections = 100000
		connections_per_address = 100000
		connection_rate = "1000000/s"
		connection_burst = 1000000
	EOF
	log "$1: $login_users password accounts (PBKDF2, 10,000 iterations, as Prosody's)"
	for i in $(seq 0 $((login_users - 1))); do
		echo "$password" | "$work/bin/$1" user add -c "$d/ottr.toml" "user$i@localhost" >"$d/user-add.log" 2>&1 ||
			die "$1 user add failed (an ottr older than this script refuses keys it does not know): $(cat "$d/user-add.log")"
	done
}
start_ottr_bin() { # name
	port_busy $port_ottr && die "port $port_ottr is already in use"
	taskset -c 0 "$work/bin/$1" serve -c "$work/$1/ottr.toml" >>"$work/$1/serve.log" 2>&1 &
	server_pid=$!
	await_start "$1" $port_ottr "$work/$1/serve.log"
}
start_ottr() { start_ottr_bin ottr; }
start_ottr_base() { start_ottr_bin ottr-base; }

# --- Prosody: internal_hashed (PBKDF2, 10,000 iterations), epoll, the
# modules ottr also has.
prosody_config() {
	mkdir -p "$work/prosody/data"
	cat >"$work/prosody/prosody.cfg.lua" <<-EOF
		run_as_root = true
		pidfile = "$work/prosody/prosody.pid"
		data_path = "$work/prosody/data"
		certificates = "$work"
		log = { { levels = { min = "error" }, to = "file", filename = "$work/prosody/prosody.log" } }
		modules_enabled = { "roster", "saslauth", "tls", "disco", "private", "vcard_legacy", "version", "uptime", "time", "ping", "register", "blocklist", "offline", "mam", "carbons", "smacks", "csi_simple", "lastactivity" }
		default_archive_policy = true
		modules_disabled = { "s2s" }
		c2s_ports = { $port_prosody }
		c2s_interfaces = { "127.0.0.1" }
		s2s_ports = { }
		allow_registration = true
		c2s_require_encryption = true
		authentication = "internal_hashed"
		storage = "internal"
		ssl = { certificate = "$work/cert.pem", key = "$work/key.pem" }
		VirtualHost "localhost"
	EOF
}
start_prosody() {
	port_busy $port_prosody && die "port $port_prosody is already in use"
	taskset -c 0 prosody --config "$work/prosody/prosody.cfg.lua" -F >>"$work/prosody/out.log" 2>&1 &
	server_pid=$!
	await_start prosody $port_prosody "$work/prosody/out.log"
}

# --- ejabberd: run as its user from a config directory of our own; one
# scheduler (+S 1, the server has one core) without busy waiting (+sbwt
# none: a spinning scheduler would count as CPU), no shaper, an accept
# backlog of 1024 (its default of 5 makes concurrent connects wait for SYN
# retransmits), plain password storage (its default).
ejabberd_config() {
	local d=$work/ejabberd
	mkdir -p "$d/etc" "$d/spool" "$d/logs"
	cp /etc/ejabberd/inetrc "$d/etc/"
	cat >"$d/etc/ejabberdctl.cfg" <<-EOF
		ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 +S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"
		EJABBERD_PID_PATH=$d/spool/ejabberd.pid
		ERLANG_NODE=ottrbench@localhost
		ERL_DIST_PORT=$port_ejabberd_dist
		POLL=true
		ERL_PROCESSES=1000000
		ERL_MAX_PORTS=200000
	EOF
	cat >"$d/etc/ejabberd.yml" <<-EOF
		hosts:
		  - localhost
		loglevel: error
		log_rotate_count: 0
		certfiles:
		  - $work/combined.pem
		listen:
		  -
		    port: $port_ejabberd
		    ip: "127.0.0.1"
		    module: ejabberd_c2s
		    max_stanza_size: 262144
		    backlog: 1024
		    shaper: none
		    access: all
		    starttls_required: true
		shaper: {}
		acl: {}
		access_rules:
		  register:
		    allow: all
		auth_method: internal
		auth_password_format: plain
		registration_timeout: infinity
		modules:
		  mod_disco: {}
		  mod_ping: {}
		  mod_roster: {}
		  mod_offline: {}
		  mod_private: {}
		  mod_vcard: {}
		  mod_version: {}
		  mod_privacy: {}
		  mod_blocking: {}
		  mod_last: {}
		  mod_mam:
		    default: always
		  mod_carboncopy: {}
		  mod_stream_mgmt: {}
		  mod_client_state: {}
		  mod_register:
		    ip_access: all
		    access: register
	EOF
	chown -R ejabberd:ejabberd "$d"
}
start_ejabberd() {
	local d=$work/ejabberd
	port_busy $port_ejabberd && die "port $port_ejabberd is already in use"
	# As the ejabberd user through setpriv, not ejabberdctl's su: su's PAM
	# session would lower the open file limit to 1024.
	taskset -c 0 env HOME="$d/spool" setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
		ejabberdctl --config-dir "$d/etc" --logs "$d/logs" --spool "$d/spool" foreground >>"$d/out.log" 2>&1 &
	wait_port $port_ejabberd || die "ejabberd did not start: $(tail -5 "$d/out.log")"
	server_pid=$(pgrep -f "beam.smp.*ottrbench@localhost" | head -1 || true)
	[ -n "$server_pid" ] || die "ejabberd: no beam.smp process: $(tail -5 "$d/out.log")"
}

# run_bench name args…: one ottr-bench run on core 1, its summary in
# results/name.json. A run whose operations partly failed is kept (and
# said); one that could not run is reported and skipped.
run_bench() {
	local name=$1
	shift
	local rc=0
	taskset -c 1 "$bench" "$@" -pid "$server_pid" -progress 0 -label "$name" \
		>"$results/$name.json" 2>>"$work/bench.log" || rc=$?
	case $rc in
	0) ;;
	3)
		log "$name: some operations failed: $(jq -c .errors "$results/$name.json")"
		failures=$((failures + 1))
		;;
	*)
		log "$name: failed (exit $rc): $(tail -1 "$work/bench.log")"
		rm -f "$results/$name.json"
		failures=$((failures + 1))
		return 0
		;;
	esac
	log "$name: $(jq -r '"\(.ops) ops, \(.ops_per_s)/s, server \(.server_cpu_us_per_op) µs/op, load \(.own_cpu_us_per_op) µs/op, p99 \(.latency.p99_us) µs" + (if .rss_per_session_kib then ", \(.rss_per_session_kib) KiB/session" else "" end)' "$results/$name.json")"
}

# scenario_names server auth: the measured runs of a row; for ottr with
# PLAIN only logins (the rest does not depend on the mechanism).
scenario_names() {
	[ "${1%-base}-$2" = ottr-PLAIN ] && echo login || echo login msg rate idle
}

# scenario server auth round name: one measured run on a fresh server
# process (ottr-base is ottr's port, config and accounts, its own binary).
scenario() {
	local srv=$1 mech=$2 r=$3 name=$4 port
	eval "port=\$port_${srv%-base}"
	local common=(-addr "127.0.0.1:$port" -ca "$work/cert.pem" -workers $workers)
	if [ "$mech" = X-TOKEN ]; then
		common+=(-mech X-TOKEN -otp-seed $seed -token-secret $secret)
	else
		common+=(-mech PLAIN -password $password)
	fi
	local tag="$srv-$(echo "$mech" | tr 'A-Z' 'a-z')"
	"start_${srv//-/_}"
	case $name in
	login) run_bench "$tag-login-r$r" login "${common[@]}" -n $login_n -users $login_users ;;
	msg) run_bench "$tag-msg-r$r" msg "${common[@]}" -pairs $pairs -m $msg_m -window $window ;;
	rate) run_bench "$tag-rate-r$r" msg "${common[@]}" -pairs $pairs -m $((rate * rate_s)) -window $window -rate $rate ;;
	idle) run_bench "$tag-idle-r$r" idle "${common[@]}" -k $idle_k -settle 2s ;;
	esac
	stop_server
}

rm -f "$results"/*.json "$results"/compare.md "$results"/run.env # only what a run writes
mkdir -p "$results"
started=$(date -u +%Y-%m-%dT%H:%MZ)
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r))"
peers=
[ "$have_prosody" = 1 ] && peers+=", Prosody $(dpkg-query -W -f='${Version}' prosody)"
[ "$have_ejabberd" = 1 ] && peers+=", ejabberd $(dpkg-query -W -f='${Version}' ejabberd)"
[ -n "$peers" ] && peers+=" (Debian)"
t0=$SECONDS

rows=()
case " $servers " in *" ottr "*)
	ottr_config ottr
	rows+=("ottr X-TOKEN" "ottr PLAIN")
	if [ -n "$base" ]; then
		ottr_config ottr-base
		rows+=("ottr-base X-TOKEN" "ottr-base PLAIN")
	fi
	;;
esac
if [ "$have_prosody" = 1 ]; then
	prosody_config
	start_prosody
	log "prosody: registering $users accounts"
	run_bench prosody-register register -addr 127.0.0.1:$port_prosody -ca "$work/cert.pem" -password $password -n $users -workers $workers
	stop_server
	rows+=("prosody PLAIN")
fi
if [ "$have_ejabberd" = 1 ]; then
	ejabberd_config
	start_ejabberd
	log "ejabberd: registering $users accounts"
	run_bench ejabberd-register register -addr 127.0.0.1:$port_ejabberd -ca "$work/cert.pem" -password $password -n $users -workers $workers
	stop_server
	rows+=("ejabberd PLAIN")
fi

# What the report needs to be drawn again (--report).
declare -p started loadavg machine version base_version peers quick rounds rows scale_ks login_n msg_m rate rate_s idle_k \
	scale_login_n scale_msg_m workers pairs window floor_n >"$results/run.env"

# ottr-base's rows run beside ottr's: scenario by scenario, rev then base
# (base then rev in even rounds), so that the machine's noise hits both.
for r in $(seq 1 "$rounds"); do
	for row in "${rows[@]}"; do
		set -- $row
		[ "$1" = ottr-base ] && continue
		pair=("$1")
		if [ "$1" = ottr ] && [ -n "$base" ]; then
			pair=(ottr ottr-base)
			[ $((r % 2)) = 0 ] && pair=(ottr-base ottr)
		fi
		log "round $r: ${pair[*]} $2"
		for name in $(scenario_names "$1" "$2"); do
			for srv in "${pair[@]}"; do
				scenario "$srv" "$2" "$r" "$name"
			done
		done
	done
done

# The logins against their floor (issue 14): bench/login-floor.sh with
# the rev's ./server test binary, each login benchmark between two runs of
# a bare TLS handshake. A rev without the benchmarks leaves the table out.
if [[ " $servers " == *" ottr "* ]]; then
	log "ottr: logins against a bare TLS handshake ($floor_n operations a run, $((rounds * 2 + 1)) samples each)"
	if (cd "$work/src-rev" && go test -c -o "$work/server-rev.test" ./server) 2>>"$work/bench.log"; then
		bash "$here/login-floor.sh" -n "$floor_n" -r $((rounds * 2 + 1)) -b "$work/server-rev.test" -C "$work/src-rev/server" \
			>"$results/login-floor.md" 2>>"$work/bench.log" ||
			log "the login floor benchmarks failed: $(tail -3 "$work/bench.log")"
	fi
fi

# ottr with K idle sessions held: RSS, and login and message CPU beside them.
if [ "$scale" = 1 ] && [[ " $servers " == *" ottr "* ]]; then
	for k in $scale_ks; do
		log "ottr with $k idle sessions"
		start_ottr
		common=(-addr "127.0.0.1:$port_ottr" -ca "$work/cert.pem" -workers $workers -mech X-TOKEN -otp-seed $seed -token-secret $secret)
		# The holder writes its summary once settled, then holds (at most
		# 10 minutes) until it is sent SIGTERM.
		taskset -c 1 "$bench" idle "${common[@]}" -k "$k" -settle 2s -hold 10m -pid "$server_pid" -progress 0 \
			-user-prefix idle -label "scale-k$k-idle" >"$results/scale-k$k-idle.json" 2>>"$work/bench.log" &
		holder_pid=$!
		for _ in $(seq 1 1200); do
			[ -s "$results/scale-k$k-idle.json" ] && break # written at once
			kill -0 "$holder_pid" 2>/dev/null || break
			sleep 0.25
		done
		if [ -s "$results/scale-k$k-idle.json" ] && jq -e .scenario "$results/scale-k$k-idle.json" >/dev/null 2>&1; then
			log "scale-k$k-idle: $(jq -r '"\(.ops) sessions, \(.rss_after_kib) KiB RSS, \(.rss_per_session_kib) KiB/session"' "$results/scale-k$k-idle.json")"
			run_bench "scale-k$k-login" login "${common[@]}" -n $scale_login_n -users $login_users
			run_bench "scale-k$k-msg" msg "${common[@]}" -pairs $pairs -m $scale_msg_m -window $window
		else
			log "scale-k$k: the idle sessions did not settle: $(tail -2 "$work/bench.log")"
		fi
		kill "$holder_pid" 2>/dev/null || true
		wait "$holder_pid" 2>/dev/null || true
		holder_pid=
		stop_server
	done
fi

report
log "wrote $results/compare.md in $((SECONDS - t0)) s"
cat "$results/compare.md"
if [ "$failures" -gt 0 ]; then
	log "$failures run(s) failed or lost operations: see above"
	exit 1
fi

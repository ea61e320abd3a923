#!/usr/bin/env bash
# Start a single-node Ray head for this machine only: every Ray server on 127.0.0.1, token auth on,
# ports of its own (so it can run beside other Ray instances), in a process session of its own (so
# cluster/stop-local-head.sh can stop exactly this head and nothing else; never use `ray stop`, it
# kills every Ray process on the machine).
#
# Usage: cluster/local-head.sh [--port PORT] [--dashboard-port PORT] [--num-cpus N] [--temp-dir DIR]
#                              [--token-file FILE] [--start-timeout SECONDS]
#   --port            GCS port (default: a free port)
#   --dashboard-port  dashboard / job API port (default: a free port)
#   --num-cpus        CPUs the head offers (default: Ray's count of this machine's CPUs)
#   --temp-dir        Ray's temp dir and where the state file and head.log go (default: a new
#                     /tmp/gp-ray-XXXXXX; must be short, Ray puts unix sockets under it)
#   --token-file      token file for this head (created with a fresh token when missing); clients
#                     then need RAY_AUTH_TOKEN_PATH=FILE. Default: the user's token, ~/.ray/auth_token,
#                     generated with `ray get-auth-token --generate` when missing
#   --start-timeout   seconds to wait for the head to answer (default 90)
# Environment: GP_RAY_BIN, the ray executable (default: <repo>/.venv/bin/ray, else `ray` on PATH).
#
# Prints the GCS address, the dashboard URL, the state file (<temp-dir>/gp-head.env, KEY=VALUE lines)
# and the exact `ray job submit` command for the demo. Exit status 0 once the head answers.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_DIR
# Ray's longest unix socket is <temp-dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store,
# about 64 characters past the temp dir, and a socket path must fit in 107 bytes.
readonly MAX_TEMP_DIR_CHARS=40

die() { echo "local-head.sh: $*" >&2; exit 2; }

gcs_port="" dashboard_port="" num_cpus="" temp_dir="" token_file="" start_timeout_s=90
while (($#)); do
    case "$1" in
        --port) gcs_port="${2:?--port needs a value}"; shift 2 ;;
        --dashboard-port) dashboard_port="${2:?--dashboard-port needs a value}"; shift 2 ;;
        --num-cpus) num_cpus="${2:?--num-cpus needs a value}"; shift 2 ;;
        --temp-dir) temp_dir="${2:?--temp-dir needs a value}"; shift 2 ;;
        --token-file) token_file="${2:?--token-file needs a value}"; shift 2 ;;
        --start-timeout) start_timeout_s="${2:?--start-timeout needs a value}"; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
for value in "$gcs_port" "$dashboard_port" "$num_cpus" "$start_timeout_s"; do
    [[ -z "$value" || "$value" =~ ^[0-9]+$ ]] || die "not a non-negative integer: $value"
done

if [[ -n "${GP_RAY_BIN:-}" ]]; then
    ray_bin="$GP_RAY_BIN"
elif [[ -x "$REPO_DIR/.venv/bin/ray" ]]; then
    ray_bin="$REPO_DIR/.venv/bin/ray"
else
    ray_bin="$(command -v ray)" || die "no ray executable (set GP_RAY_BIN, or run tools/install_env.sh)"
fi
[[ -x "$ray_bin" ]] || die "$ray_bin is not executable"
ray_bin="$(cd "$(dirname "$ray_bin")" && pwd)/$(basename "$ray_bin")"
ray_bin_dir="$(dirname "$ray_bin")"
python_bin="$ray_bin_dir/python"
[[ -x "$python_bin" ]] || python_bin="$(command -v python3)" || die "no python next to $ray_bin and no python3"

if [[ -z "$temp_dir" ]]; then
    temp_dir="$(mktemp -d /tmp/gp-ray-XXXXXX)"
else
    [[ "$temp_dir" == /* ]] || temp_dir="$PWD/$temp_dir"
    ((${#temp_dir} <= MAX_TEMP_DIR_CHARS)) \
        || die "--temp-dir $temp_dir is ${#temp_dir} characters; Ray's unix sockets need at most $MAX_TEMP_DIR_CHARS"
    mkdir -p "$temp_dir"
fi
readonly state_file="$temp_dir/gp-head.env"
readonly head_log="$temp_dir/head.log"
# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat, counted after the
# command name, which may hold spaces); empty when the process is gone or a zombie.
start_time() {
    local stat fields
    [[ -n "$1" ]] && read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    read -r -a fields <<<"${stat##*) }"
    [[ "${fields[0]}" == Z ]] || echo "${fields[19]}"
}

if [[ -e "$state_file" ]]; then
    recorded_pid="$(sed -n 's/^GP_HEAD_LEADER_PID=\([0-9]*\)$/\1/p' "$state_file")"
    recorded_start="$(sed -n 's/^GP_HEAD_LEADER_START=\([0-9]*\)$/\1/p' "$state_file")"
    [[ -z "$recorded_pid" || "$(start_time "$recorded_pid")" != "$recorded_start" ]] \
        || die "a head from $temp_dir still runs (pid $recorded_pid): cluster/stop-local-head.sh $state_file"
fi

# Free loopback ports for everything Ray would otherwise put on a fixed port (client server 10001,
# dashboard agent 52365, dashboard and autoscaler metrics 44227 / 44217), so a second head or someone
# else's Ray on this machine cannot collide with this one. All are held open together, so distinct.
read -r free_gcs free_dashboard client_port agent_port dashboard_metric_port autoscaler_metric_port < <(
    "$python_bin" - <<'PY'
import socket
sockets = [socket.socket() for _ in range(6)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
PY
)
gcs_port="${gcs_port:-$free_gcs}"
dashboard_port="${dashboard_port:-$free_dashboard}"

export RAY_AUTH_MODE=token
if [[ -n "$token_file" ]]; then
    token_dir="$(dirname "$token_file")"
    mkdir -p "$token_dir"
    token_file="$(cd "$token_dir" && pwd)/$(basename "$token_file")"
    if [[ ! -s "$token_file" ]]; then
        (umask 077 && "$python_bin" -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(32))' >"$token_file")
    fi
    # RAY_AUTH_TOKEN outranks RAY_AUTH_TOKEN_PATH in Ray; drop an inherited one so the file decides.
    unset RAY_AUTH_TOKEN
    export RAY_AUTH_TOKEN_PATH="$token_file"
    client_token_env="RAY_AUTH_TOKEN_PATH=$token_file "
else
    # Ray writes a new token file with the process umask (0644 by default): keep it private.
    (umask 077 && "$ray_bin" get-auth-token --generate >/dev/null 2>&1) || die "ray get-auth-token --generate failed"
    client_token_env=""
fi

# On Linux Ray rewrites --node-ip-address=127.0.0.1 to the machine's outward address and its gRPC
# servers then listen on every interface. Ray's single-machine mode (the switch it uses on macOS and
# Windows) keeps the node on loopback and makes every server bind 127.0.0.1; it also refuses to let
# other machines join, which is what a local head wants.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export DASHBOARD_METRIC_PORT="$dashboard_metric_port" AUTOSCALER_METRIC_PORT="$autoscaler_metric_port"
export RAY_USAGE_STATS_ENABLED=0
# On SIGTERM `ray start` first drains the node, waiting up to 30 s for running tasks to finish; on a
# single-node head there is nowhere to move them, so stop at once (training resumes from checkpoints).
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}"
# A job's entrypoint (`gp train`) runs with the head's environment: put the package's scripts on PATH.
export PATH="$ray_bin_dir:$PATH"

start_args=(start --head --block
    --node-ip-address=127.0.0.1 --port="$gcs_port"
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$dashboard_port"
    --ray-client-server-port="$client_port" --dashboard-agent-listen-port="$agent_port"
    --temp-dir="$temp_dir" --disable-usage-stats)
[[ -z "$num_cpus" ]] || start_args+=(--num-cpus="$num_cpus")

# Readiness below waits for ray start to write this file; one left by an earlier head would lie.
rm -f "$temp_dir/ray_current_cluster"
# A background child of a non-interactive shell is not a process-group leader, so setsid(1) calls
# setsid() in place: $! is `ray start` itself, and its pid names the new session.
setsid "$ray_bin" "${start_args[@]}" >"$head_log" 2>&1 </dev/null &
readonly leader_pid=$!
leader_start="$(start_time "$leader_pid")"

kill_session() {
    local pid
    for pid in $(ps -e -o pid=,sid= | awk -v sid="$leader_pid" '$2 == sid { print $1 }'); do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
fail() {
    echo "local-head.sh: $*" >&2
    echo "--- last lines of $head_log ---" >&2
    tail -n 25 "$head_log" >&2 || true
    kill_session
    exit 1
}
[[ -n "$leader_start" ]] || fail "ray start exited at once"
trap 'fail "interrupted"' INT TERM
# KEY=VALUE, one a line, no quoting: stop-local-head.sh parses it without evaluating anything. The
# leader goes in first, so that even a head that is still starting can be stopped.
printf 'GP_HEAD_LEADER_PID=%s\nGP_HEAD_LEADER_START=%s\n' "$leader_pid" "$leader_start" >"$state_file"

# Ready when ray start has written the GCS address (after its node started) and the dashboard accepts
# connections: then `ray job submit` works.
deadline=$((SECONDS + start_timeout_s))
until [[ -s "$temp_dir/ray_current_cluster" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$dashboard_port") 2>/dev/null; do
    kill -0 "$leader_pid" 2>/dev/null || fail "ray start exited before the head came up"
    ((SECONDS < deadline)) || fail "the head did not answer within ${start_timeout_s}s"
    sleep 0.5
done
trap - INT TERM
[[ "$(ps -o sid= -p "$leader_pid" | tr -d ' ')" == "$leader_pid" ]] || fail "ray start did not get a session of its own"
gcs_address="$(<"$temp_dir/ray_current_cluster")"
dashboard_url="http://127.0.0.1:$dashboard_port"

cat >>"$state_file" <<EOF
GP_HEAD_GCS_ADDRESS=$gcs_address
GP_HEAD_DASHBOARD_URL=$dashboard_url
GP_HEAD_TEMP_DIR=$temp_dir
GP_HEAD_LOG=$head_log
GP_HEAD_TOKEN_PATH=${token_file}
GP_HEAD_CLIENT_SERVER_PORT=$client_port
GP_HEAD_DASHBOARD_AGENT_PORT=$agent_port
EOF

cat <<EOF
Ray head started (session $leader_pid, all servers on 127.0.0.1, token auth on)
  GCS address:   $gcs_address
  dashboard:     $dashboard_url
  state file:    $state_file
  log:           $head_log
Submit the demo (the job runs in a temporary copy of the repository: keep run and MLflow paths absolute):
  ${client_token_env}RAY_AUTH_MODE=token $ray_bin job submit --address $dashboard_url --working-dir $REPO_DIR --runtime-env $REPO_DIR/cluster/runtime_env.yaml -- gp train --config configs/demo.yaml train.storage_path=$REPO_DIR/runs tracking.tracking_uri=sqlite:///$REPO_DIR/mlflow.db
Status (a client that talks to the GCS itself, ray CLI or ray.init, needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 too):
  ${client_token_env}RAY_AUTH_MODE=token RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 $ray_bin status --address $gcs_address
Stop this head only (never \`ray stop\`: it kills every Ray process on the machine):
  $REPO_DIR/cluster/stop-local-head.sh $state_file
EOF

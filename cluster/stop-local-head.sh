#!/usr/bin/env bash
# Stop the one Ray head that cluster/local-head.sh started and recorded in STATE_FILE, and nothing
# else: never `ray stop`, which kills every Ray process on the machine, other people's included.
#
# Usage: cluster/stop-local-head.sh STATE_FILE [--timeout SECONDS]
#   --timeout  seconds to wait for a graceful shutdown before SIGKILL (default 20)
#
# What belongs to the head: every process in the session that `ray start --block` leads (GCS, raylet,
# dashboard, agents, workers) and every descendant of those, such as a job's entrypoint, which Ray
# starts in a session of its own. The set is taken before any signal is sent, each process recorded
# with its start time so that a recycled pid is never signalled. The leader gets SIGTERM (it stops its
# children in order); whatever of the set outlives the timeout gets SIGKILL.
# Exit status 0 when none of the head's processes is left (also when it had already stopped), 1 if
# some survive, 2 on bad usage. The temp dir with the logs is kept.
set -euo pipefail

die() { echo "stop-local-head.sh: $*" >&2; exit 2; }

state_file="" timeout_s=20
while (($#)); do
    case "$1" in
        --timeout) timeout_s="${2:?--timeout needs a value}"; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) [[ -z "$state_file" ]] || die "one state file only"; state_file="$1"; shift ;;
    esac
done
[[ -n "$state_file" ]] || die "usage: stop-local-head.sh STATE_FILE [--timeout SECONDS]"
[[ -f "$state_file" ]] || die "$state_file: no such state file"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout: not a whole number of seconds: $timeout_s"

leader_pid="" leader_start=""
line_number=0
while IFS= read -r line || [[ -n "$line" ]]; do
    line_number=$((line_number + 1))
    case "$line" in
        GP_HEAD_LEADER_PID=*) leader_pid="${line#*=}" ;;
        GP_HEAD_LEADER_START=*) leader_start="${line#*=}" ;;
        GP_HEAD_*=*|'') ;;
        *) die "$state_file:$line_number: not a local-head state line: $line" ;;
    esac
done <"$state_file"
[[ "$leader_pid" =~ ^[1-9][0-9]*$ ]] || die "$state_file: GP_HEAD_LEADER_PID missing or not a pid"
[[ "$leader_start" =~ ^[0-9]+$ ]] || die "$state_file: GP_HEAD_LEADER_START missing or not a number"

# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat; the command name
# before it may hold spaces, so cut at its last closing parenthesis); empty when the process is gone
# or a zombie (it holds nothing but its pid, and its parent or init reaps it). Pure bash: this runs
# for every process of the head twice a second.
start_time() {
    local stat fields
    [[ -n "$1" ]] && read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    read -r -a fields <<<"${stat##*) }"
    [[ "${fields[0]}" == Z ]] || echo "${fields[19]}"
}

# "pid start_time" for every process of the head: the session's members, then their descendants.
snapshot() {
    ps -e -o pid=,ppid=,sid= | awk -v sid="$leader_pid" '
        { parent[$1] = $2; session[$1] = $3 }
        END {
            for (pid in session) if (session[pid] == sid) member[pid] = 1
            do {
                grew = 0
                for (pid in parent) if (!(pid in member) && (parent[pid] in member)) { member[pid] = 1; grew = 1 }
            } while (grew)
            for (pid in member) print pid
        }' | while read -r pid; do
        started="$(start_time "$pid")"
        [[ -z "$started" ]] || echo "$pid $started"
    done
}

# The members of a snapshot still alive as the same processes (same start time).
alive() {
    local pid started
    while read -r pid started; do
        [[ -z "$pid" || "$(start_time "$pid")" != "$started" ]] || echo "$pid $started"
    done <<<"$1"
}

# Still the head's: the snapshot taken before signalling, alive as the same processes, plus anything
# that has joined the session since (the kernel does not reuse a pid while it names a session).
remaining() { { alive "$members"; snapshot; } | sort -u; }

current_start="$(start_time "$leader_pid")"
if [[ -n "$current_start" && "$current_start" != "$leader_start" ]]; then
    echo "head $leader_pid already stopped (its pid now names another process, left alone)"
    exit 0
fi
members="$(snapshot)"
if [[ -z "$members" ]]; then
    echo "head $leader_pid already stopped"
    exit 0
fi
if [[ -n "$current_start" ]]; then
    kill -TERM "$leader_pid" 2>/dev/null || true
else
    # The leader died and left part of its session behind: nothing orchestrates their shutdown now
    # (orphaned agents were seen ignoring SIGTERM), so a short grace before SIGKILL.
    while read -r pid _; do kill -TERM "$pid" 2>/dev/null || true; done <<<"$members"
    timeout_s=$((timeout_s < 5 ? timeout_s : 5))
fi
deadline=$((SECONDS + timeout_s))
left="$(remaining)"
while [[ -n "$left" ]] && ((SECONDS < deadline)); do
    sleep 0.5
    left="$(remaining)"
done
if [[ -n "$left" ]]; then
    echo "stop-local-head.sh: $(wc -l <<<"$left") process(es) of head $leader_pid outlived ${timeout_s}s: SIGKILL" >&2
    while read -r pid _; do kill -KILL "$pid" 2>/dev/null || true; done <<<"$left"
    deadline=$((SECONDS + 5))
    while [[ -n "$left" ]] && ((SECONDS < deadline)); do
        sleep 0.2
        left="$(remaining)"
    done
fi
if [[ -n "$left" ]]; then
    echo "stop-local-head.sh: still running: $(cut -d' ' -f1 <<<"$left" | tr '\n' ' ')" >&2
    exit 1
fi
echo "head $leader_pid stopped ($(wc -l <<<"$members") processes)"

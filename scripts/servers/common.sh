# shellcheck shell=bash disable=SC2154,SC2034
# Shared helpers for scripts/servers/kafka and scripts/servers/mongo (sourced, not run).
# The caller sets: name (for messages), dir (data/log dir), pidfile, log, match
# (a string that the server's command line must contain) and port.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
servers_dir=$(realpath -m "${BALANCE_SERVERS_DIR:-$repo/.servers}")
cache_dir=$(realpath -m "${BALANCE_CACHE_DIR:-$HOME/.cache/account-balance}")

die() {
    echo "$name: $*" >&2
    exit 1
}

# need CMD INSTALL-HINT: fail clearly when a tool is missing.
need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; install it: $2"
}

# alive PID: true while the process exists and has not finished exiting.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != Z* ]]
}

# pid: print the server's pid if it is running (and is really our server).
pid() {
    local p cmd
    [[ -f $pidfile ]] || return 1
    p=$(<"$pidfile")
    [[ $p =~ ^[0-9]+$ ]] && alive "$p" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$match"* ]] || return 1
    echo "$p"
}

port_open() {
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# launch CMD...: start CMD in the background, detached, output to $log.
launch() {
    mkdir -p "$dir"
    [[ -f $log ]] && mv -f "$log" "$log.1"
    setsid "$@" </dev/null >"$log" 2>&1 &
    echo $! >"$pidfile"
}

# wait_ready TIMEOUT CHECK...: poll CHECK until it succeeds; on timeout or
# death of the server, print the log's tail and fail.
wait_ready() {
    local timeout=$1 start=$SECONDS
    shift
    until "$@"; do
        # Only whether the launched process still exists: just after launch its command line
        # may not be the server's yet (setsid has not exec'd it), which `pid` would reject.
        if ! alive "$(<"$pidfile")"; then
            tail -n 40 "$log" >&2 || true
            die "server exited during start-up (log: $log)"
        fi
        if ((SECONDS - start >= timeout)); then
            tail -n 40 "$log" >&2 || true
            stop_server TERM >&2
            die "not ready after ${timeout}s, stopped it again (log: $log)"
        fi
        sleep 0.5
    done
    echo "$name: ready on 127.0.0.1:$port after $((SECONDS - start))s (pid $(pid))"
}

# stop_server SIGNAL: SIGTERM waits up to 30 s then SIGKILLs; SIGKILL is at once.
stop_server() {
    local p i
    if ! p=$(pid); then
        rm -f "$pidfile"
        echo "$name: not running"
        return 0
    fi
    kill "-$1" "$p" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        alive "$p" || break
        sleep 0.1
    done
    if alive "$p"; then
        echo "$name: pid $p ignored SIG$1 for 30s, sending SIGKILL" >&2
        kill -KILL "$p" 2>/dev/null || true
        while alive "$p"; do sleep 0.1; done
    fi
    # The last threads of a dying process may still hold its sockets.
    for ((i = 0; i < 100; i++)); do
        port_open || break
        sleep 0.1
    done
    rm -f "$pidfile"
    echo "$name: stopped (SIG$1, pid $p)"
}

status() {
    local p
    if p=$(pid); then
        if port_open; then
            echo "$name: running (pid $p) on 127.0.0.1:$port"
        else
            echo "$name: running (pid $p) but 127.0.0.1:$port is not open yet"
        fi
    else
        echo "$name: not running"
        return 1
    fi
}

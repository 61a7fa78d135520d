# Shared set-up helpers for scripts/test, scripts/demo and .ci/run (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Pick a Python >= 3.11.
find_python() {
    local c
    for c in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [[ -n "$c" ]] || continue
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    die "Python 3.11 or newer is needed (apt-get install python3 python3-venv)"
}

# .venv with the project and its test tools; reinstalled when pyproject.toml changes.
ensure_venv() {
    local py stamp
    py=$(find_python)
    if [[ ! -x .venv/bin/python ]]; then
        step "creating .venv with $py"
        if ! "$py" -m venv .venv; then
            rm -rf .venv
            if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
                step "installing python3-venv (apt-get)"
                apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
                    || die "apt-get install python3-venv failed"
                "$py" -m venv .venv || die "could not create a venv with $py"
            else
                die "could not create a venv: run 'sudo apt-get install python3-venv'"
            fi
        fi
    fi
    stamp=$(sha256sum pyproject.toml | cut -c1-16)
    if [[ ! -f .venv/.installed-$stamp ]]; then
        step "installing rpcdaemon and test tools into .venv"
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
        .venv/bin/python -m pip install -q -e '.[test]' || die "pip install failed"
        rm -f .venv/.installed-* && touch ".venv/.installed-$stamp"
    fi
}

amqp_up() {
    .venv/bin/python - <<'PY' 2>/dev/null
import os, sys
from kombu import Connection
url = os.environ.get("RPCDAEMON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
try:
    with Connection(url, connect_timeout=3) as c:
        c.connect()
except Exception:
    sys.exit(1)
PY
}

# RabbitMQ: use it if it answers; start it if installed; install it as root on Debian.
ensure_rabbitmq() {
    amqp_up && return 0
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            step "installing rabbitmq-server (apt-get)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null \
                || die "apt-get install rabbitmq-server failed"
        else
            die "RabbitMQ is not installed: run 'sudo apt-get install rabbitmq-server' (or set RPCDAEMON_AMQP_URL to a broker)"
        fi
    fi
    step "starting RabbitMQ (rabbitmq-server -detached)"
    if [[ $(id -u) == 0 ]] && ! pgrep -x epmd >/dev/null 2>&1; then
        epmd -address 127.0.0.1 -daemon 2>/dev/null || true
    fi
    rabbitmq-server -detached >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 60); do
        rabbitmqctl status >/dev/null 2>&1 && break
        sleep 1
    done
    rabbitmqctl await_startup >/dev/null 2>&1 || die "RabbitMQ did not start (see /var/log/rabbitmq/)"
    for i in $(seq 1 30); do amqp_up && return 0; sleep 1; done
    die "RabbitMQ is running but 127.0.0.1:5672 does not accept guest/guest"
}

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

# Redis is used by the leader-election tests (tooz).
ensure_redis() {
    redis_up && return 0
    if ! command -v redis-server >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            step "installing redis-server (apt-get)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
                || die "apt-get install redis-server failed"
        else
            die "Redis is not installed: run 'sudo apt-get install redis-server'"
        fi
    fi
    step "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 \
        || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    local i
    for i in $(seq 1 30); do redis_up && return 0; sleep 0.5; done
    die "Redis did not start on 127.0.0.1:6379"
}

# Install Debian packages as root (apt-get update once per run), or say what to run.
_apt_install() {
    local what="$1"; shift
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        step "installing $* (apt-get)"
        if [[ -z "${_RPCD_APT_UPDATED:-}" ]]; then
            apt-get update -qq || die "apt-get update failed"
            _RPCD_APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
            || die "apt-get install $* failed"
    else
        die "$what is not installed: run 'sudo apt-get install $*'"
    fi
}

# A plain HTTP GET on 127.0.0.1 with bash alone (no curl on minimal images); prints the body.
_http_get() {
    local port="$1" path="$2"
    (exec 3<>"/dev/tcp/127.0.0.1/$port" \
        && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3 \
        && timeout 3 cat <&3) 2>/dev/null
}

etcd_up() { _http_get 2379 /health | grep -q '"health":\s*"true"'; }

# etcd (Debian's etcd-server, API v3 through its grpc-gateway) for the election tests.
# Started directly (no systemd here), single member, client and peer URLs on 127.0.0.1.
ensure_etcd() {
    etcd_up && return 0
    command -v etcd >/dev/null 2>&1 || _apt_install etcd etcd-server
    local dir=/var/lib/rpcdaemon-ci/etcd
    mkdir -p "$dir" 2>/dev/null || dir=/tmp/rpcdaemon-ci/etcd
    mkdir -p "$dir/data" && chmod 700 "$dir/data"
    step "starting etcd (data in $dir)"
    setsid nohup etcd \
        --name rpcdaemon-ci --data-dir "$dir/data" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster rpcdaemon-ci=http://127.0.0.1:2380 \
        </dev/null >"$dir/etcd.log" 2>&1 &
    local i
    for i in $(seq 1 60); do etcd_up && return 0; sleep 0.5; done
    tail -20 "$dir/etcd.log" >&2 || true
    die "etcd did not start on 127.0.0.1:2379 (see $dir/etcd.log)"
}

zookeeper_up() {
    (exec 3<>/dev/tcp/127.0.0.1/2181 && printf 'srvr' >&3 && timeout 3 cat <&3 | grep -q '^Mode:') 2>/dev/null
}

# ZooKeeper (Debian's zookeeperd) for the election tests: standalone, on 127.0.0.1:2181, with
# its own configuration (no AdminServer on :8080, default session limits 4 s to 40 s).
ensure_zookeeper() {
    zookeeper_up && return 0
    [[ -f /usr/share/java/zookeeper.jar ]] || _apt_install ZooKeeper zookeeperd
    command -v java >/dev/null 2>&1 || _apt_install Java default-jre-headless
    local dir=/var/lib/rpcdaemon-ci/zookeeper
    mkdir -p "$dir" 2>/dev/null || dir=/tmp/rpcdaemon-ci/zookeeper
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=2181
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
    step "starting ZooKeeper (data in $dir)"
    local cp="/usr/share/java/zookeeper.jar"
    [[ -d /etc/zookeeper/conf ]] && cp="/etc/zookeeper/conf:$cp"
    setsid nohup java -Xmx256m -Dzookeeper.log.dir="$dir" -Dzookeeper.root.logger=INFO,CONSOLE \
        -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
        </dev/null >"$dir/zookeeper.log" 2>&1 &
    local i
    for i in $(seq 1 90); do zookeeper_up && return 0; sleep 0.5; done
    tail -20 "$dir/zookeeper.log" >&2 || true
    die "ZooKeeper did not start on 127.0.0.1:2181 (see $dir/zookeeper.log)"
}

# systemd-analyze, for the test that verifies contrib/systemd/rpcdaemon.service.
ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null 2>&1 || _apt_install systemd-analyze systemd
}

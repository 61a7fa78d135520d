"""A private, throw-away RabbitMQ node for tests that must stop and start the broker.

Other engineers and CI jobs share the main broker on 5672, so restart tests never touch it:
this starts a second node (own name, own ports, own mnesia/log/config/cookie under a temp
dir) with the scripts in /usr/lib/rabbitmq/bin, run as the current user. The Debian wrappers
in /usr/sbin would ``su rabbitmq`` when run as root and read /etc/rabbitmq/rabbitmq-env.conf
(which names the main node); the scripts underneath do neither when given their environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

SCRIPTS = Path(os.environ.get("RPCDAEMON_RABBITMQ_SCRIPTS", "/usr/lib/rabbitmq/bin"))


class RabbitNodeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def available() -> str | None:
    """None if a private node can be started here, else why not."""
    if not (SCRIPTS / "rabbitmq-server").exists() or not (SCRIPTS / "rabbitmqctl").exists():
        return f"RabbitMQ scripts not found in {SCRIPTS}"
    if shutil.which("erl") is None and not Path("/usr/lib/erlang/bin/erl").exists():
        return "Erlang (erl) is not installed"
    return None


class RabbitNode:
    """``start()`` it, use ``url``, ``stop_app()``/``start_app()``, ``list_queues()``, ``stop()``."""

    def __init__(self) -> None:
        self.name = f"rpcdtest-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rpcdtest-rabbit-"))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.dir / "console.log"
        (self.dir / "mnesia").mkdir()
        (self.dir / "log").mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
        )
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie lives here, shared with rabbitmqctl
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [str(SCRIPTS / "rabbitmq-server")],
                env=self.env,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, which stop() may kill
            )
        self.wait_amqp(timeout)

    def wait_amqp(self, timeout: float = 60.0) -> None:
        """Wait until the AMQP port accepts guest/guest."""
        from kombu import Connection

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RabbitNodeError(f"node exited early: {self.tail()}")
            try:
                with Connection(self.url, connect_timeout=2) as conn:
                    conn.connect()
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.5)
        raise RabbitNodeError(f"node {self.name} not up after {timeout}s: {last!r}; {self.tail()}")

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        proc = subprocess.run(
            [str(SCRIPTS / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RabbitNodeError(f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_amqp()

    def list_queues(self) -> dict[str, tuple[bool, str]]:
        """name -> (durable, arguments as rabbitmqctl prints them)."""
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "durable", "arguments")
        queues: dict[str, tuple[bool, str]] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                queues[parts[0]] = (parts[1] == "true", parts[2])
        return queues

    def stop(self) -> None:
        try:
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self.ctl("stop", timeout=60)
                except (RabbitNodeError, subprocess.TimeoutExpired):
                    pass
                try:
                    self._proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self._proc.pid, signal.SIGKILL)  # our own process group only
                    self._proc.wait(timeout=10)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

"""Server processes for the HTTP and memory benches: started on 127.0.0.1 on a free port with
their output in a log file, polled until they answer, stopped by their pid at the end."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port

__all__ = ["ROOT", "CpuTimes", "Server", "cpu_times", "rss_mb", "serve", "stop_process"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health/live")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def serve(
    name: str,
    module_args: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float = 180,
) -> Iterator[Server]:
    """``python -m <module_args...> --host 127.0.0.1 --port <free>``, until the block ends."""
    port = free_port()
    log = log_dir / f"{name}.log"
    command = [sys.executable, "-m", *module_args, "--host", "127.0.0.1", "--port", str(port)]
    # Only the backend's own BALANCE_* settings: none leak in from the caller's environment.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), **env}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer within {timeout:.0f} s; see {log}")
            time.sleep(0.1)
        yield Server(name, port, process, log)
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server as an operator would (SIGINT: it closes its stores), killed after 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully: the app closes its stores
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """CPU seconds (user + system) a process has used: its main thread, which runs the event
    loop, and the whole process (the loop plus the SQLite writer and checkpoint threads)."""

    loop: float
    process: float

    def __sub__(self, earlier: CpuTimes) -> CpuTimes:
        return CpuTimes(self.loop - earlier.loop, self.process - earlier.process)


def _stat_seconds(path: Path) -> float:
    # The fields after the command name, which may hold spaces: utime and stime are the 12th
    # and 13th (proc(5): fields 14 and 15 counting pid and comm).
    fields = path.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> CpuTimes | None:
    """The CPU a server has used so far, from /proc; None where there is no /proc (not Linux)."""
    try:
        return CpuTimes(
            _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat")),
            _stat_seconds(Path(f"/proc/{pid}/stat")),
        )
    except (OSError, IndexError, ValueError):
        return None


def rss_mb(pid: int) -> dict[str, float]:
    """Resident set size now and at its peak (VmRSS, VmHWM), in MB, from /proc/<pid>/status."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return {"rss_mb": figures["VmRSS"], "peak_mb": figures["VmHWM"]}

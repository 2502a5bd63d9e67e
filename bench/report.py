"""Writing one run's results: ``latest.json`` (everything), ``latest.md`` (the table, with the
machine it came from) and ``latest.png`` (throughput and latency, each beside its baseline)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench.common import Row
from bench.scaling import scale_out_rates, scale_out_seconds

__all__ = [
    "README_END",
    "README_START",
    "machine",
    "markdown",
    "update_readme",
    "warmup_lines",
    "write",
]

README_START: Final = "<!-- bench:latest:start -->"
README_END: Final = "<!-- bench:latest:end -->"
_ROOT = Path(__file__).resolve().parent.parent


def _command(*args: str, any_status: bool = False) -> str:
    """The first line ``args`` print ("" when it fails; ``any_status``: whatever it exits with,
    for ``wrk --version``, which exits 1)."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, cwd=_ROOT, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines and (done.returncode == 0 or any_status) else ""


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    dirty = bool(_command("git", "status", "--porcelain"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": _command("wrk", "--version", any_status=True).split(" [")[0] or "wrk not installed",
        "commit": (_command("git", "rev-parse", "--short", "HEAD") or "?")
        + (" (with uncommitted changes)" if dirty else ""),
    }


def warmup_lines(warmup: dict[str, Any]) -> list[str]:
    """What warmed the servers before their first measure (bench/warmup.py), or why it failed."""
    if "error" in warmup:
        return [f"The servers' warm-up failed: {warmup['error']}.", ""]
    return [
        f"Before their first measure, the {w['label']} servers were warmed up: "
        f"{w['seconds']:.0f} s of full-speed deposits ({w['deposits']:,}; {w['wall_s']:.0f} s "
        "with its set-up; bench/warmup.py)."
        for w in warmup.values()
    ] + ([""] if warmup else [])


def markdown(result: dict[str, Any], name: str = "latest") -> str:
    info = result["machine"]
    only = f" of {', '.join(result['measures'])} only" if name != "latest" else ""
    lines = [
        f"# Benchmarks: {result['mode']} run{only}, {result['finished_at']}",
        "",
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, Linux "
        f"{info['kernel']}, Python {info['python']}, SQLite {info['sqlite']}, {info['wrk']}; "
        f"commit {info['commit']}. Run took {result['duration_s']:.0f} s.",
        "",
        *warmup_lines(result.get("warmup", {})),
        "Every figure is the median of "
        f"{result['rounds']} round(s); ratios are taken within each round (same run, same "
        "machine) before the median. Method and fairness notes: docs/benchmarks.md.",
        "",
        table(result["rows"]),
        "",
        f"![throughput and latency]({name}.png)",
        "",
    ]
    errors = {k: m["error"] for k, m in result["measures"].items() if m.get("error")}
    if errors:
        lines += ["## Errors", ""] + [f"- {key}: {error}" for key, error in errors.items()] + [""]
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| measure | baseline | measured | ratio | target | result | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row[k] for k in ("measure", "baseline", "measured", "ratio", "target")]
        cells += [_badge(row["status"]), row["note"]]
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)


def _badge(status: str) -> str:
    return {"pass": "**pass**", "miss": "**MISS**"}.get(status, status)


def update_readme(readme: Path, result: dict[str, Any]) -> None:
    """Replace the table between the markers in ``readme`` (only a full run does this)."""
    text = readme.read_text() if readme.exists() else ""
    if README_START not in text or README_END not in text:
        return
    info = result["machine"]
    block = "\n".join(
        [
            README_START,
            f"Latest full run, {result['finished_at']}, on {info['cores']} cores ({info['cpu']}), "
            f"{info['memory_gib']} GiB; commit {info['commit']}:",
            "",
            table(result["rows"]),
            README_END,
        ]
    )
    before, _, rest = text.partition(README_START)
    _, _, after = rest.partition(README_END)
    readme.write_text(before + block + after)


def write(out: Path, result: dict[str, Any], name: str = "latest") -> None:
    """``<name>.json``, ``<name>.md`` and ``<name>.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown(result, name))
    plot(out / f"{name}.png", result)


def rows_of(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


def finished_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = {key: measure.get("figures", {}) for key, measure in result["measures"].items()}
    throughput: list[tuple[str, float, str]] = []
    latency: list[tuple[str, float, str]] = []
    http = measures.get("http", {})
    if "baseline" in http:
        throughput.append(("HTTP baseline (req/s)", http["baseline"]["per_s"], "grey"))
        latency.append(("HTTP baseline p50", http["baseline"]["p50_ms"], "grey"))
        latency.append(("HTTP baseline p99", http["baseline"]["p99_ms"], "grey"))
    for key in http.get("backends", []):
        label = "embedded" if key == "embedded" else key.replace("_", "+")
        throughput.append((f"HTTP {label} (req/s)", http[key]["per_s"], "tab:blue"))
        latency.append((f"HTTP {label} p50", http[key]["p50_ms"], "tab:blue"))
        latency.append((f"HTTP {label} p99", http[key]["p99_ms"], "tab:blue"))
    rates = measures.get("appends", {}).get("rates_per_s", {})
    for key, rate in rates.items():
        colour = "tab:green" if key.startswith("ours") else "grey"
        throughput.append((f"appends {key.replace('_', ' ')} (/s)", rate, colour))
    lag = measures.get("projection_lag", {})
    if "lag_p50_ms" in lag:
        latency.append(("projection lag p50", lag["lag_p50_ms"], "tab:orange"))
        latency.append(("projection lag p99", lag["lag_p99_ms"], "tab:orange"))
    rebuild = measures.get("rebuild", {})
    if "per_s" in rebuild:
        throughput.append(("rebuild (events/s)", rebuild["per_s"], "tab:orange"))
    throughput += scale_out_rates(measures)

    figure, (left, right, third) = plt.subplots(1, 3, figsize=(20, 6))
    _bars(left, throughput, "throughput (per second)")
    _bars(right, latency, "latency (ms)")
    _bars(third, scale_out_seconds(measures), "scale-out: take-over and fresh start (s)")
    right.axvline(25, color="tab:blue", linestyle=":", label="HTTP p99 target (25 ms)")
    right.axvline(50, color="tab:orange", linestyle=":", label="lag p99 target (50 ms)")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=8)
    right.set_xscale("symlog", linthresh=10)
    figure.suptitle(f"account-balance benchmarks, {result['mode']} run, {result['finished_at']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _bars(axes: Any, bars: list[tuple[str, float, str]], title: str) -> None:
    axes.set_title(title)
    if not bars:
        axes.text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes.transAxes)
        return
    labels = [label for label, _, _ in bars]
    values = [value for _, value, _ in bars]
    positions = range(len(bars))
    axes.barh(list(positions), values, color=[colour for _, _, colour in bars])
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.invert_yaxis()
    for y, value in zip(positions, values, strict=True):
        axes.text(value, y, f" {value:,.1f}" if value < 100 else f" {value:,.0f}", va="center",
                  fontsize=8)  # fmt: skip

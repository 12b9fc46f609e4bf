"""Run the Wove benchmarks and print µs per task against each workload's floor.

    python benchmarks/run.py [--quick] [--json PATH] [--peer] [--no-memory]

The engine in this checkout is measured in a fresh subprocess of the current interpreter, with
``packages/wove-core/src`` and ``packages/wove-local/src`` first on ``PYTHONPATH``; the
interpreter must have both distributions installed (editable) so the ``local`` executor's entry
point is found, as in ``hatch run bench:run``. With ``--peer``, the same workloads also run in a
subprocess of a cached virtualenv holding ``wove==2.0.3`` (``benchmarks/.peer-venv``, created on
first use), so the table gains a "2.0.3" column. Each engine measures its own floors in its own
process; ratios are always to the floor measured in the same run. DESIGN.md §7 holds the targets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = HERE / "workloads.py"
ENGINE_SOURCES = [ROOT / "packages" / "wove-core" / "src", ROOT / "packages" / "wove-local" / "src"]
PEER_VERSION = "2.0.3"
PEER_VENV = HERE / ".peer-venv"
MEMORY_SIZES = (100_000, 1_000_000)
#: Bytes per item may grow this much from the small to the large size and still be "linear".
LINEAR_SLACK = 1.5

# -- subprocesses -------------------------------------------------------------------------------


def engine_command() -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    paths = [str(path) for path in ENGINE_SOURCES]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return [sys.executable, str(WORKLOADS)], env


def peer_python() -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return PEER_VENV / scripts / ("python.exe" if os.name == "nt" else "python")


def ensure_peer_venv() -> Path:
    """Create ``benchmarks/.peer-venv`` with ``wove==2.0.3`` once; reuse it afterwards."""
    python = peer_python()
    marker = PEER_VENV / f"wove-{PEER_VERSION}.installed"
    if python.exists() and marker.exists():
        return python
    print(f"creating {PEER_VENV.relative_to(ROOT)} with wove=={PEER_VERSION} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"wove=={PEER_VERSION}"], check=True
    )
    marker.write_text(f"wove=={PEER_VERSION}\n")
    return python


def peer_command() -> tuple[list[str], dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # -I: ignore PYTHONPATH and user site-packages, so only the venv's wove 2.0.3 is importable.
    return [str(ensure_peer_venv()), "-I", str(WORKLOADS)], env


def run_json(command: list[str], env: dict[str, str], *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [*command, *args], env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(
            f"benchmark subprocess failed ({completed.returncode}): {command + list(args)}"
        )
    lines = completed.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_engine(
    label: str, command: list[str], env: dict[str, str], quick: bool, only: list[str]
) -> dict[str, Any]:
    print(f"[{label}] timed workloads", file=sys.stderr, flush=True)
    args = ["--json", "--quick"] if quick else ["--json"]
    for key in only:
        args += ["--only", key]
    return run_json(command, env, *args)


def run_memory(label: str, command: list[str], env: dict[str, str], kind: str) -> dict[str, Any]:
    probes: dict[str, Any] = {}
    for size in MEMORY_SIZES:
        print(f"[{label}] memory: {kind}, {size:,} items", file=sys.stderr, flush=True)
        probes[str(size)] = run_json(command, env, "--memory", kind, str(size))
    return probes


# -- formatting ---------------------------------------------------------------------------------


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit.startswith("ms"):
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(result: dict[str, Any] | None) -> float | None:
    if not result or "error" in result or not result.get("floor"):
        return None
    return float(result["value"]) / float(result["floor"])


def _target_text(result: dict[str, Any]) -> str:
    target = result.get("target")
    if target is None:
        return "report only"
    return f"≤ {target:g} ms" if result["unit"].startswith("ms") else f"≤ {target:g}x"


def verdict(result: dict[str, Any]) -> str:
    """'yes', 'NO' or '—' for one result against its DESIGN §7 target."""
    target = result.get("target")
    if target is None or "error" in result:
        return "—"
    measured = result["value"] if result["floor"] is None else _ratio(result)
    return "yes" if measured is not None and measured <= target else "NO"


def _cell(result: dict[str, Any] | None, unit: str) -> tuple[str, str]:
    if result is None:
        return "", ""
    if "error" in result:
        return "error", ""
    ratio = _ratio(result)
    return _number(result["value"], unit), ("—" if ratio is None else f"{ratio:.2f}x")


def timing_table(new: dict[str, Any], peer: dict[str, Any] | None) -> list[list[str]]:
    header = ["workload", "unit", "new", "floor", "new/floor", "target", "met"]
    if peer is not None:
        header += [f"{PEER_VERSION}", f"{PEER_VERSION}/floor"]
    rows = [header]
    for key, result in new["results"].items():
        unit = result["unit"]
        value, ratio = _cell(result, unit)
        floor = None if "error" in result else result.get("floor")
        row = [result["title"], unit, value, _number(floor, unit), ratio, _target_text(result)]
        row.append(verdict(result))
        if peer is not None:
            row += list(_cell(peer["results"].get(key), unit))
        rows.append(row)
    return rows


def memory_table(memory: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    header = ["items"]
    for label in memory:
        header += [f"{label} MB", f"{label} B/item"]
    rows = [header]
    for size in MEMORY_SIZES:
        row = [f"{size:,}"]
        for probes in memory.values():
            probe = probes[str(size)]
            row += [f"{probe['growth_bytes'] / 2**20:.1f}", f"{probe['bytes_per_item']:.0f}"]
        rows.append(row)
    notes: list[str] = []
    for label, probes in memory.items():
        if label == "gather":
            continue
        small = probes[str(MEMORY_SIZES[0])]["bytes_per_item"]
        large = probes[str(MEMORY_SIZES[-1])]["bytes_per_item"]
        linear = large <= small * LINEAR_SLACK
        text = f"{label}: {large / small if small else float('inf'):.2f}x bytes/item from "
        text += f"{MEMORY_SIZES[0]:,} to {MEMORY_SIZES[-1]:,} items "
        text += "(linear)" if linear else "(NOT linear)"
        if "gather" in memory:
            task_bytes = memory["gather"][str(MEMORY_SIZES[-1])]["bytes_per_item"]
            per_task = large >= task_bytes / 2
            text += f"; {large / task_bytes:.2f}x the per-item-task reference"
            text += " (looks like a task per item)" if per_task else " (no task per item)"
        notes.append(f"{text} -> target {'met' if memory_met(memory, label) else 'MISSED'}")
    return rows, notes


def memory_met(memory: dict[str, Any], label: str) -> bool:
    """Linear growth and far fewer bytes per item than one asyncio task per item."""
    probes = memory[label]
    small = probes[str(MEMORY_SIZES[0])]["bytes_per_item"]
    large = probes[str(MEMORY_SIZES[-1])]["bytes_per_item"]
    met = bool(large <= small * LINEAR_SLACK)
    if "gather" in memory:
        met = met and large < memory["gather"][str(MEMORY_SIZES[-1])]["bytes_per_item"] / 2
    return met


def render(rows: list[list[str]], text_columns: int = 1) -> str:
    """Rows as aligned columns; the first ``text_columns`` are left-aligned, numbers right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column < text_columns else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": load,
    }


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds per workload, no memory")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write all figures here")
    parser.add_argument("--peer", action="store_true", help=f"also run wove {PEER_VERSION}")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1M-item memory probes")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY",
        help="run only this workload (repeatable; 'memory' for the memory probes)",
    )
    args = parser.parse_args(argv)
    timed = [key for key in args.only if key != "memory"]
    with_memory = not (args.quick or args.no_memory) and (not args.only or "memory" in args.only)

    report: dict[str, Any] = {"machine": machine()}
    engines = {"new": engine_command()}
    if args.peer:
        engines[PEER_VERSION] = peer_command()
    runs: dict[str, dict[str, Any]] = {}
    for label, (command, env) in engines.items():
        if args.only and not timed:
            runs[label] = {"engine": run_json(command, env, "--info"), "results": {}}
        else:
            runs[label] = run_engine(label, command, env, args.quick, timed)
    new = report["new"] = runs["new"]
    peer = report["peer"] = runs.get(PEER_VERSION)
    engine_file = Path(new["engine"]["file"]).resolve()
    if ENGINE_SOURCES[0] not in engine_file.parents:
        print(f"warning: measured wove from {engine_file}, not this checkout", file=sys.stderr)

    memory: dict[str, Any] = {}
    if with_memory:
        command, env = engines["new"]
        memory["new"] = run_memory("new", command, env, "wove")
        memory["gather"] = run_memory("floor", command, env, "gather")
        if args.peer:
            memory[PEER_VERSION] = run_memory(PEER_VERSION, *engines[PEER_VERSION], "wove")
        report["memory"] = memory
    report["machine"]["loadavg_after"] = machine()["loadavg"]

    info = report["machine"]
    print()
    print(
        f"Wove benchmarks, {info['date']}, Python {info['python']}, {info['cpus']} CPUs, "
        f"load {' '.join(f'{x:.2f}' for x in info['loadavg'])}"
    )
    print(f"new engine: {new['engine']['file']} ({new['engine']['version']})")
    rounds = "3 rounds" if args.quick else "7 rounds (5 for latency)"
    print(f"median of {rounds}; µs per task, item or link unless marked ms")
    if new["results"]:
        print()
        print(render(timing_table(new, peer), text_columns=2))
    if peer is not None and peer["results"]:
        print(f"\n{PEER_VERSION}/floor uses the floor measured in the {PEER_VERSION} process.")
    if memory:
        rows, notes = memory_table(memory)
        print("\nmemory: peak RSS growth mapping trivial async items, workers=64")
        print("(gather = asyncio.gather over one task per item, the per-item-task reference)\n")
        print(render(rows))
        for note in notes:
            print(note)
    missed = [result["title"] for result in new["results"].values() if verdict(result) == "NO"]
    if memory and not memory_met(memory, "new"):
        missed.append("memory")
    print(f"\nmissed targets: {', '.join(missed) if missed else 'none'}")

    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the Wove benchmarks and print µs per task against each workload's floor.

    python benchmarks/run.py [--quick] [--json PATH] [--peer] [--no-memory] [--only KEY]

The engine in this checkout is measured in a fresh subprocess of the current interpreter, with
``packages/wove-core/src`` and ``packages/wove-stdio/src`` first on
``PYTHONPATH``; the interpreter must have those distributions installed (editable) so the
``local`` and ``stdio`` executors' entry points are found, as in ``hatch run bench:run``. With
``--peer``, the same workloads also run in a subprocess of a cached virtualenv holding
``wove[dispatch]==2.0.3`` (``benchmarks/.peer-venv``, created on first use), so the tables gain
"2.0.3" columns. Each engine measures its own floors in its own process; ratios are always to the
floor measured in the same run. DESIGN.md §7 holds the targets. ``--only stdio`` runs the
out-of-process (``stdio-*``) workloads only.
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
ENGINE_SOURCES = [ROOT / "packages" / name / "src" for name in ("wove-core", "wove-stdio")]
PEER_VERSION = "2.0.3"
#: The dispatch extra brings cloudpickle, which 2.0.3's stdio executor needs.
PEER_REQUIREMENT = f"wove[dispatch]=={PEER_VERSION}"
#: Workloads whose key starts with this are out of process and get their own table.
STDIO_PREFIX = "stdio-"
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
    """Create ``benchmarks/.peer-venv`` with ``wove[dispatch]==2.0.3`` once; reuse it afterwards.

    A venv made for another requirement (an older one without the dispatch extra) is rebuilt.
    """
    python = peer_python()
    marker = PEER_VENV / "requirement.installed"
    if python.exists() and marker.exists() and marker.read_text().strip() == PEER_REQUIREMENT:
        return python
    print(f"creating {PEER_VENV.relative_to(ROOT)} with {PEER_REQUIREMENT} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", PEER_REQUIREMENT], check=True)
    marker.write_text(f"{PEER_REQUIREMENT}\n")
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
    if result.get("target_kind") == "speedup":
        return f"≥ {target:g}x vs {PEER_VERSION}"
    return f"≤ {target:g} ms" if result["unit"].startswith("ms") else f"≤ {target:g}x"


def speedup(result: dict[str, Any] | None, peer_result: dict[str, Any] | None) -> float | None:
    """How many times faster this engine ran a workload than 2.0.3 (same unit, same work)."""
    if not result or not peer_result or "error" in result or "error" in peer_result:
        return None
    if not result["value"]:
        return None
    return float(peer_result["value"]) / float(result["value"])


def verdict(result: dict[str, Any], peer_result: dict[str, Any] | None = None) -> str:
    """'yes', 'NO' or '—' for one result against its DESIGN §7 target.

    A speed-up target is judged only with the 2.0.3 figure of the same run (``--peer``).
    """
    target = result.get("target")
    if target is None or "error" in result:
        return "—"
    if result.get("target_kind") == "speedup":
        factor = speedup(result, peer_result)
        if factor is None:
            return "—"
        return "yes" if factor >= target else "NO"
    measured = result["value"] if result["floor"] is None else _ratio(result)
    return "yes" if measured is not None and measured <= target else "NO"


def _cell(result: dict[str, Any] | None, unit: str) -> tuple[str, str]:
    if result is None:
        return "", ""
    if "error" in result:
        return "error", ""
    ratio = _ratio(result)
    return _number(result["value"], unit), ("—" if ratio is None else f"{ratio:.2f}x")


def is_stdio(key: str) -> bool:
    return key.startswith(STDIO_PREFIX)


def timing_table(new: dict[str, Any], peer: dict[str, Any] | None) -> list[list[str]]:
    header = ["workload", "unit", "new", "floor", "new/floor", "target", "met"]
    if peer is not None:
        header += [f"{PEER_VERSION}", f"{PEER_VERSION}/floor"]
    rows = [header]
    for key, result in new["results"].items():
        if is_stdio(key):
            continue
        unit = result["unit"]
        value, ratio = _cell(result, unit)
        floor = None if "error" in result else result.get("floor")
        row = [result["title"], unit, value, _number(floor, unit), ratio, _target_text(result)]
        row.append(verdict(result))
        if peer is not None:
            row += list(_cell(peer["results"].get(key), unit))
        rows.append(row)
    return rows


def _per_weave_ms(result: dict[str, Any] | None) -> float | None:
    if not result or "error" in result:
        return None
    return float(result["value"]) * int(result["tasks"]) / 1_000


def _stdio_cells(result: dict[str, Any] | None) -> list[str]:
    """ms per weave, µs per item, floor (µs per item) and the ratio to it."""
    if result is None:
        return ["", "", "", ""]
    if "error" in result:
        return ["error", "", "", ""]
    ratio = _ratio(result)
    return [
        _number(_per_weave_ms(result), "ms"),
        _number(result["value"], "µs") if int(result["tasks"]) > 1 else "—",
        _number(result.get("floor"), "µs"),
        "—" if ratio is None else f"{ratio:.2f}x",
    ]


def _cold_cells(result: dict[str, Any] | None) -> list[str]:
    if result is None or "cold_ms" not in result:
        return ["", "", "", ""]
    return [_number(float(result["cold_ms"]), "ms"), "—", "—", "—"]


def stdio_table(new: dict[str, Any], peer: dict[str, Any] | None) -> list[list[str]]:
    """The out-of-process workloads: per weave and per item, against the echo floor and 2.0.3."""
    header = ["workload", "new ms/weave", "µs/item", "floor µs/item", "new/floor", "target", "met"]
    if peer is not None:
        header += [f"{PEER_VERSION} ms/weave", "µs/item", f"{PEER_VERSION}/floor", "speed-up"]
    rows = [header]
    for key, result in new["results"].items():
        if not is_stdio(key):
            continue
        peer_result = None if peer is None else peer["results"].get(key)
        if "cold_ms" in result:
            row = ["stdio cold start (first weave of the next row)", *_cold_cells(result)]
            row += ["report only", "—"]
            if peer is not None:
                row += [*_cold_cells(peer_result)[:3], ""]
            rows.append(row)
        row = [result["title"], *_stdio_cells(result), _target_text(result)]
        judged = verdict(result, peer_result)
        if judged == "—" and result.get("target_kind") == "speedup" and "error" not in result:
            judged = "needs --peer"
        row.append(judged)
        if peer is not None:
            factor = speedup(result, peer_result)
            row += _stdio_cells(peer_result)[0:2] + _stdio_cells(peer_result)[3:]
            row.append("—" if factor is None else f"{factor:.1f}x")
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
    rounds = "3 rounds" if args.quick else "7 rounds (5 for latency and stdio)"
    print(f"median of {rounds}; µs per task, item or link unless marked ms")
    in_process = [key for key in new["results"] if not is_stdio(key)]
    out_of_process = [key for key in new["results"] if is_stdio(key)]
    if in_process:
        print()
        print(render(timing_table(new, peer), text_columns=2))
    if out_of_process:
        print("\nout of process: stdio environments (floor: bare JSON-lines echo over pipes)\n")
        print(render(stdio_table(new, peer), text_columns=1))
        if peer is not None:
            print(f"speed-up: {PEER_VERSION}'s time / the new engine's, for the same weave.")
        spawned = [
            new["results"][key].get("workers_spawned")
            for key in out_of_process
            if "workers_spawned" in new["results"][key]
        ]
        if spawned:
            print(
                f"worker processes the new engine spawned during the timed weaves: {sum(spawned)}"
                f" (target: no process spawn per weave)"
            )
    if peer is not None and peer["results"]:
        print(f"\n{PEER_VERSION}/floor uses the floor measured in the {PEER_VERSION} process.")
    if memory:
        rows, notes = memory_table(memory)
        print("\nmemory: peak RSS growth mapping trivial async items, workers=64")
        print("(gather = asyncio.gather over one task per item, the per-item-task reference)\n")
        print(render(rows))
        for note in notes:
            print(note)
    verdicts = {
        key: verdict(result, None if peer is None else peer["results"].get(key))
        for key, result in new["results"].items()
    }
    report["verdicts"] = verdicts
    if peer is not None:
        report["speedups"] = {
            key: speedup(result, peer["results"].get(key)) for key, result in new["results"].items()
        }
    missed = [new["results"][key]["title"] for key, met in verdicts.items() if met == "NO"]
    if memory and not memory_met(memory, "new"):
        missed.append("memory")
    print(f"\nmissed targets: {', '.join(missed) if missed else 'none'}")
    unjudged = [
        new["results"][key]["title"]
        for key, met in verdicts.items()
        if met == "—" and new["results"][key].get("target_kind") == "speedup"
    ]
    if unjudged:
        print(f"not judged without --peer: {', '.join(unjudged)}")

    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

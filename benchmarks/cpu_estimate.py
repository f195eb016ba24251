"""The CPU time estimates against the run they were made for.

A CPU run keeps its probe's step timings in ``logs/cpu_estimate.json`` and every epoch's seconds as
``time/epoch_seconds`` in ``logs/metrics.csv``. ``record`` turns one finished run into a small JSON
file (what ``tests/training/recorded_runs/`` holds); ``check`` prints, for each recording, the
estimate before training and the re-estimates after the third epoch of each stage next to what the
run then took.

    python -m benchmarks.cpu_estimate record <run dir> <out.json> --note "idle, 28 px"
    python -m benchmarks.cpu_estimate check tests/training/recorded_runs/*.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from medviz.runtime import format_duration
from medviz.training.cpu_estimate import remaining_seconds, timing_from_record, training_seconds


def record(run_dir: Path, out: Path, note: str) -> None:
    estimate = json.loads((run_dir / "logs" / "cpu_estimate.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    by_epoch: dict[int, float] = {}
    with open(run_dir / "logs" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("time/epoch_seconds"):
                by_epoch[int(row["epoch"])] = float(row["time/epoch_seconds"])
    epochs = sum(estimate["stage_epochs"])
    if sorted(by_epoch) != list(range(epochs)):
        raise SystemExit(f"{run_dir}: epoch times for {len(by_epoch)} of {epochs} epochs (a resumed run?)")
    recording = {
        "note": note,
        "image_size": metrics["image_size"],
        "n_images": metrics["n_images"],
        "train_minutes": metrics["train_minutes"],
        "estimate": estimate,
        "epoch_seconds": [round(by_epoch[e], 4) for e in range(epochs)],
    }
    out.write_text(json.dumps(recording, indent=1) + "\n")
    print(f"{out}: {epochs} epochs, {sum(recording['epoch_seconds']) / 60:.1f} min of epochs")


def check(paths: list[Path]) -> None:
    for path in paths:
        run = json.loads(path.read_text())
        estimate, seconds = run["estimate"], run["epoch_seconds"]
        timing = timing_from_record(estimate)
        stage_epochs = estimate["stage_epochs"]
        low, typical, high = training_seconds(timing, estimate["images_per_epoch"], stage_epochs)
        actual = sum(seconds)
        print(f"{path.name} ({run['note']}): epochs took {format_duration(actual)}")
        print(f"  before training: {format_duration(typical)} ({format_duration(low)} to {format_duration(high)})")
        start = 0
        for epochs in stage_epochs:
            at = start + 3
            if epochs >= 3 and at < len(seconds):
                low, typical, high = remaining_seconds(timing, estimate["images_per_epoch"], stage_epochs, seconds[:at])
                left = sum(seconds[at:])
                print(
                    f"  after epoch {at}: {format_duration(typical)} left ({format_duration(low)} to "
                    f"{format_duration(high)}); took {format_duration(left)}"
                )
            start += epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="keep one finished CPU run's timings")
    rec.add_argument("run_dir", type=Path)
    rec.add_argument("out", type=Path)
    rec.add_argument("--note", required=True, help="how the machine was (idle, loaded by ...) and the image size")
    chk = commands.add_parser("check", help="estimates against the recorded runs")
    chk.add_argument("paths", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "record":
        record(args.run_dir, args.out, args.note)
    else:
        check(args.paths)


if __name__ == "__main__":
    main()

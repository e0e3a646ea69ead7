"""For tests/playground_check/run: is HR of a config open for the next minutes? If not, write
a copy of the config with HR open every day (and no holidays) and print its path.

    python hr_open.py CONFIG OUT_DIR [MINUTES]

Prints nothing when HR is open now and for the next MINUTES (default 15), by the bot's own
opening-hours code (pipelines.hours). Otherwise writes OUT_DIR/config/<name>.yaml, links its
`cards` and `kb` folders to the original's (template paths are relative to the config), and
prints that path. Run with the repo's root on sys.path (the bot's venv).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from pipelines.loader import load_config

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def hr_open(config_path: Path, minutes: int) -> bool:
    config, _ = load_config(config_path)
    schedule = config.tenant("hr").schedule()
    now = datetime.now(UTC)
    return schedule is None or all(
        schedule.is_open(now + timedelta(minutes=m)) for m in range(0, minutes + 1, 5)
    )


def always_open_copy(config_path: Path, out_dir: Path) -> Path:
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for tenant in raw["tenants"]:
        if tenant["id"] == "hr":
            tenant["opening_hours"] = {day: ["00:00-24:00"] for day in DAYS}
            tenant["holidays"] = []
    folder = out_dir / "config"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("cards", "kb"):
        link = folder / name
        if not link.exists():
            link.symlink_to(config_path.parent / name)
    copy = folder / config_path.name
    copy.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    load_config(copy)  # still valid
    return copy


def main() -> None:
    config_path = Path(sys.argv[1]).resolve()
    out_dir = Path(sys.argv[2]).resolve()
    minutes = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    if not hr_open(config_path, minutes):
        print(always_open_copy(config_path, out_dir))


if __name__ == "__main__":
    main()

"""scripts/bench-central: a real centre behind its own broker, fed alert lives by real station links."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from xltools.bench.central import main


def test_every_life_is_stored_whole_and_its_cost_is_read(capsys) -> None:
    assert main(["--rates", "4", "--seconds", "3", "--stations", "2", "--cameras", "2", "--keep"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    keys = dict(kv.split("=") for kv in out[-1].removeprefix("RESULT ").split())
    assert keys["kept_up"] == "1" and keys["rate"] == "4"
    assert 0.0 < float(keys["central_ms_per_alert"]) < 1000.0 and float(keys["central_cpu_pct"]) > 0.0
    work = Path(next(line for line in out if line.startswith("work ")).removeprefix("work "))
    with sqlite3.connect(work / "central.db") as db:
        alerts = db.execute("SELECT snapshot_path, clip_offset_s FROM alerts").fetchall()
        grouped = db.execute("SELECT count(*) FROM incident_alerts").fetchone()[0]
    # Warm-up (2/s for 5 s) and window (4/s for 3 s): every life with its end and its clip.
    assert len(alerts) >= 20 and grouped == len(alerts)
    assert all(offset == 5.0 for _, offset in alerts)
    assert all((work / "media" / p).with_suffix(".mp4").is_file() for p, _ in alerts)

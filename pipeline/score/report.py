"""End of a scoring run: the committed units' markers summed, rejects gathered, the alert queue written.

Rebuilt from the committed parts on every run (also a resumed run, or one with nothing left to do), so
the summary always describes the whole output folder: read = scored + duplicates + rejected.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from pipeline.config import config_to_dict
from pipeline.score.config import ScoreConfig
from pipeline.score.ledger import Ledger, unit_name

log = logging.getLogger(__name__)

COUNTS = ("read", "scored", "duplicates", "rejected", "flagged", "chunked", "spared")


def finish_run(cfg: ScoreConfig, ledger: Ledger, units: list[dict], markers: dict[int, dict], data_version: str,
               model_data_version: str | None, skipped: int, seconds: float) -> dict:
    """Write rejects.jsonl, alerts.html, alerts.csv and summary.json from the committed units; return the summary.

    Raises RuntimeError when a planned unit has no marker (the run did not finish) or the counts of a unit
    do not reconcile.
    """
    from pipeline.artifacts import provenance
    from pipeline.score.alerts import write_alerts

    missing = [u["index"] for u in units if u["index"] not in markers]
    if missing:
        raise RuntimeError(f"{len(missing)} unit(s) not committed (first: {missing[:5]}); run again to resume")
    totals, reasons = Counter(), Counter()
    for marker in markers.values():
        if marker["read"] != marker["scored"] + marker["duplicates"] + marker["rejected"]:
            raise RuntimeError(f"unit {marker['unit']} does not reconcile: {marker}")
        totals.update({k: marker.get(k, 0) for k in COUNTS})  # `spared` is absent from older markers
        reasons.update(marker["rejects_by_reason"])
    _gather_rejects(ledger, units)
    alerts = write_alerts(ledger, cfg.alerts_page_limit, data_version)
    summary = {**{k: int(totals[k]) for k in COUNTS}, "threshold": cfg.threshold,
               "rejects_by_reason": dict(sorted(reasons.items())),
               "units": {"total": len(units), "skipped_as_committed": skipped, "scored_this_run": len(units) - skipped},
               "alerts": alerts, "data_version": data_version, "model_data_version": model_data_version,
               "model_versions": sorted(_model_versions(ledger)),
               "seconds": round(seconds, 1), "config": config_to_dict(cfg), **provenance()}
    ledger.write_bytes("summary.json", json.dumps(summary, indent=2, default=str).encode())
    ledger.finish()
    return summary


def _gather_rejects(ledger: Ledger, units: list[dict]) -> None:
    """rejects.jsonl: every unit's rejects in unit order (streamed; an empty file when there are none)."""
    have = set(ledger.listing("rejects"))
    tmp = ".rejects.jsonl.tmp"
    with ledger.fs.open_output_stream(ledger.path(tmp)) as out:
        for u in units:
            name = f"{unit_name(u['index'])}.jsonl"
            if name in have:
                with ledger.fs.open_input_stream(ledger.path("rejects", name)) as f:
                    while chunk := f.read(1 << 20):
                        out.write(chunk)
    ledger.move(tmp, "rejects.jsonl")


def _model_versions(ledger: Ledger) -> set[str]:
    import pyarrow.dataset as pads

    if not ledger.listing("scores"):
        return set()
    found: set[str] = set()
    for batch in pads.dataset(ledger.path("scores"), format="parquet", filesystem=ledger.fs).to_batches(
            columns=["model_version"]):  # streamed: one column, batch by batch
        found.update(v for v in batch.column(0).unique().to_pylist() if v)
    return found

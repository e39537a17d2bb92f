"""A PNG timeline of a fault run, drawn from its history alone: throughput (acknowledged
messages per second), lag (messages the source had made available but not yet
acknowledged), reads by outcome, every fault as a shaded span, every mode change as a line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAULT_COLOURS = {
    "client-kill": "tab:red",
    "client-stop": "tab:orange",
    "mysql-kill": "tab:purple",
    "mongo-kill": "tab:green",
    "source-pause": "tab:gray",
    "mode-set-kill": "tab:brown",
    "backfill-kill": "tab:pink",
}
BIN_S = 1.0


def _throughput(samples: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    last_t, last_acked = None, 0
    for s in samples:
        if last_t is not None and s["t"] - last_t >= BIN_S:
            xs.append(s["t"])
            ys.append((s["acked"] - last_acked) / (s["t"] - last_t))
            last_t, last_acked = s["t"], s["acked"]
        elif last_t is None:
            last_t, last_acked = s["t"], s["acked"]
    return xs, ys


def _spans(events: list[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    open_: dict[tuple[str, str], float] = {}
    spans = []
    end_of_run = max((e["t"] for e in events), default=0.0)
    for e in sorted((e for e in events if e["type"] == "fault"), key=lambda e: e["t"]):
        ident = (e["fault"], e.get("target", ""))
        if e["phase"] == "start":
            open_[ident] = e["t"]
        elif ident in open_:
            spans.append((*ident, open_.pop(ident), e["t"]))
    spans += [(*ident, t, end_of_run) for ident, t in open_.items()]
    return spans


def draw(events: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    samples = [e for e in events if e["type"] == "sample"]
    reads = [e for e in events if e["type"] == "read"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, sharex=True, figsize=(13, 8))
    xs, ys = _throughput(samples)
    ax1.plot(xs, ys, color="tab:blue", lw=1)
    ax1.set_ylabel("acked msg/s")
    ax2.plot(
        [s["t"] for s in samples], [max(0, s["available"] - s["acked"]) for s in samples], lw=1
    )
    ax2.set_ylabel("lag (messages)")
    ok = [r["t"] for r in reads if r["status"] in (200, 404)]
    bad = [r["t"] for r in reads if r["status"] not in (200, 404)]
    ax3.hist(
        [ok, bad], bins=60, stacked=True, color=["tab:cyan", "tab:red"], label=["ok", "failed"]
    )
    ax3.set_ylabel("reads")
    ax3.legend(loc="upper right", fontsize=7)
    ax3.set_xlabel("seconds since the run began")
    seen: dict[str, Any] = {}
    for kind, target, a, b in _spans(events):
        colour = FAULT_COLOURS.get(kind, "black")
        for ax in (ax1, ax2, ax3):
            ax.axvspan(a, max(b, a + 0.2), color=colour, alpha=0.18, lw=0)
        seen.setdefault(kind, Patch(color=colour, alpha=0.4, label=kind))
        ax1.annotate(target, (a, 0), fontsize=6, rotation=90, va="bottom", color=colour)
    for e in events:
        if e["type"] == "mode" and e["phase"] == "ok":
            for ax in (ax1, ax2, ax3):
                ax.axvline(e["t"], color="black", lw=0.8, ls="--")
            ax2.annotate(e["target"], (e["t"], 0), fontsize=7, rotation=90, va="bottom")
    if seen:
        ax1.legend(handles=list(seen.values()), loc="upper right", fontsize=7, ncol=4)
    ax1.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

#!/usr/bin/env python3
"""Scores detection episodes against a lab truth file (bench/detect.sh).

usage: detect_eval.py TRUTH.json EPISODES.json  -> one JSON line

A campaign counts as detected when an episode of its kind covers a bucket
no later than two buckets after the bucket of its onset: a port campaign by
an episode whose ports meet the campaign's, a backscatter burst by a
`backscatter` episode. Its delay is the episode's first bucket minus the
onset's bucket (0 when the episode was already open). The research sweep
must raise nothing: an episode matched to no other campaign that starts in
the sweep's twelve hours, or whose example sources include one of its hosts,
counts against it (and as a false alert).
Every episode matched to no campaign is a false alert; episodes that meet a
campaign's ports after its onset but too late are counted apart as late.
"""
import json
import sys

truth = json.load(open(sys.argv[1]))
eps = json.load(open(sys.argv[2]))
BUCKET = 3600
days = (truth["last_ts_us"] - truth["first_ts_us"]) / 86400e6
research = next((c for c in truth["campaigns"] if c["kind"] == "research_sweep"), None)
research_hosts = set(research["addresses"]) if research else set()
matched, late = set(), set()
result = []


def ports_of(e):
    return {int(p) for p in e["ports"].split(",") if p}


for c in truth["campaigns"]:
    if c["kind"] == "research_sweep":
        continue
    onset_b = c["onset_s"] // BUCKET * BUCKET
    best = None
    for i, e in enumerate(eps):
        fb, lb = e["first_bucket_ns"] // 10**9, e["last_bucket_ns"] // 10**9
        if c["kind"] == "backscatter":
            ok = e["key"] == "backscatter"
        else:
            ok = bool(ports_of(e) & set(c["ports"])) and e["key"] != "backscatter"
        if not ok or lb < onset_b:
            continue
        if fb <= onset_b + 2 * BUCKET:
            delay = max(0, fb - onset_b) // BUCKET
            if best is None or delay < best[1]:
                best = (i, delay)
        elif c["kind"] != "backscatter":
            late.add(i)
    if best:
        matched.add(best[0])
    result.append({"kind": c["kind"], "detected": best is not None,
                   "delay": best[1] if best else None})

late -= matched
research_raised = 0
for i, e in enumerate(eps):
    if i in matched or i in late:
        continue
    examples = {x["ip"] for x in (e.get("latest") or {}).get("examples", [])}
    fb = e["first_bucket_ns"] // 10**9
    in_sweep = research is not None and \
        research["onset_s"] // BUCKET * BUCKET <= fb < research["onset_s"] + 13 * BUCKET
    if examples & research_hosts or in_sweep:
        research_raised += 1
false = [e for i, e in enumerate(eps) if i not in matched and i not in late]
print(json.dumps({
    "campaigns": result,
    "false": len(false),
    "late": len(late),
    "days": round(days, 3),
    "research_raised": research_raised,
    "false_detail": [[e["first_bucket"], e["key"], e["kind"]] for e in false],
}))

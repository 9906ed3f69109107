#!/usr/bin/python3
"""Compares two bench/run-all.sh results (bench/results/latest.json files):
each target ratio, then every figure that moved more than its own
run-to-run spread (the larger of the two runs' max − min), for the better
or the worse. Use it before and after a performance change, and put both
tables in the commit message or notes.

    bench/compare.py OLD.json NEW.json

Exit status 0; 1 when a target ratio got worse beyond its spread."""
import json
import sys


def fmt(x):
    if x is None:
        return "n/a"
    a = abs(x)
    return ("{:,.0f}".format(x) if a >= 1000 else "%.0f" % x if a >= 100 else "%.1f" % x
            if a >= 10 else "%.3g" % x)


def moved(old, new, higher):
    """'better', 'worse' or None when the change is within the spread."""
    if old.get("median") is None or new.get("median") is None:
        return None
    spread = max(old["max"] - old["min"], new["max"] - new["min"])
    delta = new["median"] - old["median"]
    if abs(delta) <= spread:
        return None
    return "better" if (delta > 0) == higher else "worse"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py OLD.json NEW.json")
    old, new = (json.load(open(p)) for p in sys.argv[1:])
    print("old: %s, %s (%s); new: %s, %s (%s)\n" % (old["date"], old["command"], old["machine"],
                                                      new["date"], new["command"],
                                                      new["machine"]))
    worse = 0
    print("| target | old median [min – max] | new median [min – max] | moved |")
    print("|---|---|---|---|")
    olds = {r["name"]: r for r in old["ratios"]}
    for r in new["ratios"]:
        o = olds.get(r["name"], {"median": None})
        m = moved(o, r, r["op"] == ">=")
        worse += m == "worse"
        cell = lambda x: ("%s [%s – %s]" % (fmt(x["median"]), fmt(x["min"]), fmt(x["max"]))
                          if x.get("median") is not None else "n/a")
        print("| %s | %s | %s | %s |" % (r["name"], cell(o), cell(r), m or "within spread"))
    print("\n| figure | old median | new median | change | moved |")
    print("|---|---|---|---|---|")
    oldf = {f["key"]: f for f in old["figures"]}
    shown = 0
    for f in new["figures"]:
        o = oldf.get(f["key"])
        m = moved(o, f, f["higher_is_better"]) if o else None
        if not m:
            continue
        shown += 1
        change = "%+.1f%%" % (100 * (f["median"] / o["median"] - 1)) if o["median"] else "n/a"
        print("| `%s` | %s | %s | %s | %s |" % (f["key"], fmt(o["median"]), fmt(f["median"]),
                                                 change, m))
    if not shown:
        print("| (every figure within its spread) | | | | |")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Does cost grow linearly in articles? Wall time, CPU time and peak memory per stage at 1x, 4x, 16x a day.

A "day" is one real daily partition: the GDELT replay corpus's articles for ``--day`` (what
tools/gdelt_replay.py serves for the default ``sourcecountry:SW`` / swedish+english query),
put through the fetcher's own normalisation and dedupe (news_signals.daily.gdelt) and the fetch
stage's schema. ``k``x is ``k`` times that many rows: real articles of the neighbouring replay
days moved onto ``--day`` (time of day kept, their own urls and article ids), and, once the
corpus runs out, copies of real rows with a distinct url and article id. No text is made up.

Each (stage, size) runs in a fresh subprocess with a throw-away NEWS_SIGNALS_HOME and the local
feature store; everything a stage needs (inputs, earlier stages, the Great Expectations import)
is done before the clock starts. Then the real stage function the DAGs call is timed:

    label     news_signals.daily.pipeline.label_stage (keyword labeller)
    validate  news_signals.daily.pipeline.validate_stage (the GX suite of daily/validation.py)
    classify  news_signals.features.pipeline.classify_stage ("keywords": no model is promoted)
    headlines news_signals.features.pipeline.write_headlines_stage (upsert into a store already
              holding the previous day at the same size, so the merge path runs)
    vibes     news_signals.features.pipeline.write_vibes_stage

Peak MiB is the child's peak RSS during the stage (VmHWM, reset just before the stage via
/proc/self/clear_refs; where that is unavailable, ru_maxrss of the whole child); "stage MiB" is
that peak minus the RSS at the start of the stage. The growth exponent is
log(t_last / t_first) / log(size_last / size_first) on CPU seconds (1.0 = linear); fixed costs
pull it below 1, so the 4x->16x exponent is shown as well. Stages above 1.15 are flagged.

    python bench/bench_scaling.py [--sizes 1,4,16] [--day 2026-11-15] [--day-rows N]
                                  [--stages label,validate,...] [--profile STAGE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "include"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

STAGES = ("label", "validate", "classify", "headlines", "vibes")
NEEDS_GX = {"validate", "headlines", "vibes"}
FLAG_ABOVE = 1.15
DEFAULT_DAY = "2026-11-15"  # inside the replay corpus's default 30 days


# ---- inputs (parent) ------------------------------------------------------------------------
def replay_days(day: str, need: int | None = None) -> list[tuple[str, object]]:
    """(iso day, normalised articles) of replay days, ``day`` first, then the days after it (wrapping),
    until ``need`` rows are in (all days when None)."""
    import pandas as pd
    from news_signals.core.config import Settings
    from news_signals.corpus.loader import DEFAULT_DAYS, DEFAULT_START
    from news_signals.daily.gdelt import normalise_articles as fetcher_normalise
    from news_signals.daily.validation import country_values, language_values

    from tools.gdelt_replay import _default_index

    settings = Settings()
    countries, languages = set(country_values(settings.countries)), set(language_values(settings.languages))
    by_day: dict[date, list[dict]] = {}
    for a in _default_index(DEFAULT_START, DEFAULT_DAYS):
        if a.payload["sourcecountry"] in countries and a.payload["language"] in languages:
            by_day.setdefault(a.seen.date(), []).append(a.payload)
    target = date.fromisoformat(day)
    if target not in by_day:
        first, last = min(by_day), max(by_day)
        raise SystemExit(f"--day {day} is outside the replay corpus ({first} .. {last})")
    days = sorted(by_day)
    i = days.index(target)
    out, rows = [], 0
    for d in days[i:] + days[:i]:
        out.append((d.isoformat(), fetcher_normalise(pd.DataFrame(by_day[d]), d)))
        rows += len(out[-1][1])
        if need is not None and rows >= need:
            break
    return out


def build_inputs(
    day: str, sizes: list[int], day_rows: int | None, folder: Path
) -> tuple[int, dict[int, Path]]:
    """Write ``<k>.parquet`` (k x a day, all on ``day``) and ``<k>-prev.parquet`` (the same, the day before)."""
    import pandas as pd
    from news_signals.core.text import article_id
    from news_signals.daily.pipeline import normalise_articles

    days = replay_days(day, None if day_rows is None else day_rows * max(sizes))
    real_day = len(days[0][1])
    per_day = day_rows or real_day
    start = pd.Timestamp(day, tz="UTC")
    moved = []
    for iso, df in days:  # real articles of other days, moved onto ``day`` (time of day kept)
        df = df.copy()
        df["seendate"] = start + (df["seendate"] - pd.Timestamp(iso, tz="UTC"))
        moved.append(df)
    pool = pd.concat(moved, ignore_index=True)
    need = per_day * max(sizes)
    copies = [pool]
    for j in range(1, math.ceil(need / len(pool))):  # the corpus ran out: real rows, new url and id
        extra = pool.copy()
        extra["url"] = extra["url"] + f"#copy{j}"
        copies.append(extra)
    pool = pd.concat(copies, ignore_index=True)
    pool["article_id"] = [article_id(u, t) for u, t in zip(pool["url"], pool["title"], strict=True)]
    paths = {}
    for k in sizes:
        rows = normalise_articles(pool.head(per_day * k))  # the fetch stage's schema
        paths[k] = folder / f"{k}.parquet"
        rows.to_parquet(paths[k], index=False)
        prev = rows.copy()  # the previous day at the same size: what the feature store already holds
        prev["seendate"] = prev["seendate"] - pd.Timedelta(days=1)
        prev["url"] = prev["url"] + "?prev"
        prev["article_id"] = [article_id(u, t) for u, t in zip(prev["url"], prev["title"], strict=True)]
        prev.to_parquet(folder / f"{k}-prev.parquet", index=False)
    return real_day, paths


# ---- one measurement (child) ----------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+)", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


def child(args: argparse.Namespace) -> int:
    import gc
    import logging
    import resource

    os.environ["NEWS_SIGNALS_HOME"] = args.home
    os.environ["NEWS_SIGNALS_FEATURE_STORE"] = "local"
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.disable(logging.WARNING)
    import pandas as pd
    from news_signals.core.config import Settings
    from news_signals.core.storage import Storage
    from news_signals.daily import pipeline as daily
    from news_signals.features import pipeline as features
    from news_signals.features.store.local import LocalFeatureStore

    if args.child in NEEDS_GX:
        import great_expectations  # noqa: F401  (a fixed import cost of seconds: not the stage's)

    settings = Settings.from_env()
    storage = Storage(settings.home)
    store = LocalFeatureStore(storage)
    day = args.day
    articles = pd.read_parquet(args.input)
    n = len(articles)

    def staged(day_iso: str, df: pd.DataFrame) -> dict:
        run_key = f"date={day_iso}"
        path = storage.write_parquet(f"{daily.staging_dir(storage, run_key)}/{daily.RAW_FILE}", df)
        return {"day": day_iso, "run_key": run_key, "staged": path, "rows": len(df)}

    def published(fetched: dict) -> None:
        labelled = daily.label_stage(fetched, settings=settings)
        # validation is measured on its own; here the batch goes on as the DAG does once it passed
        daily.publish_stage({**labelled, "validated": True}, settings=settings)

    fetched = staged(day, articles)
    if args.child in ("headlines", "vibes"):  # the store already holds the previous day, same size
        prev = pd.read_parquet(args.prev)
        prev_day = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
        published(staged(prev_day, prev))
        features.run_feature_pipeline(prev_day, "keywords", storage=storage, store=store)

    if args.child == "label":
        run = lambda: daily.label_stage(fetched, settings=settings)  # noqa: E731
    elif args.child == "validate":
        labelled = daily.label_stage(fetched, settings=settings)
        run = lambda: daily.validate_stage(labelled, settings=settings)  # noqa: E731
    else:
        published(fetched)
        resolved = features.resolve_stage([day], "keywords", storage=storage)
        if args.child == "classify":
            run = lambda: features.classify_stage(resolved, storage=storage)  # noqa: E731
        else:
            classified = features.classify_stage(resolved, storage=storage)
            if args.child == "headlines":
                run = lambda: features.write_headlines_stage(classified, storage, store)  # noqa: E731
            else:
                features.write_headlines_stage(classified, storage, store)
                run = lambda: features.write_vibes_stage(classified, storage, store)  # noqa: E731

    gc.collect()
    base_kib = _status_kib("VmRSS") or 0
    hwm = _reset_peak() and _status_kib("VmHWM") is not None
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    peak_kib = _status_kib("VmHWM") if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {
        "stage": args.child,
        "rows": n,
        "wall": wall,
        "cpu": cpu,
        "peak_mib": (peak_kib or 0) / 1024,
        "stage_mib": max(0, (peak_kib or 0) - base_kib) / 1024,
        "peak_source": "VmHWM" if hwm else "ru_maxrss",
    }
    if args.child == "validate":
        out["expectations"] = result["expectations"]
    print(json.dumps(out, default=str))
    return 0


def measure(stage: str, k: int, inputs: Path, day: str, profile: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-scaling-{stage}-{k}x-") as home:
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--child", stage, "--day", day,
            "--input", str(inputs / f"{k}.parquet"), "--prev", str(inputs / f"{k}-prev.parquet"),
            "--home", home,
        ]  # fmt: skip
        if profile:
            cmd += ["--profile", profile]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "include")])}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{stage} at {k}x failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- report (parent) ------------------------------------------------------------------------
def exponent(a: float, b: float, size_a: int, size_b: int) -> float:
    if size_b == size_a or a <= 0 or b <= 0:
        return float("nan")
    return math.log(b / a) / math.log(size_b / size_a)


def report(results: dict[str, dict[int, dict]], sizes: list[int]) -> tuple[float, str]:
    first, last = sizes[0], sizes[-1]
    print("| stage | size | rows | wall s | CPU s | peak MiB | stage MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stage, by_size in results.items():
        for k in sizes:
            r = by_size[k]
            print(
                f"| {stage} | {k}x | {r['rows']:,} | {r['wall']:.3f} | {r['cpu']:.3f} | "
                f"{r['peak_mib']:.0f} | {r['stage_mib']:.1f} |"
            )
    if first == last:
        return float("-inf"), "-"
    print()
    mid = sizes[-2] if len(sizes) > 2 else None
    tail = f" | CPU exp {mid}x->{last}x" if mid else ""
    print(f"| stage | CPU exp {first}x->{last}x | wall exp {first}x->{last}x{tail} | stage MiB exp | |")
    print("|---|---:|---:|" + ("---:|" if mid else "") + "---:|---|")
    worst, worst_stage = float("-inf"), "-"
    for stage, by_size in results.items():
        a, b = by_size[first], by_size[last]
        cpu_exp = exponent(a["cpu"], b["cpu"], first, last)
        wall_exp = exponent(a["wall"], b["wall"], first, last)
        mem_exp = exponent(a["stage_mib"], b["stage_mib"], first, last)
        cols = [f"{cpu_exp:.2f}", f"{wall_exp:.2f}"]
        if mid:
            cols.append(f"{exponent(by_size[mid]['cpu'], b['cpu'], mid, last):.2f}")
        cols.append(f"{mem_exp:.2f}" if not math.isnan(mem_exp) else "-")
        flag = "FASTER THAN LINEAR" if cpu_exp > FLAG_ABOVE else ""
        print(f"| {stage} | " + " | ".join(cols) + f" | {flag} |")
        if not math.isnan(cpu_exp) and cpu_exp > worst:
            worst, worst_stage = cpu_exp, stage
    return worst, worst_stage


def print_profile(path: str, top: int = 25) -> None:
    import pstats

    stats = pstats.Stats(path, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="multiples of a day's articles (default 1,4,16)")
    parser.add_argument("--day", default=DEFAULT_DAY, help="the replay day whose partition is '1x'")
    parser.add_argument(
        "--day-rows", type=int, default=None, help="rows in one day (default: the real partition's size)"
    )
    parser.add_argument(
        "--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}"
    )
    parser.add_argument("--profile", metavar="STAGE", help="also cProfile STAGE at the largest size")
    # internal: one measurement in a fresh process
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--prev", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    if not sizes or sizes[0] < 1:
        parser.error("--sizes must be positive integers")
    if args.day_rows is not None and args.day_rows < 1:
        parser.error("--day-rows must be >= 1")
    if args.profile and args.profile not in STAGES:
        parser.error(f"--profile takes one of {', '.join(STAGES)}")

    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-inputs-") as folder:
        real_day, _ = build_inputs(args.day, sizes, args.day_rows, Path(folder))
        per_day = args.day_rows or real_day
        print(
            f"one day = {per_day:,} articles (the replay partition for {args.day} has {real_day:,}); "
            f"sizes {', '.join(f'{k}x' for k in sizes)}; one fresh process per stage and size"
        )
        print()
        results: dict[str, dict[int, dict]] = {}
        for stage in stages:
            results[stage] = {k: measure(stage, k, Path(folder), args.day) for k in sizes}
        if args.profile:
            prof = str(Path(folder) / "profile.out")
            measure(args.profile, sizes[-1], Path(folder), args.day, profile=prof)
        worst, worst_stage = report(results, sizes)
        sources = {r["peak_source"] for by in results.values() for r in by.values()}
        print()
        print(f"peak memory from {', '.join(sorted(sources))}; flagged above exponent {FLAG_ABOVE}")
        if args.profile:
            print(f"\ncProfile of {args.profile} at {sizes[-1]}x (by own time):")
            print_profile(prof)
    if worst == float("-inf"):
        print("scaling: worst exponent n/a (give two sizes or more)")
    else:
        print(f"scaling: worst exponent {worst:.2f} ({worst_stage})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

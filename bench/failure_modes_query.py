"""The `failure_modes` saved query over a large warehouse: 1 000 000 synthetic generations.

Builds a real warehouse file (lorascope's migrations and views) holding RUNS runs x 2 variants
x prompts generations, about 40 % of them with one or two failure modes, then times
`lorascope sql --saved failure_modes` the way the CLI runs it (open read-only, query, fetch).
Target: <= 1 s.

    python bench/failure_modes_query.py [--generations 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lorascope import warehouse

RUNS = 10
MODES = ["empty", "truncated", "repetition", "template_leak", "user_turn_continuation",
         "refusal", "prompt_echo", "language_drift", "format_violation"]
CATEGORIES = ["science", "trivia", "ifeval:keywords", "ifeval:length_constraints",
              "ifeval:detectable_format", "ifeval:change_case", "ifeval:punctuation"]


def build(path: Path, generations: int) -> dict[str, int]:
    prompts_per_run = generations // (RUNS * 2)
    with warehouse.connect(path) as con:
        con.execute(f"""
            insert into runs (run_id, name, status, started_at)
            select 'run-' || r, 'bench', 'completed', timestamp '2026-01-01' + to_days(r::int)
            from range({RUNS}) t(r)""")
        con.execute(f"""
            insert into prompts (run_id, prompt_id, domain, category, messages)
            select 'run-' || r, 'p' || p, if(p % 3 = 0, 'out_of_domain', 'in_domain'),
                   {CATEGORIES}[1 + p % {len(CATEGORIES)}], '[]'
            from range({RUNS}) a(r), range({prompts_per_run}) b(p)""")
        con.execute(f"""
            insert into generations (run_id, variant, prompt_id, output_text, output_tokens,
                                     finish_reason, latency_seconds)
            select 'run-' || r, v, 'p' || p, 'output ' || p, 48,
                   if(hash(r, v, p) % 5 = 0, 'length', 'stop'), 0.5
            from range({RUNS}) a(r), (values ('base'), ('tuned')) c(v),
                 range({prompts_per_run}) b(p)""")
        # 40 % of generations show a mode; half of those a second one.
        con.execute(f"""
            insert or ignore into generation_failures
            select run_id, variant, prompt_id, {MODES}[1 + (h + k) % {len(MODES)}],
                   if((h + k) % {len(MODES)} = {len(MODES) - 1},
                      'punctuation:no_comma', ''), 'evidence span'
            from (select *, (hash(run_id, variant, prompt_id) % 1000003)::bigint as h
                  from generations) g,
                 range(2) t(k)
            where h % 10 < 4 and (k = 0 or h % 10 < 2)""")
        counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0]
                  for t in ("generations", "generation_failures", "prompts")}
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sql = warehouse.saved_query("failure_modes")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "warehouse.duckdb"
        tic = time.perf_counter()
        counts = build(path, args.generations)
        print(f"built in {time.perf_counter() - tic:.1f} s: "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
        seconds, rows = [], []
        for _ in range(args.repeats):
            tic = time.perf_counter()
            _, rows = warehouse.query(path, sql)
            seconds.append(time.perf_counter() - tic)
    median = statistics.median(seconds)
    print(f"{'query':<26}{'rows out':>9}{'median s':>10}{'min s':>8}{'target s':>10}{'ratio':>7}")
    print(f"{'saved failure_modes':<26}{len(rows):>9}{median:>10.3f}{min(seconds):>8.3f}"
          f"{1.0:>10.1f}{median / 1.0:>7.2f}")


if __name__ == "__main__":
    main()

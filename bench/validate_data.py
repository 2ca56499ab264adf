"""Data preparation + validation throughput on 100 000 synthetic chat rows. Target: ≤ 30 s.

Generates the rows (varied lengths, some system turns and multi-turn chats, a few exact
and near duplicates), then times each step the flow runs before training: read the JSONL,
deduplicate and split, write the prepared files, reload them, build the validation frame
(the chat template applied and tokenized with tiny-mistral's real Mistral tokenizer) and
run the Great Expectations suite. The last table compares batched tokenization with one
`apply_chat_template` call per row (the straightforward way, timed on a sample).

    python bench/validate_data.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ["physics", "cooking", "history", "python", "music", "gardening", "chess", "finance"]
WORDS = """the a of to and in is it that for on with as was at by this be from or an are not
energy heat water sugar empire code loop note chord seed soil king pawn rate risk first then
next because however therefore example usually often rarely""".split()  # noqa: SIM905


def synthetic_rows(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60)))
        messages = [{"role": "user", "content": f"Question {i} about {topic}: why {answer[:40]}?"},
                    {"role": "assistant", "content": answer.capitalize() + "."}]
        if i % 5 == 0:
            messages.insert(0, {"role": "system", "content": f"You are a {topic} tutor."})
        if i % 7 == 0:
            messages += [{"role": "user", "content": "Can you give an example?"},
                         {"role": "assistant", "content": f"For example, {topic} {i}."}]
        rows.append({"messages": messages, "label": topic})
    for i in range(0, count, 997):  # about 0.1% exact duplicates
        rows[(i + 500) % count] = rows[i]
    return rows


def timed(step: str, timings: dict[str, tuple[float, float]], function, *args):
    """Run `function`, recording wall-clock and CPU seconds (all threads) under `step`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    timings[step] = (time.perf_counter() - wall, time.process_time() - cpu)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from lorascope.config import DataConfig
    from lorascope.data.prepare import prepare_splits, write_prepared
    from lorascope.data.rules import build_validation_frame, token_counts, tokenizer_for
    from lorascope.data.sources import load_splits, read_source
    from lorascope.expectations.instruction_data import validate_instruction_data
    from lorascope.models.chat import conversation_tokens
    from lorascope.models.loader import resolve_model

    data = DataConfig(max_label_fraction=0.5)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_path = resolve_model("tiny-mistral", scratch)
        tokenizer = tokenizer_for(model_path, None)
        source = scratch / "chats.jsonl"
        with source.open("w") as out:
            out.writelines(json.dumps(row) + "\n" for row in synthetic_rows(args.rows))

        timings: dict[str, tuple[float, float]] = {}
        records = timed("read source JSONL", timings, read_source, source)
        splits, summary = timed("deduplicate + split", timings, prepare_splits, data, records,
                                lambda rs: [])
        timed("write prepared files", timings, write_prepared, scratch / "data", splits, summary)
        prepared = timed("load prepared files", timings, load_splits, scratch / "data")
        frame = timed("validation frame (tokenize)", timings, build_validation_frame, prepared,
                      tokenizer)
        report = timed("Great Expectations suite", timings, validate_instruction_data, frame,
                       data, 4)

        sample = [r for part in prepared.values() for r in part][:2000]
        start = time.perf_counter()
        for record in sample:
            conversation_tokens(tokenizer, record.messages)
        per_row = (time.perf_counter() - start) / len(sample)
        start = time.perf_counter()
        token_counts(tokenizer, sample)
        batched = (time.perf_counter() - start) / len(sample)

    preparation = ("read source JSONL", "deduplicate + split", "write prepared files")
    dropped = sum(row["exact_duplicate"] + row["near_duplicate"] for row in summary)
    print(f"\n{args.rows} synthetic chat rows ({dropped} duplicates dropped), "
          f"suite {'passed' if report.success else 'FAILED'} with {len(report.results)} "
          "expectations\n")
    print(f"{'step':<32}{'wall s':>8}{'CPU s':>8}")
    validation = [step for step in timings if step not in preparation]
    for name, steps in (("preparation (prepare task)", preparation),
                        ("validation (validate task)", validation)):
        for step in steps:
            print(f"  {step:<30}{timings[step][0]:>8.2f}{timings[step][1]:>8.2f}")
        wall, cpu = (sum(timings[step][i] for step in steps) for i in (0, 1))
        print(f"{name:<32}{wall:>8.2f}{cpu:>8.2f}   {args.rows / wall:,.0f} rows/s")
    wall = sum(seconds for seconds, _ in timings.values())
    print(f"{'total':<32}{wall:>8.2f}{'':>8}   {args.rows / wall:,.0f} rows/s, "
          f"target ≤ 30 s: {'met' if wall <= 30 else 'missed'}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(f"{'tokenization (2 000-row sample)':<36}{'ms/row':>8}{'ratio':>8}")
    print(f"{'one apply_chat_template per row':<36}{per_row * 1e3:>8.3f}{1:>8.1f}")
    print(f"{'batched (lorascope.data.token_counts)':<36}{batched * 1e3:>8.3f}"
          f"{per_row / batched:>8.1f}")


if __name__ == "__main__":
    main()

"""The instruction-data suite: Great Expectations over `lorascope.data`'s validation frame.

Every row-level rule is a stock GE expectation on one frame column, so a failure comes
back with the offending rows' `file` and `line` (`unexpected_index_column_names`), which
the report turns into `file:line field — rule`.

The per-split minimum ("at least batch_size rows") is an `ExpectTableRowCountToBeBetween`
with a `row_condition` on `split`, one for train and one for valid, because mlx-lm's
`iterate_batches` refuses a split smaller than one batch and iterates both. Keeping it in
the same suite means one batch, one run and one report, with the split named in the rule.
test.jsonl is optional and only used for evaluation prompts, so it has no minimum.

Rules follow the row format: the role rules apply to chat rows only (a `text` row, mlx-lm's
raw-text format, has no roles; its text is what is trained on, so `empty_assistant` checks
it), and with `data.over_length: truncate` long rows are
truncated for training, as mlx-lm does, so the token-count rule is left out (preparation
counts the truncated rows).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lorascope.config import DataConfig

os.environ["GX_ANALYTICS_ENABLED"] = "false"  # must be set before the import below

import great_expectations as gx  # noqa: E402
from great_expectations.core.expectation_validation_result import (  # noqa: E402
    ExpectationValidationResult,
)
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.expectations.row_conditions import Column  # noqa: E402

SUITE_NAME = "instruction_data"
KEY_COLUMNS = ("split", "file", "line", "format", "n_messages", "token_count",
               "normalized_text")
SIZED_SPLITS = ("train", "valid")
MAX_EXAMPLES = 5
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["file", "line"]}


def _row_rule(data_config: DataConfig, column: str, value: bool, rule: str, **kwargs: Any
              ) -> Any:
    return gx.expectations.ExpectColumnValuesToBeInSet(
        column=column, value_set=[value], mostly=data_config.mostly_for(column), description=rule,
        **kwargs,
    )


def build_suite(data_config: DataConfig, batch_size: int) -> gx.ExpectationSuite:
    """The expectations, with thresholds from `data_config`; each carries its rule as text."""
    train_only = Column("split") == "train"
    has_roles = Column("format") != "text"
    expectations: list[Any] = [
        gx.expectations.ExpectColumnValuesToNotBeNull(
            column=column, mostly=data_config.mostly, description=f"{column} is present"
        )
        for column in KEY_COLUMNS
    ]
    expectations += [
        _row_rule(data_config, "roles_valid", True,
                  "every role is system, user, assistant or tool (chat rows)",
                  row_condition=has_roles),
        _row_rule(data_config, "roles_alternate", True,
                  "after an optional system turn, user and assistant alternate, "
                  "starting with user and ending with assistant (chat rows)",
                  row_condition=has_roles),
        _row_rule(data_config, "empty_assistant", False,
                  "no assistant turn is empty"),
        _row_rule(data_config, "empty_turn", False, "no user, system or tool turn is empty"),
        _row_rule(data_config, "valid_utf8", True,
                  "text is valid UTF-8 (no lone surrogates from \\ud800-style escapes)"),
    ]
    if data_config.over_length != "truncate":
        expectations.append(gx.expectations.ExpectColumnValuesToBeBetween(
            column="token_count",
            max_value=data_config.max_seq_length,
            mostly=data_config.mostly_for("token_count"),
            description=f"at most {data_config.max_seq_length} tokens (data.max_seq_length)",
        ))
    expectations += [
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="is_duplicate",
            value_set=[False],
            mostly=1 - data_config.max_duplicate_fraction,
            row_condition=train_only,
            description="not a duplicate of an earlier train row, for all but "
            f"{data_config.max_duplicate_fraction:.0%} of train (data.max_duplicate_fraction)",
        ),
        gx.expectations.ExpectColumnValuesToBeInSet(
            column="leaks_into_eval",
            value_set=[False],
            mostly=data_config.mostly_for("leaks_into_eval"),
            row_condition=train_only,
            description="the train prompt is not also in valid or test",
        ),
    ]
    if data_config.max_label_fraction is not None:
        expectations.append(
            gx.expectations.ExpectColumnValuesToNotBeNull(
                column="label", description="every row has a label (data.columns.label)"
            )
        )
        expectations.append(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="label_share",
                max_value=data_config.max_label_fraction,
                description=f"no label holds more than {data_config.max_label_fraction:.0%} "
                "of its split (data.max_label_fraction)",
            )
        )
    expectations += [
        gx.expectations.ExpectTableRowCountToBeBetween(
            min_value=batch_size,
            row_condition=Column("split") == split,
            description=f"{split} has at least {batch_size} rows (train.batch_size)",
        )
        for split in SIZED_SPLITS
    ]
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result. Table-level ones have column '', element_count = rows
    counted, and no unexpected counts, mostly or examples."""

    expectation: str
    column: str
    rule: str
    success: bool
    element_count: int
    unexpected_count: int | None
    unexpected_percent: float | None
    mostly: float | None
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    results: list[ExpectationOutcome]

    def failures(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.results if not outcome.success]

    def to_markdown(self) -> str:
        lines = [
            "| | expectation | column | rule | unexpected | mostly |",
            "|---|---|---|---|---|---|",
        ]
        for o in self.results:
            mark = "✅" if o.success else "❌"
            if o.unexpected_count is None:
                unexpected = f"{o.element_count} rows"
            else:
                share = f"{o.unexpected_percent:.1f}%"
                unexpected = f"{o.unexpected_count} / {o.element_count} ({share})"
            mostly = "" if o.mostly is None else f"{o.mostly:g}"
            lines.append(
                f"| {mark} | {o.expectation} | {o.column} | {o.rule} | {unexpected} | {mostly} |"
            )
        for o in self.failures():
            lines += ["", f"**❌ {o.rule}** ({' '.join(filter(None, [o.expectation, o.column]))})"]
            if not o.examples:
                lines.append(f"- observed {o.element_count} rows")
            lines += [
                f"- `{e['file']}:{e['line']}` {e['field']} — {e['rule']} (value: {e['value']})"
                for e in o.examples
            ]
        return "\n".join(lines) + "\n"

    def rows(self) -> list[dict[str, Any]]:
        """Rows for the warehouse table `validations`; examples as a JSON string."""
        return [
            {
                "expectation": o.expectation,
                "column_name": o.column,
                "rule": o.rule,
                "success": o.success,
                "element_count": o.element_count,
                "unexpected_count": o.unexpected_count,
                "unexpected_percent": o.unexpected_percent,
                "mostly": o.mostly,
                "examples": json.dumps(o.examples),
            }
            for o in self.results
        ]


def _plain(value: Any) -> Any:
    """A numpy scalar from GE's results as the Python value, for JSON and comparison."""
    return value.item() if isinstance(value, np.generic) else value


def _exception_messages(info: dict[str, Any]) -> list[str]:
    """Messages in GE's exception_info: one ExceptionInfo, or one per failed metric."""
    if "raised_exception" in info:
        return [info["exception_message"]] if info["raised_exception"] else []
    return [message for nested in info.values() for message in _exception_messages(nested)]


def _outcome(result: ExpectationValidationResult) -> ExpectationOutcome:
    config = result.expectation_config
    errors = _exception_messages(result.exception_info)
    if errors:
        # GE reports an expectation that could not run as failed; that is a bug, not bad data.
        raise RuntimeError(
            f"expectation {config.type} on {config.kwargs.get('column', 'the table')!r} "
            f"could not run: {'; '.join(errors)}"
        )
    stats = result.result
    column = config.kwargs.get("column", "")
    rule = config.description or config.type
    if not column:
        return ExpectationOutcome(
            expectation=config.type,
            column="",
            rule=rule,
            success=bool(result.success),
            element_count=_plain(stats["observed_value"]),
            unexpected_count=None,
            unexpected_percent=None,
            mostly=None,
        )
    examples = [
        {
            "file": row["file"],
            "line": _plain(row["line"]),
            "field": column,
            "rule": rule,
            "value": _plain(row[column]),
        }
        for row in stats.get("unexpected_index_list", [])[:MAX_EXAMPLES]
    ]
    return ExpectationOutcome(
        expectation=config.type,
        column=column,
        rule=rule,
        success=bool(result.success),
        element_count=_plain(stats["element_count"]),
        unexpected_count=_plain(stats["unexpected_count"]),
        unexpected_percent=_plain(stats.get("unexpected_percent") or 0.0),
        mostly=config.kwargs.get("mostly", 1.0),
        examples=examples,
    )


def validate_instruction_data(
    frame: pd.DataFrame, data_config: DataConfig, batch_size: int
) -> ValidationReport:
    """Run the suite on the frame in a throwaway GE context; nothing is written to disk."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("lorascope")
        .add_dataframe_asset("instruction_data")
        .add_batch_definition_whole_dataframe("all_splits")
    )
    suite = context.suites.add(build_suite(data_config, batch_size))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
    return ValidationReport(
        success=bool(result.success), results=[_outcome(r) for r in result.results]
    )

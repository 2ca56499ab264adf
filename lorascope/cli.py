"""The `lorascope` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from lorascope.blas import ensure_optimized_blas
from lorascope.errors import (
    EXIT_CODES,
    STOPPED_BY_CTRL_C,
    STOPPED_BY_SIGTERM,
    exit_code,
    is_user_error,
)

EXAMPLES = """\
examples:
  lorascope run configs/demo.yaml                        tune, evaluate and report (offline demo)
  lorascope run configs/demo.yaml --set train.iters=20   override any config value
  lorascope resume demo-1a2b3c4d5e                       continue an interrupted run
  lorascope sql "select * from runs"                     query the warehouse (read-only)
  lorascope sql --saved goal_improvement                 a saved query (--list shows them)
  lorascope validate configs/demo.yaml --data my_data/   check data before training on it
  lorascope plan configs/mistral-7b-qlora.yaml --hardware m1-max   memory, time, energy up front
  lorascope eval demo-1a2b3c4d5e --set eval.max_tokens=128   re-evaluate, no training
  lorascope eval configs/demo.yaml --adapter DIR         base vs base+adapter, no training
  lorascope sweep configs/demo.yaml lora.rank 4 8 16     rank sensitivity, one run per value
  lorascope experiment domains configs/demo.yaml configs/demo-commonsense.yaml
                                                         domain transfer: one run per domain
  lorascope serve configs/demo.yaml --cron "0 1 * * *"   run from the Prefect UI; nightly at 01:00
  lorascope config explain                               every config field, default and help

State lives in $LORASCOPE_HOME (default ./.lorascope): warehouse.duckdb and runs/<run_id>/.

"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lorascope",
        description="LoRA-instruction-tune an LLM with MLX and measure what the tuning changed.",
        epilog=EXAMPLES + "\nexit codes:\n" + "".join(
            f"  {code}  {meaning}\n" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks of failures (and Prefect's) instead of one line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the full pipeline flow for a config")
    run.add_argument("config", help="run config YAML, e.g. configs/demo.yaml")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set train.iters=20 (repeatable)")

    resume = commands.add_parser("resume", help="continue a run from its newest checkpoint")
    resume.add_argument("run_id")

    status = commands.add_parser(
        "status", help="mark runs whose process died as interrupted, then list the runs")
    status.add_argument("--crash-automation", action="store_true",
                        help="also create (once) the Prefect automation that marks flow runs "
                        "Crashed when their heartbeats stop, on the server PREFECT_API_URL names")

    gc = commands.add_parser(
        "gc", help="free disk space: checkpoints, data copies and dumps of finished runs "
        "(dry run unless --yes; docs/housekeeping.md)")
    gc.add_argument("--yes", action="store_true", help="delete (default: only print the plan)")
    gc.add_argument("--keep-last", type=int, default=0, metavar="N",
                    help="leave the N most recently started runs untouched")
    gc.add_argument("--older-than", type=float, metavar="DAYS",
                    help="also delete Prefect flow-run records of finished flow runs started "
                    "more than DAYS days ago (on the server PREFECT_API_URL names)")

    sql = commands.add_parser("sql", help="read-only SQL over the warehouse")
    sql.add_argument("query", nargs="?", help="SQL text")
    sql.add_argument("--saved", metavar="NAME", help="run a saved query by name")
    sql.add_argument("--list", action="store_true", help="list saved queries")

    validate = commands.add_parser("validate", help="validate a config's training data only")
    validate.add_argument("config")
    validate.add_argument("--data", help="a data file, folder or hf:ID to validate instead of "
                          "the config's data.source")

    sweep = commands.add_parser(
        "sweep", help="an experiment: the pipeline once per value of one config parameter")
    sweep.add_argument("config")
    sweep.add_argument("parameter", help="dotted config key, e.g. lora.rank or data.source")
    sweep.add_argument("values", nargs="+", help="values to try, e.g. 4 8 16")
    sweep.add_argument("--work-pool", metavar="NAME",
                       help="run each value as its own flow run on this Prefect work pool's "
                       "workers (prefect.yaml's pipeline deployment), side by side")

    experiment = commands.add_parser(
        "experiment", help="an experiment over several configs (domains: the transfer matrix)")
    kinds = experiment.add_subparsers(dest="kind", required=True, metavar="KIND")
    domains = kinds.add_parser(
        "domains", help="one run per config, each tuned on its own domain, every run "
        "evaluated on every domain's eval prompts and goal: in-domain gain and transfer")
    domains.add_argument("configs", nargs="+", metavar="CONFIG",
                         help="one run config per domain; its name names the domain")

    serve = commands.add_parser(
        "serve", help="serve the pipeline for a config to the Prefect UI, optionally on a schedule")
    serve.add_argument("config")
    serve.add_argument("--cron", help='schedule, e.g. "0 1 * * *" for 01:00 every night')
    serve.add_argument("--timezone", default="UTC", help="time zone of --cron (default UTC)")

    evaluate = commands.add_parser(
        "eval", help="evaluate again without training: a trained run with other eval settings "
        "(RUN_ID --set eval.KEY=VALUE), or adapters trained elsewhere (CONFIG --adapter DIR)")
    evaluate.add_argument("target", metavar="RUN_ID|CONFIG",
                          help="a run id (under $LORASCOPE_HOME/runs), or a config YAML")
    evaluate.add_argument("--adapter", metavar="PATH",
                          help="with a CONFIG: mlx-lm adapter folder (adapter_config.json + "
                          "adapters.safetensors), e.g. from `mlx_lm.lora --train`; default: "
                          "the config's trained run")
    evaluate.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE", help="override a config value (repeatable; "
                          "with a RUN_ID, eval.* only)")

    plan = commands.add_parser(
        "plan", help="predict peak memory, tokens per step, time and energy before training")
    plan.add_argument("config")
    plan.add_argument("--hardware", choices=["m4", "m4-pro", "m4-max", "m1-max", "m2-ultra",
                                             "linux-cpu-2core"],
                      help="machine to predict for (default: this machine: its stored "
                      "measurement, its built-in profile, else measured now, once)")
    plan.add_argument("--calibrate", action="store_true",
                      help="measure this machine again (a few seconds) and store its constants "
                      "in $LORASCOPE_HOME/machines/")
    plan.add_argument("--compare-methods", action="store_true",
                      help="LoRA, QLoRA, full fine-tuning and a hosted API on the Apple "
                      "profiles and linux-cpu-2core, for a dataset (docs/economics.md)")
    plan.add_argument("--examples", type=int, default=10_000,
                      help="with --compare-methods: training examples")
    plan.add_argument("--tokens-per-example", type=int, default=512,
                      help="with --compare-methods: tokens per example")
    plan.add_argument("--epochs", type=int, default=3, help="with --compare-methods: epochs")
    plan.add_argument("--api-price-per-mtok", type=float, default=None,
                      help="with --compare-methods: a hosted API's price per 1M training tokens "
                      "(default: an example, 0.46, dated in docs/economics.md)")
    plan.add_argument("--tokens-per-second", type=float,
                      help="measured training speed; overrides the hardware's FLOP rate")
    plan.add_argument("--watts", type=float, help="power draw under load (default: hardware's)")
    plan.add_argument("--price-per-kwh", type=float, default=0.30, help="electricity price")
    plan.add_argument("--no-data", action="store_true",
                      help="do not tokenize the training data; assume max_seq_length rows")
    plan.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="override a config value (repeatable)")

    export = commands.add_parser(
        "export", help="fuse a run's adapters into its base (mlx-lm's fuse) with a model card")
    export.add_argument("run_id")
    export.add_argument("--out", metavar="DIR",
                        help="model folder to write (default: runs/<run_id>/export)")
    export.add_argument("--de-quantize", action="store_true",
                        help="write full-precision weights (for a QLoRA run's quantized base)")
    export.add_argument("--quantize-bits", type=int, choices=[4, 8],
                        help="quantize the fused model, as mlx_lm.convert -q does")
    export.add_argument("--quantize-group-size", type=int, default=64, metavar="N",
                        help="group size for --quantize-bits (default 64)")

    prepare = commands.add_parser("prepare-model", help="prepare a built-in model (once)")
    prepare.add_argument("name", help="smollm2-135m or tiny-mistral")

    config = commands.add_parser("config", help="explain the config fields, or show a config")
    config_commands = config.add_subparsers(dest="config_command", required=True,
                                            metavar="ACTION")
    explain = config_commands.add_parser(
        "explain", help="every field with its type, default and help (or one section's)")
    explain.add_argument("section", nargs="?",
                         help="model, data, lora, train or eval (default: all)")
    show = config_commands.add_parser(
        "show", help="a config as it loads: every field, defaults filled in")
    show.add_argument("config")
    show.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="override a config value (repeatable)")
    return parser


def cmd_run(config_path: str, overrides: list[str]) -> int:
    from lorascope.config import load_config
    from lorascope.paths import RunPaths, warehouse_path
    from lorascope.run_lock import run_lock
    from lorascope.runs import run_id_for

    # A bad config, or a run another process is writing, fails here, before Prefect starts.
    run_id = run_id_for(load_config(config_path, overrides))
    with run_lock(RunPaths.of(run_id).root, "lorascope run"):
        from lorascope.flows.pipeline import pipeline
        from lorascope.flows.server import start_temporary_server

        start_temporary_server()
        pipeline(config_path, overrides)
    print(f"\nrun {run_id} completed")
    print(f"  report:    {RunPaths.of(run_id).report} (and report.html beside it)")
    print(f"  warehouse: {warehouse_path()}")
    print("  try:       lorascope sql --saved goal_improvement")
    return 0


def cmd_resume(run_id: str) -> int:
    from lorascope.config import ConfigError
    from lorascope.paths import RunPaths, runs_dir

    config = RunPaths.of(run_id).config
    if not config.is_file():
        raise ConfigError(f"no run {run_id!r} under {runs_dir()} (no {config.name} there)")
    return cmd_run(str(config), [])


def cmd_status(crash_automation: bool) -> int:
    from lorascope import warehouse
    from lorascope.paths import lorascope_home, warehouse_path
    from lorascope.runs import mark_interrupted

    for marked in mark_interrupted(lorascope_home()):
        print(f"{marked}: interrupted (its process is gone; `lorascope resume` continues it)")
    if crash_automation:
        from lorascope.tasks.training import ensure_crash_automation

        print(f"Prefect automation {ensure_crash_automation().name!r} is in place")
    if warehouse_path().exists():
        print(warehouse.format_table(*warehouse.query(warehouse_path(),
                                                      warehouse.saved_query("runs"))))
    return 0


def cmd_gc(yes: bool, keep_last: int, older_than: float | None) -> int:
    from lorascope import gc
    from lorascope.paths import lorascope_home

    plan = gc.plan_gc(gc.run_facts(lorascope_home()), keep_last)
    for removal in plan.removals:
        print(f"{gc.human_size(removal.size):>10}  {removal.path}  ({removal.what})")
    for run_id, why in plan.untouched.items():
        print(f"{'kept':>10}  {run_id}: {why}")
    if yes:
        print(f"freed {gc.human_size(gc.apply_gc(plan))}")
    else:
        print(f"would free {gc.human_size(plan.size)} in {len(plan.removals)} paths; "
              "run with --yes to delete")
    if older_than is not None:
        from lorascope.flows.housekeeping import delete_flow_runs, old_flow_runs, prefect_server

        if prefect_server() is None:
            print("no Prefect server configured (PREFECT_API_URL): flow-run records left alone")
        else:
            old = old_flow_runs(older_than)
            if yes:
                print(f"deleted {delete_flow_runs(old)} Prefect flow runs older than "
                      f"{older_than:g} days")
            else:
                print(f"would delete {len(old)} Prefect flow runs older than {older_than:g} days")
    return 0


def cmd_sql(query: str | None, saved: str | None, list_saved: bool) -> int:
    from lorascope import warehouse
    from lorascope.paths import warehouse_path

    if list_saved:
        print("\n".join(warehouse.saved_query_names()))
        return 0
    if saved:
        query = warehouse.saved_query(saved)
    if not query:
        print("lorascope sql: give a query, --saved NAME or --list", file=sys.stderr)
        return 2
    columns, rows = warehouse.query(warehouse_path(), query)
    print(warehouse.format_table(columns, rows))
    return 0


def cmd_validate(config_path: str, data: str | None) -> int:
    import tempfile

    from lorascope.config import load_config
    from lorascope.data.builtin import resolve_data_source
    from lorascope.data.prepare import prepare_data
    from lorascope.data.rules import tokenizer_for
    from lorascope.data.validation import DataValidationFailed, validate_folder
    from lorascope.models.loader import resolve_model
    from lorascope.paths import lorascope_home

    config = load_config(config_path)
    if data:
        config.data.source = data
    home = lorascope_home()
    model_path = resolve_model(config.model.source, home, weights=False)  # tokenizer only
    location = resolve_data_source(config.data.source, home)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="lorascope-validate-") as scratch:
        folder = Path(scratch) / "data"
        prepare_data(config.data, location, folder, model_path, config.model.chat_template, log)
        tokenizer = tokenizer_for(model_path, config.model.chat_template)
        report, markdown = validate_folder(
            folder, config, tokenizer,
            lambda done, total: print(f"\rtokenized {done}/{total} rows", end="", file=sys.stderr),
        )
    print(file=sys.stderr)
    print(markdown)
    return 0 if report.success else DataValidationFailed.exit_code


def cmd_sweep(config_path: str, parameter: str, raw_values: list[str],
              work_pool: str | None = None) -> int:
    import yaml

    from lorascope.experiments import check_values

    values = [yaml.safe_load(v) for v in raw_values]
    check_values(config_path, parameter, values)  # before Prefect starts
    from lorascope.flows.experiments import sweep
    from lorascope.flows.server import start_temporary_server

    start_temporary_server()
    experiment_id = sweep(config_path, parameter, values, work_pool=work_pool)
    print(f"\nexperiment {experiment_id} completed")
    print("  try:       lorascope sql --saved experiment_results")
    return 0


def cmd_experiment_domains(config_paths: list[str]) -> int:
    from lorascope.experiments import load_domain_configs

    load_domain_configs(config_paths)  # before Prefect starts
    from lorascope.flows.experiments import domain_experiment
    from lorascope.flows.server import start_temporary_server

    start_temporary_server()
    experiment_id = domain_experiment(config_paths)
    print(f"\nexperiment {experiment_id} completed")
    print("  try:       lorascope sql --saved domain_transfer")
    return 0


def cmd_serve(config_path: str, cron: str | None, timezone: str) -> int:
    from lorascope.config import load_config

    load_config(config_path)
    from lorascope.flows.pipeline import serve_pipeline

    serve_pipeline(config_path, cron, timezone)
    return 0


def cmd_eval(target: str, adapter: str | None, overrides: list[str]) -> int:
    """`lorascope eval RUN_ID`: re-evaluate a trained run; `lorascope eval CONFIG --adapter
    DIR`: evaluate adapters trained elsewhere."""
    from lorascope.config import load_config
    from lorascope.paths import RunPaths, lorascope_home
    from lorascope.run_lock import run_lock
    from lorascope.runs import adapter_run_config, open_run, run_id_for

    if not Path(target).is_file():
        if adapter:
            raise FileNotFoundError(f"{target}: no such config file (--adapter needs a config)")
        open_run(target, lorascope_home(), overrides)  # a bad run id or override fails here
        with run_lock(RunPaths.of(target).root, "lorascope eval"):
            from lorascope.flows.evaluation import reevaluate
            from lorascope.flows.server import start_temporary_server

            start_temporary_server()
            evaluation_id = reevaluate(target, overrides)
        print(f"\nrun {target} evaluated: evaluation {evaluation_id}")
        print(f"  report:    {RunPaths.of(target).evaluation(evaluation_id) / 'report.md'} "
              "(and report.html beside it)")
        print("  try:       lorascope sql --saved evaluations")
        return 0
    config, _ = adapter_run_config(load_config(target, overrides),
                                   Path(adapter) if adapter else None, lorascope_home())
    with run_lock(RunPaths.of(run_id_for(config)).root, "lorascope eval"):
        from lorascope.flows.evaluation import evaluate_adapter
        from lorascope.flows.server import start_temporary_server

        start_temporary_server()
        run_id = evaluate_adapter(target, adapter, overrides)
    print(f"\nrun {run_id} evaluated\n  report:    {RunPaths.of(run_id).report} "
          "(and report.html beside it)")
    print("  try:       lorascope sql --saved goal_improvement")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from lorascope.config import ConfigError, load_config
    from lorascope.paths import lorascope_home
    from lorascope.training import planner

    config = load_config(args.config, args.overrides)
    home = lorascope_home()
    dims = planner.model_dims_for(config.model.source, home)
    if args.compare_methods:
        from lorascope.training import economics

        dataset = economics.Dataset(args.examples, args.tokens_per_example, args.epochs)
        machines = (args.hardware,) if args.hardware else economics.MACHINES
        plans = economics.compare(dims, config, dataset, args.price_per_kwh, machines)
        api_price = args.api_price_per_mtok
        print(economics.format_comparison(
            dims, config, dataset, plans, args.price_per_kwh,
            economics.API_PRICE_PER_MTOK if api_price is None else api_price))
        return 0
    if args.hardware and args.calibrate:
        raise ConfigError("--calibrate measures this machine: leave out --hardware")
    if args.hardware:
        hardware = planner.HARDWARE[args.hardware]
    else:
        from lorascope.training.calibration import this_machine

        hardware = this_machine(home, recalibrate=args.calibrate)
    data = None if args.no_data else planner.data_stats_for(config, home)
    plan = planner.plan_run(dims, config, hardware, data, args.tokens_per_second, args.watts,
                            args.price_per_kwh)
    print(planner.format_plan(plan, config))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lorascope.export import export_run
    from lorascope.paths import RunPaths, lorascope_home
    from lorascope.run_lock import run_lock
    from lorascope.runs import open_run

    open_run(args.run_id, lorascope_home())  # a bad run id fails here, before the lock
    with run_lock(RunPaths.of(args.run_id).root, "lorascope export"):
        out = export_run(args.run_id, lorascope_home(), Path(args.out) if args.out else None,
                         args.de_quantize, args.quantize_bits, args.quantize_group_size)
    print(f"  model card: {out / 'README.md'}")
    print(f"  try:        mlx_lm.server --model {out}")
    return 0


def cmd_prepare_model(name: str) -> int:
    from lorascope.models.loader import resolve_model

    print(resolve_model(name, progress=print))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from lorascope.config import dump_config, explain_config, load_config

    if args.config_command == "explain":
        print(explain_config(args.section))
    else:
        print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


FLOW_COMMANDS = ("run", "resume", "sweep", "experiment", "serve", "eval")


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return cmd_run(args.config, args.overrides)
    if args.command == "resume":
        return cmd_resume(args.run_id)
    if args.command == "sql":
        return cmd_sql(args.query, args.saved, args.list)
    if args.command == "validate":
        return cmd_validate(args.config, args.data)
    if args.command == "sweep":
        return cmd_sweep(args.config, args.parameter, args.values, args.work_pool)
    if args.command == "experiment":
        return cmd_experiment_domains(args.configs)
    if args.command == "serve":
        return cmd_serve(args.config, args.cron, args.timezone)
    if args.command == "eval":
        return cmd_eval(args.target, args.adapter, args.overrides)
    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "config":
        return cmd_config(args)
    if args.command == "export":
        return cmd_export(args)
    if args.command == "gc":
        return cmd_gc(args.yes, args.keep_last, args.older_than)
    if args.command == "status":
        return cmd_status(args.crash_automation)
    return cmd_prepare_model(args.name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in (*FLOW_COMMANDS, "prepare-model"):
        ensure_optimized_blas()  # re-execs once; MLX-heavy commands only
    quiet_offline_defaults()
    if args.command in FLOW_COMMANDS:
        stop_cleanly_on_sigterm()
    if args.command in FLOW_COMMANDS and not args.debug:
        from lorascope.flows.console import hide_user_error_tracebacks

        hide_user_error_tracebacks()
    try:
        return dispatch(args)
    except KeyboardInterrupt:
        print(stopped_by("Ctrl-C"), file=sys.stderr)
        return STOPPED_BY_CTRL_C
    except BrokenPipeError:
        # the reader closed the pipe (`lorascope sql ... | head`): it has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if args.debug:
            raise
        code = exit_code(error)
        what = str(error) if is_user_error(error) else (
            f"unexpected error: {type(error).__name__}: {error} "
            "(run with --debug for the traceback)")
        print(f"lorascope: {one_line(what)}", file=sys.stderr)
        return code


def stop_cleanly_on_sigterm() -> None:
    """`kill PID` (SIGTERM: also what systemd, a scheduler or a container runtime sends) ends a
    flow command as Ctrl-C does, by an exception: `finally` blocks and exit handlers run, so
    Prefect's temporary server and the training process stop with it. Python's default is to
    die at once, which left the server running."""

    def stop(number: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        print(stopped_by("SIGTERM"), file=sys.stderr)
        raise SystemExit(STOPPED_BY_SIGTERM)

    signal.signal(signal.SIGTERM, stop)


def stopped_by(signal_name: str) -> str:
    return (f"lorascope: stopped by {signal_name}; what finished is kept "
            "(`lorascope resume RUN_ID` continues a run)")


def quiet_offline_defaults() -> None:
    """No telemetry (there is no network to send it to), and time for Prefect's temporary
    server to start on a busy 2-core machine (its default, 20 s, is sometimes too short)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())

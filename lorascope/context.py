"""What every pipeline step needs to know about its run, resolved once at the start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lorascope.config import RunConfig
from lorascope.home import warehouse_path


@dataclass(frozen=True)
class RunContext:
    run_id: str
    config: RunConfig
    home: Path
    run_dir: Path
    model_path: Path
    data_dir: Path
    eval_prompts_path: Path
    data_hash: str
    code_version: str

    @property
    def warehouse(self) -> Path:
        return warehouse_path(self.home)

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapters"

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.md"

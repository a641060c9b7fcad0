"""Building pipelines for engine tests from compact YAML."""

from __future__ import annotations

from typing import Any

import yaml

from pipesync.api import model
from pipesync.engine import compiler
from pipesync.engine.compiler import CompiledPipeline


def compile_yaml(text: str) -> CompiledPipeline:
    compiled, problems = compiler.compile_pipeline(spec(text))
    assert not problems, problems
    assert compiled is not None
    return compiled


def problems_of(text: str) -> list[compiler.Problem]:
    _, problems = compiler.compile_pipeline(spec(text))
    return problems


def spec(text: str) -> model.PipelineSpec:
    data: dict[str, Any] = yaml.safe_load(text)
    return model.pipeline_spec_from_spec(data)

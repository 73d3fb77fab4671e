"""Orchestration: the sweep loop, one trial, sampling, the study's state, its report."""

from harness.study.judge_gate import WeakJudgeError
from harness.study.loop import SweepResult, run_sweep

__all__ = ["SweepResult", "WeakJudgeError", "run_sweep"]

"""Analysis: metrics (pure: no I/O), report data built from a results DB, and renderers for people and programs."""

from cotbridge.analysis.report import Report, build_report

__all__ = ["Report", "build_report"]

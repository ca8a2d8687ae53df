"""Analysis: metrics (pure: no I/O), report data built from a results DB (`cotbridge.analysis.report`), renderers
of a report for people and programs (`cotbridge.analysis.render`), and the user study's ratings
(`cotbridge.analysis.human_ratings`)."""

from cotbridge.analysis.report import ConditionKey, Report, build_report

__all__ = ["ConditionKey", "Report", "build_report"]

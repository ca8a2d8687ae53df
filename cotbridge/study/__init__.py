"""Studies: the study file, the runner (one method per phase), the results DB, and importers of released outputs."""

from cotbridge.study.config import StudyConfig, load_study, parse_study
from cotbridge.study.results import ResultsDB
from cotbridge.study.runner import RunSummary, StudyRunner, run_study

__all__ = ["ResultsDB", "RunSummary", "StudyConfig", "StudyRunner", "load_study", "parse_study", "run_study"]

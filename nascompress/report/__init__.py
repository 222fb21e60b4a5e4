"""The HTML report of a run (``nascompress report``); needs the ``report`` extra.

Importing this package needs neither plotly nor matplotlib: :func:`build_report` checks
for them when called and raises :class:`ReportDependencyError` naming the extra.
"""

from nascompress.report.data import ReportData, hypervolume_history, load_report_data
from nascompress.report.html import (
    ReportDependencyError,
    assets_dir_for,
    build_report,
    default_report_path,
    require_report_dependencies,
)

__all__ = [
    "ReportData",
    "ReportDependencyError",
    "assets_dir_for",
    "build_report",
    "default_report_path",
    "hypervolume_history",
    "load_report_data",
    "require_report_dependencies",
]

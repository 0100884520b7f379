"""巡检报告 and other reports: Jinja2 templates → mail-safe HTML (Chinese first).

Import-cheap: jinja2 is imported only when a report is rendered.
"""

from hisops.report.render import (
    PRESENT_STATE,
    ReportData,
    SystemInfo,
    light_for,
    render_report,
    report_day,
    save_report,
    severity_counts,
    subject,
    text_summary,
)

__all__ = [
    "PRESENT_STATE",
    "ReportData",
    "SystemInfo",
    "light_for",
    "render_report",
    "report_day",
    "save_report",
    "severity_counts",
    "subject",
    "text_summary",
]

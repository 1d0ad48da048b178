"""The local report files: report.md and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from mlgate.report import html, markdown
from mlgate.report.interface import Delivery, ReportOptions, Sink
from mlgate.report.model import Report


def write(report: Report, output_dir: Path) -> tuple[Path, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = output_dir / "report.md", output_dir / "report.html"
    # This is the full report that truncation notices point to: no size limit here.
    md_path.write_text(markdown.full(report, limit=1 << 62) + "\n", encoding="utf-8")
    html_path.write_text(html.render(report), encoding="utf-8")
    return md_path, html_path


class FilesSink(Sink):
    name = "files"

    def wanted(self, options: ReportOptions) -> bool:
        return True

    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        md_path, html_path = write(report, options.output_dir)
        return Delivery(f"{md_path}, {html_path}")

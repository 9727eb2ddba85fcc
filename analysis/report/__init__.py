"""Reports people look at: self-contained HTML pages with their plots."""

from mmmelab.analysis.report.html import concordance_page, locked_figure, p_figure

__all__ = ["concordance_page", "locked_figure", "p_figure"]

"""Statistics: paired t-tests, Benjamini-Hochberg q-values, confidence intervals, and the
concordance analysis of the MMME paper (section 4.1)."""

from mmmelab.analysis.stats.tests import PairedT, bh_qvalues, mean_ci, paired_t

__all__ = ["PairedT", "bh_qvalues", "mean_ci", "paired_t"]

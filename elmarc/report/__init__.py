"""Report stage: reads only result rows and per-clip predictions, never fits.

    write.py      the report of a folder (write_report), written whole: report.md last
    tables.py     gathering the jobs' rows, the markdown tables
    stats.py      per-seed accuracies, the paper's t-test, the corrected k-fold test, McNemar
    clips.py      confusion matrices and per-class accuracy
    ranks.py      Friedman / Nemenyi ranks across datasets, critical-difference diagrams
    agreement.py  random vs trained: rank agreement with bootstrap intervals
    plots.py      bar charts; paper.py the paper's published accuracies
"""
from .write import write_report

__all__ = ["write_report"]

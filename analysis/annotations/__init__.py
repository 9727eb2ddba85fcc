"""Expression events (ME and MaE): the annotation table, FACS notation, and readers for
the coding sheets of public ME datasets (CASME II, CAS(ME)^2, CAS(ME)^3, SAMM)."""

from mmmelab.analysis.annotations.facs import ActionUnit, format_aus, parse_aus
from mmmelab.analysis.annotations.sheets import DATASET_FPS, read_sheet
from mmmelab.analysis.annotations.table import (
    CONSENSUS,
    Annotation,
    AnnotationError,
    AnnotationTable,
    Emotion,
    Kind,
    MeRule,
    annotation_path,
    event_times,
    read_table,
    table_from_rows,
    times_table,
)
from mmmelab.analysis.annotations.writing import write_table

__all__ = [
    "CONSENSUS",
    "DATASET_FPS",
    "ActionUnit",
    "Annotation",
    "AnnotationError",
    "AnnotationTable",
    "Emotion",
    "Kind",
    "MeRule",
    "annotation_path",
    "event_times",
    "format_aus",
    "parse_aus",
    "read_sheet",
    "read_table",
    "table_from_rows",
    "times_table",
    "write_table",
]

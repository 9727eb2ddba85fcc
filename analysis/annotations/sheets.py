"""Readers for the coding sheets that public ME datasets ship, into our annotation table.

* **CASME II** (``CASME2-coding-*.xlsx``): a header row ``Subject, Filename, OnsetFrame,
  ApexFrame, OffsetFrame, Action Units, Estimated Emotion``; 200 fps.
* **CAS(ME)^2** (``CAS(ME)^2code_final.xlsx``): no header; columns subject, clip,
  onset, apex, offset, AUs, emotion, expression type (``micro-expression`` /
  ``macro-expression``), self-report; 30 fps.
* **CAS(ME)^3** (``cas(me)3_part_A_*.xlsx``): a header row ``Subject, Filename, Onset,
  Apex, Offset, AU, Objective class, emotion``; 30 fps.
* **SAMM** (``SAMM_Micro_FACS_Codes_*.xlsx``, SAMM long videos): title and description
  rows before the header (``Subject, Filename, Inducement Code, Onset Frame, Apex Frame,
  Offset Frame, Duration, Type, Action Units, Estimated Emotion, Notes``); an apex of
  ``-1`` means "not annotated"; some frame numbers are fractional; 200 fps.

``.xlsx`` (openpyxl) and ``.csv`` are read. The header row is found by its names
(any of the spellings below, case and spaces ignored), so a sheet with extra
columns or preamble rows reads too. A bad row raises :class:`AnnotationError` naming
the file, the row (as a spreadsheet shows it) and the column. Kinds come from our
ME rule at the dataset's frame rate; where the sheet states a type that disagrees,
the sheet's type is kept as an override with that reason.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mmmelab.analysis.annotations.facs import parse_aus
from mmmelab.analysis.annotations.table import (
    EMOTION_ALIASES,
    Annotation,
    AnnotationError,
    AnnotationTable,
    Emotion,
    Kind,
    MeRule,
    check_frames,
    file_sha256,
)

#: Frame rates of the public datasets' released videos.
DATASET_FPS = {"casme2": 200.0, "casme^2": 30.0, "casme3": 30.0, "samm": 200.0}

SYNONYMS = {
    "subject": ("subject", "sub", "participant"),
    "clip": ("filename", "file", "video", "videoname", "clip", "videocode"),
    "onset": ("onsetframe", "onset", "startframe"),
    "apex": ("apexframe", "apex", "apexframe1"),
    "offset": ("offsetframe", "offset", "endframe"),
    "aus": ("actionunits", "au", "aus", "actionunit", "facs"),
    "emotion": ("estimatedemotion", "emotion", "objectiveclass", "emotionlabel"),
    "type": ("type", "expressiontype", "expression"),
    "notes": ("notes", "note", "comments"),
}
#: CAS(ME)^2's headerless column order.
CASME_SQ_ORDER = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion", "type")


def _norm(cell: Any) -> str:
    return "".join(str(cell or "").lower().split()).replace("_", "")


def _rows(path: Path) -> list[list[Any]]:
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise AnnotationError(f"{path}: not a readable .xlsx file ({exc})") from None
        try:
            sheet = book.worksheets[0]
            return [list(r) for r in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot be read ({exc})") from None
    dialect = csv.excel_tab if text.count("\t") > text.count(",") else csv.excel
    return [list(r) for r in csv.reader(text.splitlines(), dialect)]


def _find_header(rows: list[list[Any]]) -> tuple[int, dict[str, int]] | None:
    for i, row in enumerate(rows[:40]):
        names = [_norm(c) for c in row]
        cols: dict[str, int] = {}
        for key, options in SYNONYMS.items():
            for j, name in enumerate(names):
                if name in options and key not in cols:
                    cols[key] = j
        if {"onset", "offset"} <= cols.keys():
            return i, cols
    return None


def _frame(path: Path, row: int, col: str, value: Any, warn: list[str], optional: bool) -> Any:
    text = "" if value is None else str(value).strip()
    if optional and text in ("", "-1", "-1.0", "/", "-", "n/a"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise AnnotationError(
            f"{path}: row {row}, column {col!r}: {value!r} is not a frame number"
        ) from None
    if number < 0 or number != number:
        raise AnnotationError(f"{path}: row {row}, column {col!r}: {value!r} is not >= 0")
    if number != int(number):
        warn.append(f"{path}: row {row}, column {col!r}: fractional frame {text} rounded")
        return int(number + 0.5)
    return int(number)


def _sheet_kind(value: Any) -> Kind | None:
    text = str(value or "").strip().lower()
    if text.startswith("micro"):
        return Kind.ME
    if text.startswith("macro"):
        return Kind.MAE
    return None


def read_sheet(
    path: Path | str,
    fps: float,
    layout: str = "auto",
    rule: MeRule | None = None,
    dataset: str = "",
) -> AnnotationTable:
    """Read a public dataset's coding sheet into an AnnotationTable at ``fps``.

    ``layout``: ``auto`` (find the header row by its names) or ``casme^2`` (CAS(ME)^2's
    headerless columns). ``dataset`` names the source in override reasons.
    """
    path = Path(path)
    rule = rule or MeRule()
    if not path.is_file():
        raise AnnotationError(f"{path}: no such file")
    rows = _rows(path)
    found = None if layout == "casme^2" else _find_header(rows)
    if found is None:
        if layout not in ("auto", "casme^2"):
            raise AnnotationError(f"{path}: unknown layout {layout!r}")
        if layout == "auto" and not _looks_headerless(rows):
            raise AnnotationError(
                f"{path}: no header row with onset and offset columns in the first 40 rows"
            )
        start, cols = 0, {k: i for i, k in enumerate(CASME_SQ_ORDER)}
    else:
        start, cols = found[0] + 1, found[1]
    label = {k: str(rows[start - 1][j]) if start else k for k, j in cols.items()}
    anns: list[Annotation] = []
    warnings: list[str] = []
    for i, cells in enumerate(rows[start:], start=start + 1):
        if not any(str(c or "").strip() for c in cells):
            continue

        def cell(key: str, cells: list[Any] = cells) -> Any:
            j = cols.get(key)
            return cells[j] if j is not None and j < len(cells) else None

        onset = _frame(path, i, label["onset"], cell("onset"), warnings, False)
        offset = _frame(path, i, label["offset"], cell("offset"), warnings, False)
        apex = _frame(path, i, label.get("apex", "apex"), cell("apex"), warnings, True)
        if apex is not None and offset == 0 and onset > 0:  # some sheets leave offset 0
            raise AnnotationError(f"{path}: row {i}, column {label['offset']!r}: offset is 0")
        check_frames(path, i, onset, apex, offset)
        try:
            aus = parse_aus(str(cell("aus") or ""))
        except ValueError as exc:
            raise AnnotationError(
                f"{path}: row {i}, column {label.get('aus', 'aus')!r}: {exc}"
            ) from None
        emo_text = str(cell("emotion") or "others").strip().lower()
        if emo_text not in EMOTION_ALIASES:
            raise AnnotationError(
                f"{path}: row {i}, column {label.get('emotion', 'emotion')!r}: {emo_text!r} is "
                f"not an emotion this reader knows ({', '.join(sorted(EMOTION_ALIASES))})"
            )
        kind = rule.kind(onset, apex, offset, fps)
        override = ""
        sheet_kind = _sheet_kind(cell("type"))
        if sheet_kind is not None and sheet_kind is not kind:
            override = f"as coded in {dataset or path.name} ({cell('type')})"
            kind = sheet_kind
        subject = str(cell("subject") or "").strip()
        clip = str(cell("clip") or "").strip()
        anns.append(
            Annotation(
                f"{subject}-{clip}-{len(anns) + 1:04d}" if subject or clip else f"e{i}",
                onset,
                apex,
                offset,
                kind,
                aus,
                Emotion(EMOTION_ALIASES[emo_text]),
                dataset or path.stem,
                str(cell("notes") or ""),
                override,
                subject,
                clip,
            )
        )
    if not anns:
        raise AnnotationError(f"{path}: no annotation rows")
    return AnnotationTable(
        anns, fps, dataset or path.stem, rule, str(path), file_sha256(path), warnings
    )


def _looks_headerless(rows: list[list[Any]]) -> bool:
    """CAS(ME)^2's sheet: the first row already holds numbers in the frame columns."""
    if not rows or len(rows[0]) < 5:
        return False
    try:
        [float(str(rows[0][k])) for k in (2, 4)]
    except ValueError:
        return False
    return True

"""The annotation table, FACS notation, the ME rule and the public coding-sheet readers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from mmmelab.analysis.annotations import (
    Annotation,
    AnnotationError,
    AnnotationTable,
    Kind,
    MeRule,
    event_times,
    parse_aus,
    read_sheet,
    read_table,
    write_table,
)


def test_aus_in_facs_notation():
    aus = parse_aus("L12+14")
    assert [(a.side, a.number) for a in aus] == [("L", 12), ("", 14)]
    aus = parse_aus("4(B/C)+7B")
    assert [(a.number, a.intensity) for a in aus] == [(4, "B/C"), (7, "B")]
    assert [a.code for a in parse_aus("AU1+AU2+M57")] == ["1", "2", "M57"]
    assert parse_aus("") == [] and parse_aus("-") == []
    for bad in ("12++14", "L12x", "AU", "12+foo"):
        with pytest.raises(ValueError, match="an empty AU|not an AU in FACS notation"):
            parse_aus(bad)


def test_me_rule_at_150_fps_counts_frames_inclusively():
    rule = MeRule()
    assert rule.kind(0, 60, 74, 150) is Kind.ME  # 75 frames = 500 ms
    assert rule.kind(0, 60, 75, 150) is Kind.MAE  # 76 frames
    assert rule.kind(0, 36, 200, 150) is Kind.ME  # onset->apex 37 frames <= 37.5
    assert rule.kind(0, 37, 200, 150) is Kind.MAE
    assert rule.kind(0, None, 200, 150) is Kind.MAE
    assert MeRule(counting="interval").kind(0, 60, 75, 150) is Kind.ME  # 75/150 s = 500 ms
    assert rule.kind(0, 20, 99, 200) is Kind.ME  # the rule scales with fps (DFME)


def _table() -> AnnotationTable:
    anns = [
        Annotation("me-1", 100, 120, 150, aus=parse_aus("L12"), coder="ana"),
        Annotation("mae-1", 400, None, 700, aus=parse_aus("4+7"), coder="ana"),
    ]
    return AnnotationTable(anns, 150.0, "ana").classify()


def test_round_trip_with_times_from_the_journal_across_a_dropped_frame(tmp_path: Path):
    nf = np.r_[np.arange(0, 110), np.arange(112, 1000)]  # frames 110 and 111 were dropped
    master = 1000.0 + nf / 150.0
    path = write_table(_table(), tmp_path / "annotations" / "coder-ana.tsv", camera=(nf, master))
    back = read_table(path)
    assert [a.kind for a in back.annotations] == [Kind.ME, Kind.MAE]
    assert back.annotations[1].apex is None and back.fps == 150.0
    rows = list(csv.DictReader(path.read_text().splitlines(), delimiter="\t"))
    assert float(rows[0]["onset_s"]) == pytest.approx(1000.0 + 100 / 150.0, abs=1e-6)
    assert float(rows[0]["offset_s"]) == pytest.approx(1001.0, abs=1e-6)
    assert rows[1]["apex_s"] == "n/a"
    # a dropped frame's time is interpolated, never renumbered
    assert event_times(nf, master, np.array([111.0]))[0] == pytest.approx(1000 + 111 / 150)
    assert np.isnan(event_times(nf, master, np.array([5000.0]))[0])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("onset_frame", "abc", "row 2, column 'onset_frame': 'abc' is not a frame number"),
        ("onset_frame", "12.5", "row 2, column 'onset_frame'"),
        ("apex_frame", "10", "row 2, column 'apex_frame': 10 is not between"),
        ("offset_frame", "50", "row 2, column 'offset_frame': 50 is before the onset 100"),
        ("emotion", "joy", "row 2, column 'emotion': 'joy' is not an emotion"),
        ("aus", "12++4", "row 2, column 'aus'"),
        ("kind", "micro", "row 2, column 'kind'"),
        ("id", "mae-1", "row 3, column 'id': 'mae-1' is used twice"),
    ],
)
def test_every_bad_cell_is_named(tmp_path: Path, column: str, value: str, message: str):
    path = write_table(_table(), tmp_path / "a.tsv")
    rows = list(csv.reader(path.read_text().splitlines(), delimiter="\t"))
    rows[1][rows[0].index(column)] = value
    with path.open("w", newline="") as fh:
        csv.writer(fh, delimiter="\t").writerows(rows)
    with pytest.raises(AnnotationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_table(path)


def test_missing_column_and_sidecar(tmp_path: Path):
    path = write_table(_table(), tmp_path / "a.tsv")
    text = path.read_text().replace("aus\t", "au\t", 1)
    path.write_text(text)
    with pytest.raises(AnnotationError, match="row 1: missing column"):
        read_table(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(AnnotationError, match="missing"):
        read_table(path)


def test_kind_disagreeing_with_the_rule_needs_a_reason(tmp_path: Path):
    path = write_table(_table(), tmp_path / "a.tsv")
    text = path.read_text().replace("me-1\tME", "me-1\tMaE")
    path.write_text(text)
    table = read_table(path)
    assert table.annotations[0].kind is Kind.ME and "disagrees" in table.warnings[0]
    path.write_text(text.replace("ana\t\t\t", "ana\t\tcoder sure\t", 1))
    table = read_table(path)
    assert table.annotations[0].kind is Kind.MAE and table.annotations[0].kind_override


def _xlsx(path: Path, rows: list[list]) -> Path:
    book = openpyxl.Workbook()
    for r in rows:
        book.active.append(r)
    book.save(path)
    return path


def test_casme2_sheet(tmp_path: Path):
    head = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
            "Estimated Emotion"]  # fmt: skip
    path = _xlsx(tmp_path / "CASME2-coding.xlsx", [
        head, ["01", "EP02_01f", 46, 59, 86, "12", "happiness"],
        ["01", "EP03_02", 131, 139, 161, "R12+15", "repression"],
        ["02", "EP19_08", 1, 70, 150, "4+7", "disgust"],
    ])  # fmt: skip
    table = read_sheet(path, fps=200.0, dataset="CASME II")
    assert len(table) == 3
    a = table.annotations[0]
    assert (a.subject, a.clip, a.onset, a.apex, a.offset) == ("01", "EP02_01f", 46, 59, 86)
    assert table.annotations[1].emotion.value == "others"
    assert table.annotations[2].kind is Kind.MAE  # 150 frames at 200 fps = 750 ms
    bad = _xlsx(tmp_path / "bad.xlsx", [head, ["01", "EP02", 46, "x", 86, "12", "happiness"]])
    with pytest.raises(AnnotationError, match=r"bad.xlsx: row 2, column 'ApexFrame'"):
        read_sheet(bad, fps=200.0)
    bad = _xlsx(tmp_path / "bad2.xlsx", [head, ["01", "EP02", 46, 50, 86, "12", "elated"]])
    with pytest.raises(AnnotationError, match=r"row 2, column 'Estimated Emotion'"):
        read_sheet(bad, fps=200.0)


def test_samm_sheet_with_preamble_unannotated_apex_and_fractional_frames(tmp_path: Path):
    path = _xlsx(tmp_path / "SAMM_codes.xlsx", [
        ["SAMM Micro-Movement Database - FACS Codes"], ["Coded by two FACS coders"], [],
        ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
         "Duration", "Type", "Action Units", "Estimated Emotion", "Notes"],
        ["006", "006_1_2", 1, 5562, 5588, 5632, 71, "Micro - 1/2", "4+7", "Anger", ""],
        ["006", "006_1_3", 1, 3912, -1, 3948, 37, "Micro - 1/2", "R14", "Contempt", "no apex"],
        ["007", "007_6_1", 6, 1210.5, 1250, 1460, 250, "Macro", "12", "Happiness", ""],
    ])  # fmt: skip
    table = read_sheet(path, fps=200.0, dataset="SAMM")
    assert len(table) == 3
    assert table.annotations[1].apex is None and table.annotations[1].notes == "no apex"
    assert table.annotations[2].onset == 1211 and "fractional" in table.warnings[0]
    assert table.annotations[2].kind is Kind.MAE
    bad = _xlsx(tmp_path / "bad.xlsx", [["title"], ["Subject", "Onset Frame", "Offset Frame"],
                                        ["006", 100, 90]])  # fmt: skip
    with pytest.raises(AnnotationError, match=r"row 3, column 'offset_frame': 90 is before"):
        read_sheet(bad, fps=200.0)


def test_cas_me_2_headerless_csv_keeps_the_sheets_type_as_an_override(tmp_path: Path):
    path = tmp_path / "casme2code.csv"
    path.write_text(
        "1,anger1_1,557,572,608,4+10+14+15,negative_1,macro-expression,anger\n"
        "1,anger1_2,2854,2860,2866,4+7,disgust,micro-expression,anger\n"
    )
    with pytest.raises(AnnotationError, match="row 1, column 'emotion'"):
        read_sheet(path, fps=30.0, layout="casme^2")
    path.write_text(path.read_text().replace("negative_1", "anger"))
    table = read_sheet(path, fps=30.0, layout="casme^2", dataset="CAS(ME)^2")
    assert [a.kind for a in table.annotations] == [Kind.MAE, Kind.ME]
    # 52 frames at 30 fps is a MaE by our rule; the sheet says macro too: no override
    assert not table.annotations[0].kind_override


def test_sheet_without_a_header_is_refused(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(AnnotationError, match="no header row"):
        read_sheet(path, fps=30.0)

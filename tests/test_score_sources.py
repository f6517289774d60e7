"""Archive readers of the score job on a real local Ray: mbox, .eml folders, CSV with a column mapping,
and a salted archive whose every row is accounted for (read = scored + rejected) through the real job."""

from __future__ import annotations

import csv
import json
import mailbox
from email.message import EmailMessage

import pandas as pd
import pytest

from conftest import write_jsonl
from jobs.common import job_main
from pipeline.config import ConfigError, load_config
from pipeline.score.config import ScoreConfig


def mail(subject: str, sender: str = "Dana Advisor <dana@firm.com>", to: str = "client@home.net",
         msg_id: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Date"] = "Tue, 01 Oct 2024 10:30:00 +0200"
    if msg_id:
        m["Message-ID"] = msg_id
    return m


def multipart() -> EmailMessage:
    m = mail("Re: Harbor fund", msg_id="<thread-1@firm.com>")
    m.set_content("I guarantee you will not lose a cent.\nFrom now on call me any time.\n\n"
                  "On Mon, 30 Sep 2024, client wrote:\n> Is the Harbor fund safe for my savings?\n")
    m.add_alternative("<p>I guarantee you will <b>not</b> lose a cent.</p>", subtype="html")
    m.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="factsheet.pdf")
    return m


def html_only() -> EmailMessage:
    m = mail("Quarterly note", msg_id="<html-1@firm.com>")
    m.set_content("<html><head><style>p {color: red}</style><script>track()</script></head><body>"
                  "<div>Returns of 12% a year &amp; no risk at all.</div><p>Call me.</p></body></html>",
                  subtype="html")
    return m


def attachments_only() -> EmailMessage:
    m = mail("Statement", msg_id="<att-1@firm.com>")
    m.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="statement.pdf")
    return m


def read(cfg: ScoreConfig) -> pd.DataFrame:
    from pipeline.score.units import read_archive

    return read_archive(cfg).to_pandas().sort_values(["file", "line"]).reset_index(drop=True)


def test_mbox_with_multipart_html_and_attachment_only_messages(ray_session, tmp_path):
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for m in (multipart(), html_only(), attachments_only()):
        box.add(m)
    box.flush()
    rows = read(ScoreConfig(paths=[str(tmp_path / "inbox.mbox")]))
    assert list(rows["line"]) == [1, 2, 3] and list(rows["channel"]) == ["email"] * 3
    first, html, att = rows.to_dict("records")
    assert first["id"] == "<thread-1@firm.com>" and first["reason"] == ""
    assert first["timestamp"] == "2024-10-01T10:30:00+02:00"
    assert list(first["participants"]) == ["dana@firm.com", "client@home.net"]
    # The plain part is preferred; the quoted reply stays; a body line starting "From " survives mbox escaping.
    assert "Subject: Re: Harbor fund" in first["text"] and "I guarantee you will not lose a cent." in first["text"]
    assert "> Is the Harbor fund safe for my savings?" in first["text"]
    assert "\nFrom now on call me any time." in first["text"] and ">From" not in first["text"]
    assert "%PDF" not in first["text"] and "<b>" not in first["text"]
    assert html["reason"] == "" and "Returns of 12% a year & no risk at all.\n" in html["text"]
    body = html["text"].split("\n\n", 1)[1]
    assert "track()" not in body and "color" not in body and "<" not in body
    assert att["reason"] == "attachments_only" and "statement.pdf" in att["detail"] and att["text"] == ""
    assert rows["offset"].iloc[0] == 0 and rows["offset"].is_monotonic_increasing


def test_folder_of_eml_files(ray_session, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for name, m in (("a.eml", multipart()), ("b.eml", html_only()), ("c.eml", attachments_only())):
        (folder / name).write_bytes(bytes(m))
    no_id = mail("No id here")
    no_id.set_content("Plain note without a Message-ID.")
    (folder / "d.eml").write_bytes(bytes(no_id))
    rows = read(ScoreConfig(paths=[str(folder)])).set_index("file")
    rows.index = [p.rsplit("/", 1)[-1] for p in rows.index]
    assert rows.loc["a.eml", "id"] == "<thread-1@firm.com>" and "> Is the Harbor" in rows.loc["a.eml", "text"]
    assert "no risk at all" in rows.loc["b.eml", "text"]
    assert rows.loc["c.eml", "reason"] == "attachments_only"
    assert rows.loc["d.eml", "id"] == "d.eml" and rows.loc["d.eml", "text"].endswith("without a Message-ID.")


def test_csv_with_a_custom_column_mapping(ray_session, tmp_path):
    path = tmp_path / "chats.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["msg_ref", "sent_at", "body", "who", "medium"])
        w.writerow(["c1", "2024-10-01T09:00", "Advisor: guaranteed, no risk.\nClient: really, no risk?", "ana; bo",
                    "chat"])
        w.writerow(["c2", "2024-10-02T09:00", 'He said "fine", then left', '["ana", "cy"]', "sms"])
        w.writerow(["c3", "2024-10-03T09:00", "", "ana", "chat"])  # no text
        w.writerow(["c4", "oops"])  # too few fields
        w.writerow(["", "2024-10-04T09:00", "No id given", "", ""])
    cfg = load_config(ScoreConfig, None, [f"paths=[{path}]", "fields.id=msg_ref", "fields.text=body",
                                          "fields.timestamp=sent_at", "fields.participants=who",
                                          "fields.channel=medium"])
    rows = read(cfg)
    assert list(rows["line"]) == [2, 4, 5, 6, 7]  # the first record spans lines 2-3
    c1, c2, c3, c4, c5 = rows.to_dict("records")
    assert (c1["id"], c1["timestamp"], list(c1["participants"]), c1["channel"]) == (
        "c1", "2024-10-01T09:00", ["ana", "bo"], "chat")
    assert c1["text"] == "Advisor: guaranteed, no risk.\nClient: really, no risk?" and c1["reason"] == ""
    assert c2["text"] == 'He said "fine", then left' and list(c2["participants"]) == ["ana", "cy"]
    assert (c3["id"], c3["reason"]) == ("c3", "missing_text")
    assert c4["reason"] == "bad_csv_row" and "2 fields" in c4["detail"]
    assert c5["id"] == "chats.csv:7" and c5["reason"] == "" and c5["channel"] is None
    # A header without the mapped text column is one reject naming the fix.
    [missing] = read(cfg.model_copy(update={"fields": cfg.fields.model_copy(update={"text": "message"})}))[
        ["reason", "detail"]].to_dict("records")
    assert missing["reason"] == "missing_column" and "fields.text" in missing["detail"]


def test_mbox_and_eml_folder_cut_into_units_read_as_the_whole(tmp_path):
    """A plain mbox larger than unit_bytes is cut at message separators, a folder of .eml files into batches, a
    Parquet file by row groups; the units together read exactly the rows one unit per file reads (ids, message
    numbers, byte offsets, texts), and an unknown extension is one unknown_format reject."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.score.sources import Reading
    from pipeline.score.units import list_inputs, plan_units, unit_tables

    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for i in range(40):
        m = mail(f"Note {i}", msg_id=f"<n{i}@firm.com>")
        m.set_content(f"From my desk, note {i}: the fund fees are listed on page {i}.\n" * 3)
        box.add(m)
    for m in (multipart(), html_only(), attachments_only()):
        box.add(m)
    box.flush()
    for i in range(6):
        m = mail(f"Eml {i}", msg_id=f"<e{i}@firm.com>")
        m.set_content("Advisor: see the attached terms. " * 20)
        (tmp_path / f"e{i}.eml").write_bytes(bytes(m))
    texts = [f"note {i}: " + " ".join(str(i * j * 7919) for j in range(80)) for i in range(50)]
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(50)], "text": texts}), tmp_path / "calls.parquet",
                   row_group_size=5)
    (tmp_path / "notes.docx").write_bytes(b"PK")

    def rows(unit_bytes):
        cfg = ScoreConfig(paths=[str(tmp_path)], unit_bytes=unit_bytes)
        units = plan_units(list_inputs(cfg.paths), cfg.unit_bytes, cfg.format)
        read = [r for u in units for t in unit_tables(u, Reading.from_config(cfg)) for r in t.to_pylist()]
        return units, sorted(read, key=lambda r: (r["file"], r["line"]))

    small_units, small = rows(1024)
    whole_units, whole = rows(1 << 30)
    kinds = [(u.format, u.kind) for u in small_units]
    assert kinds.count(("mbox", "lines")) > 3 and kinds.count(("eml", "eml")) > 1
    assert kinds.count(("parquet", "parquet")) > 1 and ("", "unknown") in kinds
    assert [(u.format, u.kind) for u in whole_units] == [("parquet", "parquet"), ("eml", "eml"), ("mbox", "lines"),
                                                         ("", "unknown")]
    raw = (tmp_path / "inbox.mbox").read_bytes()
    assert all(raw[u.start:u.start + 5] == b"From " for u in small_units if u.format == "mbox")
    assert small == whole and len(small) == 40 + 3 + 6 + 50 + 1
    mbox = [r for r in small if r["file"].endswith("inbox.mbox")]
    assert [r["line"] for r in mbox] == list(range(1, 44)) and mbox[0]["id"] == "<n0@firm.com>"
    assert all(raw[r["offset"]:r["offset"] + 5] == b"From " for r in mbox)
    assert "From my desk, note 7" in mbox[7]["text"] and mbox[-1]["reason"] == "attachments_only"
    [unknown] = [r for r in small if r["reason"] == "unknown_format"]
    assert unknown["file"].endswith("notes.docx") and "format" in unknown["detail"]


def test_old_keys_are_refused_with_the_new_names():
    with pytest.raises(ConfigError) as e:
        load_config(ScoreConfig, None, ["paths=[x]", "text_field=body", "id_field=ref", "max_chars=100"])
    message = str(e.value)
    assert "text_field: was renamed; use fields.text" in message and "use fields.id" in message
    assert "max_chars: was renamed; use max_bytes" in message


def test_salted_archive_reconciles(tiny_mistral, ray_session, tmp_path):
    """Every format in one folder, with bad lines, missing texts, over-the-cap texts and odd files: the job's
    summary accounts for every row, by reason."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.score import run

    archive = tmp_path / "archive"
    good = [{"id": f"j{i}", "text": f"Advisor: fund {i} returns are not guaranteed."} for i in range(4)]
    write_jsonl(archive / "chats.jsonl", good + [
        "{not json", "[1, 2]", {"id": "blank", "text": "   "}, {"id": "none"}, {"id": "big", "text": "é" * 300},
        json.dumps({"id": "bad-utf8", "text": "x"})[:-2]])
    (archive / "chats.jsonl").write_bytes((archive / "chats.jsonl").read_bytes() + b'{"text": "\xff\xfe"}\n')
    pq.write_table(pa.table({"id": ["p1", "p2", "p3"], "text": ["Advisor: no promises here.", None, "y" * 700]}),
                   archive / "calls.parquet")
    with open(archive / "sms.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "text"], ["s1", "Advisor: call me."], ["s2"], ["s3", "z" * 600]])
    box = mailbox.mbox(archive / "mail.mbox")
    for m in (multipart(), html_only(), attachments_only()):
        box.add(m)
    box.flush()
    note = mail("Note", msg_id="<note-1@firm.com>")
    note.set_content("Advisor: I will send the prospectus.")
    (archive / "note.eml").write_bytes(bytes(note))
    (archive / "empty.csv").write_bytes(b"")
    (archive / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (archive / "backup.tar.gz").write_bytes(b"\x1f\x8b")
    out = tmp_path / "out"
    argv = [f"paths=[{archive}]", f"output_dir={out}", f"model.name_or_path={tiny_mistral}", "max_bytes=500",
            "engine.max_new_tokens=16", "explain=false", "cpus_per_actor=1"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    expected = {"invalid_json": 4, "missing_text": 3, "too_long": 3, "bad_csv_row": 1, "attachments_only": 1,
                "empty_file": 1, "unreadable_file": 1, "unknown_format": 1}
    assert summary["rejects_by_reason"] == expected
    # scored: 4 JSON lines, 1 Parquet row, 1 CSV row, 2 mbox messages, 1 .eml
    assert (summary["scored"], summary["rejected"]) == (9, sum(expected.values()))
    assert summary["read"] == summary["scored"] + summary["rejected"]
    scores = pd.read_parquet(out / "scores")
    assert sorted(scores["id"]) == sorted(["j0", "j1", "j2", "j3", "p1", "s1", "<thread-1@firm.com>",
                                           "<html-1@firm.com>", "<note-1@firm.com>"])
    thread = scores.set_index("id").loc["<thread-1@firm.com>"]  # the archive's metadata kept in the scores
    assert thread["timestamp"] == "2024-10-01T10:30:00+02:00" and thread["channel"] == "email"
    assert list(thread["participants"]) == ["dana@firm.com", "client@home.net"] and thread["windows"] == 1
    assert set(scores.loc[scores["channel"] == "email", "file"].map(lambda p: p.rsplit("/", 1)[-1])) == {
        "mail.mbox", "note.eml"}
    rejects = [json.loads(line) for line in open(out / "rejects.jsonl")]
    assert len(rejects) == summary["rejected"] and all(r["reason"] and r["detail"] for r in rejects)

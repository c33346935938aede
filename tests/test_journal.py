"""The session journal: fsync'd appends, reload, torn last lines, meta files."""

from __future__ import annotations

from pathlib import Path

from streamer.events import Final, Word
from streamer.storage.journal import STATUS_ENDED, STATUS_LIVE, JournalStore, SessionMeta, read_finals


def final(i: int) -> Final:
    return Final(i, i // 2, i * 1.0, i + 0.8, f"word{i}.", (Word(i * 1.0, i + 0.8, f"word{i}.", 0.9),))


def test_append_and_reload(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    journal = store.journal("s1")
    assert journal.open() == ()
    journal.append(final(0))
    journal.append([final(1), final(2)])
    journal.close()
    again = store.journal("s1")
    assert again.load() == (final(0), final(1), final(2))


def test_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    journal = JournalStore(tmp_path).journal("s1")
    journal.open()
    journal.append([final(0), final(1)])
    journal.close()
    with journal.finals_path.open("ab") as fh:
        fh.write(b'{"index": 2, "utterance_id": 1, "sta')
    loaded = read_finals(journal.finals_path)
    assert loaded.torn and loaded.finals == (final(0), final(1))
    assert journal.open() == (final(0), final(1))
    journal.append(final(2))
    journal.close()
    assert journal.load() == (final(0), final(1), final(2))
    assert journal.finals_path.read_bytes().endswith(b"\n")


def test_unterminated_last_line_and_zero_tail(tmp_path: Path) -> None:
    journal = JournalStore(tmp_path).journal("s1")
    journal.open()
    journal.append(final(0))
    journal.close()
    whole = journal.finals_path.read_bytes()
    journal.finals_path.write_bytes(whole + whole.rstrip(b"\n") + b"\n" + b"\x00" * 40)
    assert journal.load() == (final(0), final(0))
    journal.finals_path.write_bytes(whole + whole.rstrip(b"\n"))  # unterminated: never acknowledged
    assert journal.load() == (final(0),)


def test_corrupt_middle_line_is_skipped(tmp_path: Path) -> None:
    journal = JournalStore(tmp_path).journal("s1")
    journal.open()
    journal.append(final(0))
    journal.close()
    line = journal.finals_path.read_bytes()
    journal.finals_path.write_bytes(line + b"garbage\n" + line)
    loaded = read_finals(journal.finals_path)
    assert loaded.finals == (final(0), final(0)) and not loaded.torn


def test_meta_roundtrip_and_interrupted_sessions(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    journal = store.journal("talk")
    journal.open()
    journal.append(final(4))
    meta = SessionMeta(id="talk", title="Talk", created=1.0, status=STATUS_LIVE, time=3.0)
    journal.write_meta(meta)
    assert journal.read_meta() == meta
    assert store.session_ids() == ["talk"]
    assert store.mark_interrupted() == ["talk"]
    fixed = store.journal("talk").read_meta()
    assert fixed is not None and fixed.status == STATUS_ENDED and fixed.time == 4.8
    assert not list(journal.directory.glob("*.tmp"))

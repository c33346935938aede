"""Paragraphs and N-minute marks (streamer.core.paragraphs); timestamp helpers (streamer.core.timefmt)."""

from __future__ import annotations

import random

import pytest

from streamer.core.paragraphs import Paragraph, ParagraphBuilder, format_mark_minutes, paragraphs
from streamer.core.timefmt import format_srt_time, format_vtt_time
from streamer.events import Final, Word, join_words

VOCAB = ("the", "scheduler", "hands", "tasks", "to", "workers", "and", "memory", "cluster", "data", "we")


def synthetic_finals(total_seconds: float = 68 * 60, seed: int = 7) -> list[Final]:
    """A final every ~7 s; a sentence ends every 3rd final; a new utterance every 5th final."""
    rng = random.Random(seed)
    finals: list[Final] = []
    t = 0.0
    utterance = 0
    while t < total_seconds:
        index = len(finals)
        if index % 5 == 0:
            utterance += 1
        words: list[Word] = []
        wt = t
        while wt < t + 5.0:
            duration = rng.uniform(0.15, 0.35)
            words.append(Word(round(wt, 3), round(wt + duration, 3), rng.choice(VOCAB)))
            wt += duration + 0.05
        if index % 3 == 2:
            last = words[-1]
            words[-1] = Word(last.start, last.end, last.text + ".")
        finals.append(Final(index, utterance, words[0].start, words[-1].end, join_words(words), tuple(words)))
        t += 7.0 + rng.uniform(-1.0, 1.0)
    return finals


def final(index: int, start: float, text: str, utterance_id: int = 1, duration: float = 2.0) -> Final:
    return Final(index, utterance_id, start, start + duration, text)


def is_candidate(finals: list[Final], position: int) -> bool:
    if position == 0:
        return True
    previous = finals[position - 1]
    return finals[position].utterance_id != previous.utterance_id or previous.ends_sentence


def test_marks_every_four_minutes_across_the_hour() -> None:
    finals = synthetic_finals()
    assert finals[-1].start >= 68 * 60 - 10
    result = paragraphs(finals, 4)

    assert [p.mark_minutes for p in result] == [None, *range(4, 65, 4)]
    assert 60 in [p.mark_minutes for p in result]
    # Every final appears once, in order.
    assert [f for p in result for f in p.finals] == finals
    # Each marker time is the start of the first candidate final at or after its mark.
    candidates = [f for i, f in enumerate(finals) if is_candidate(finals, i)]
    for p in result[1:]:
        assert p.mark_minutes is not None
        expected = next(f for f in candidates if f.start >= p.mark_minutes * 60)
        assert p.finals[0] is expected
        assert p.mark_time == expected.start
    # No paragraph starts mid-sentence or mid-utterance.
    for p in result[1:]:
        position = finals.index(p.finals[0])
        previous = finals[position - 1]
        assert previous.ends_sentence or previous.utterance_id != p.finals[0].utterance_id
    # The data must exercise the rule: some marks fall on a final that is not a candidate.
    first_at_or_after = [next(f for f in finals if f.start >= m * 60) for m in range(4, 65, 4)]
    assert any(f is not p.finals[0] for f, p in zip(first_at_or_after, result[1:], strict=True))


def test_sixty_minute_mark_formats_past_the_hour() -> None:
    finals = [
        final(0, 3590.0, "the end of a sentence."),
        final(1, 3596.5, "Then a new one that runs"),
        final(2, 3600.4, "past the hour."),
        final(3, 3603.11, "And here the paragraph starts."),
    ]
    result = paragraphs(finals, 4)
    assert [p.mark_minutes for p in result] == [None, 60]
    assert result[1].mark_time == 3603.11
    assert result[1].finals == (finals[3],)
    assert format_srt_time(3603.11) == "01:00:03,110"


def test_several_marks_without_candidate_make_one_break_with_the_latest_mark() -> None:
    # One utterance without a sentence end from 7:00 to 13:00, so marks 8 and 12 pass with no candidate.
    finals = [final(0, 10.0, "Intro.", utterance_id=1)]
    finals += [final(i, 420.0 + 30.0 * (i - 1), "and so on", utterance_id=2) for i in range(1, 13)]
    finals.append(final(13, 790.0, "done.", utterance_id=2))
    finals.append(final(14, 800.0, "Next sentence.", utterance_id=2))
    result = paragraphs(finals, 4)
    assert [p.mark_minutes for p in result] == [None, 4, 12]
    assert result[1].mark_time == 420.0
    assert result[2].mark_time == 800.0


def test_long_silence_labels_with_latest_mark_passed() -> None:
    finals = [final(0, 5.0, "Hello.", utterance_id=1), final(1, 13 * 60 + 2.0, "Back again.", utterance_id=2)]
    result = paragraphs(finals, 4)
    assert [(p.mark_minutes, p.mark_time) for p in result] == [(None, None), (12, 782.0)]


def test_utterance_change_is_a_candidate_even_mid_sentence() -> None:
    finals = [
        final(0, 230.0, "no sentence end", utterance_id=1),
        final(1, 241.0, "new utterance", utterance_id=2),
    ]
    assert [p.mark_minutes for p in paragraphs(finals, 4)] == [None, 4]


def test_mid_sentence_final_after_mark_is_not_a_break() -> None:
    finals = [
        final(0, 235.0, "a sentence that", utterance_id=1),
        final(1, 240.0, "keeps going past the mark", utterance_id=1),
        final(2, 244.0, "until here.", utterance_id=1),
        final(3, 247.5, "New sentence.", utterance_id=1),
    ]
    result = paragraphs(finals, 4)
    assert [p.finals[0].index for p in result] == [0, 3]
    assert result[1].mark_time == 247.5


def test_first_paragraph_has_no_marker_and_uses_up_passed_marks() -> None:
    finals = [
        final(0, 500.0, "Late start."),
        final(1, 600.0, "Still before twelve."),
        final(2, 721.0, "After."),
    ]
    result = paragraphs(finals, 4)
    assert [(p.mark_minutes, p.mark_time) for p in result] == [(None, None), (12, 721.0)]


def test_start_exactly_on_the_mark_counts() -> None:
    finals = [final(0, 0.0, "One."), final(1, 240.0, "Two.")]
    assert [p.mark_time for p in paragraphs(finals, 4)] == [None, 240.0]


def test_fractional_interval_and_label() -> None:
    finals = [final(i, i * 30.0, f"Sentence {i}.") for i in range(12)]
    result = paragraphs(finals, 2.5)
    assert [p.mark_minutes for p in result] == [None, 2.5, 5]
    assert [format_mark_minutes(m) for p in result if (m := p.mark_minutes) is not None] == ["2.5", "5"]


def test_empty_input_and_text() -> None:
    assert paragraphs([], 4) == []
    p = Paragraph(None, None, (final(0, 0.0, " Hello, "), final(1, 2.0, ""), final(2, 4.0, "World!")))
    assert p.text == "Hello, World!"
    assert (p.start, p.end) == (0.0, 6.0)


def test_builder_matches_function_and_reports_openings() -> None:
    finals = synthetic_finals(20 * 60)
    builder = ParagraphBuilder(4)
    assert builder.current is None
    opened = [p for f in finals if (p := builder.add(f)) is not None]
    expected = paragraphs(finals, 4)
    assert builder.paragraphs() == expected
    assert builder.closed == tuple(expected[:-1])
    assert builder.current == expected[-1]
    assert [(p.mark_minutes, p.mark_time, p.finals[0]) for p in opened] == [
        (p.mark_minutes, p.mark_time, p.finals[0]) for p in expected
    ]
    assert all(len(p.finals) == 1 for p in opened)


@pytest.mark.parametrize("minutes", [0, -1.0])
def test_builder_rejects_non_positive_interval(minutes: float) -> None:
    with pytest.raises(ValueError):
        ParagraphBuilder(minutes)


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (3603.11, "01:00:03,110", "01:00:03.110"),
        (243.11, "00:04:03,110", "00:04:03.110"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (4079.5, "01:07:59,500", "01:07:59.500"),
        (100 * 3600 + 1.001, "100:00:01,001", "100:00:01.001"),
        (-0.2, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_time_formats(seconds: float, srt: str, vtt: str) -> None:
    assert format_srt_time(seconds) == srt
    assert format_vtt_time(seconds) == vtt

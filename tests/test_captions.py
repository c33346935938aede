"""Subtitle cues from finals (streamer.core.captions)."""

from __future__ import annotations

import random

import pytest

from streamer.config import TranscriptConfig
from streamer.core.captions import Cue, cues
from streamer.events import Final, Word, join_words

CONFIG = TranscriptConfig()
VOCAB = (
    "the", "scheduler", "hands", "tasks", "to", "workers", "and", "why", "that", "matters", "when", "data",
    "no", "longer", "fits", "in", "memory,", "cluster", "dashboard", "OK", "distributed", "computation",
)  # fmt: skip


def synthetic_finals(total_seconds: float, seed: int = 11) -> list[Final]:
    """Finals every ~7 s with varied word lengths, sentence ends, pauses and utterance changes."""
    rng = random.Random(seed)
    finals: list[Final] = []
    t = 0.0
    utterance = 0
    while t < total_seconds:
        index = len(finals)
        if index % 4 == 0:
            utterance += 1
        words: list[Word] = []
        wt = t
        while wt < t + 5.5:
            duration = rng.uniform(0.1, 0.4)
            words.append(Word(round(wt, 3), round(wt + duration, 3), rng.choice(VOCAB)))
            wt += duration + (0.7 if rng.random() < 0.05 else 0.04)
        if index % 3 == 1:
            last = words[-1]
            words[-1] = Word(last.start, last.end, last.text.rstrip(",") + "?")
        finals.append(Final(index, utterance, words[0].start, words[-1].end, join_words(words), tuple(words)))
        t += 7.0 + rng.uniform(-0.8, 0.8)
    return finals


def split(text: str) -> list[str]:
    return text.split()


def timed_words(
    texts: list[str], start: float = 0.0, step: float = 0.3, gap: float = 0.05
) -> tuple[Word, ...]:
    words = []
    t = start
    for text in texts:
        words.append(Word(round(t, 3), round(t + step, 3), text))
        t += step + gap
    return tuple(words)


def final_of(index: int, words: tuple[Word, ...], utterance_id: int = 1) -> Final:
    return Final(index, utterance_id, words[0].start, words[-1].end, join_words(words), words)


def cue_words(cue_list: list[Cue]) -> list[str]:
    return [word for cue in cue_list for line in cue.lines for word in line.split(" ")]


def assert_within_limits(cue_list: list[Cue], config: TranscriptConfig) -> None:
    assert [c.index for c in cue_list] == list(range(1, len(cue_list) + 1))
    for cue in cue_list:
        assert 1 <= len(cue.lines) <= config.caption_lines
        for line in cue.lines:
            assert line and line == line.strip() and "  " not in line
            assert len(line) <= config.caption_chars or " " not in line
        words = " ".join(cue.lines).split(" ")
        assert cue.start <= cue.end
        assert cue.end - cue.start <= config.caption_max_duration + 1e-9 or len(words) == 1
    for before, after in zip(cue_list, cue_list[1:], strict=False):
        assert before.end <= after.start


@pytest.mark.parametrize(
    "config",
    [CONFIG, TranscriptConfig(caption_chars=32, caption_lines=1, caption_max_duration=3.0)],
)
def test_long_stream_respects_limits_and_keeps_every_word(config: TranscriptConfig) -> None:
    finals = synthetic_finals(68 * 60)
    result = cues(finals, config)
    assert_within_limits(result, config)
    # No word lost or duplicated, order kept.
    assert " ".join(cue_words(result)) == " ".join(f.text for f in finals)
    assert cue_words(result) == [w.text for f in finals for w in f.words]
    # Times come from the words.
    all_words = [w for f in finals for w in f.words]
    starts = {w.start for w in all_words}
    ends = {w.end for w in all_words}
    assert all(c.start in starts and c.end in ends for c in result)
    assert result[0].start == finals[0].start and result[-1].end == finals[-1].end
    # Sanity on the count: at least as many cues as the character budget requires.
    total_chars = len(" ".join(f.text for f in finals))
    assert len(result) >= total_chars / (config.caption_chars * config.caption_lines + 1)
    assert len(result) < len(all_words) / 2


def test_utterance_change_always_ends_a_cue() -> None:
    finals = synthetic_finals(10 * 60)
    result = cues(finals, CONFIG)
    utterance_of_word: list[int] = [f.utterance_id for f in finals for _ in f.words]
    position = 0
    for cue in result:
        count = len(" ".join(cue.lines).split(" "))
        assert len(set(utterance_of_word[position : position + count])) == 1
        position += count
    assert position == len(utterance_of_word)


def test_balanced_lines() -> None:
    # 47 characters: greedy filling would give a 40-character line and a 6-character one.
    texts = split("This is a caption line that nearly fills it all")
    result = cues([final_of(0, timed_words(texts))], CONFIG)
    assert len(result) == 1
    assert result[0].lines == ("This is a caption line", "that nearly fills it all")


def test_balanced_lines_with_long_words() -> None:
    texts = ["Internationalization", "and", "localization", "are", "demanding", "disciplines."]
    result = cues([final_of(0, timed_words(texts))], CONFIG)
    assert len(result) == 1
    lengths = [len(line) for line in result[0].lines]
    assert len(lengths) == 2 and max(lengths) <= 42
    assert abs(lengths[0] - lengths[1]) <= len("localization") + 1


def test_short_text_stays_on_one_line() -> None:
    result = cues([final_of(0, timed_words(["Hello", "there."]))], CONFIG)
    assert [c.lines for c in result] == [("Hello there.",)]


def test_very_long_word_stands_alone() -> None:
    long_word = "Pneumonoultramicroscopicsilicovolcanoconiosis-and-more-and-more"
    assert len(long_word) > CONFIG.caption_chars
    texts = ["It", "is", "called", long_word, "they", "said"]
    result = cues([final_of(0, timed_words(texts))], CONFIG)
    assert_within_limits(result, CONFIG)
    lines = [line for c in result for line in c.lines]
    assert long_word in lines
    assert cue_words(result) == texts


def test_long_word_with_one_line_cues() -> None:
    long_word = "x" * 60
    config = TranscriptConfig(caption_lines=1)
    result = cues([final_of(0, timed_words(["a", long_word, "b"]))], config)
    assert [c.lines for c in result] == [("a",), (long_word,), ("b",)]


def test_empty_input() -> None:
    assert cues([], CONFIG) == []
    assert cues([Final(0, 1, 0.0, 1.0, "")], CONFIG) == []
    assert cues([Final(0, 1, 0.0, 1.0, "   ")], CONFIG) == []


def test_final_without_words_uses_its_times_and_text() -> None:
    result = cues([Final(0, 1, 12.0, 14.5, "No word timings here.")], CONFIG)
    assert result == [Cue(1, 12.0, 14.5, ("No word timings here.",))]


def test_final_without_words_long_text_is_split_within_its_span() -> None:
    text = " ".join(["word"] * 40) + "."
    result = cues([Final(0, 1, 100.0, 112.0, text)], CONFIG)
    assert_within_limits(result, CONFIG)
    assert len(result) > 1
    assert result[0].start == 100.0 and result[-1].end == pytest.approx(112.0)
    assert " ".join(cue_words(result)) == text


def test_cue_ends_at_sentence_end_when_everything_does_not_fit() -> None:
    first = split("We start with a short sentence here.")
    second = split("Then a much longer sentence follows that cannot possibly share the cue with it.")
    result = cues([final_of(0, timed_words(first + second))], CONFIG)
    assert_within_limits(result, CONFIG)
    assert " ".join(result[0].lines) == " ".join(first)


def test_cue_ends_at_pause_when_there_is_no_sentence_end() -> None:
    before = timed_words(split("so we go on and on and on about the"))
    after = timed_words(
        split("scheduler and the workers and the queue and the memory"), start=before[-1].end + 0.8
    )
    result = cues([final_of(0, before + after)], CONFIG)
    assert " ".join(result[0].lines) == join_words(before)
    assert result[0].end == before[-1].end and result[1].start == after[0].start


def test_cue_ends_at_clause_mark_rather_than_mid_clause() -> None:
    texts = split(
        "first we install the cluster and the dashboard, then we look at the workers and their memory"
    )
    result = cues([final_of(0, timed_words(texts))], CONFIG)
    assert result[0].lines[-1].endswith("dashboard,")


def test_max_duration_splits_slow_speech() -> None:
    words = timed_words([f"w{i}" for i in range(20)], step=0.9, gap=0.05)
    result = cues([final_of(0, words)], CONFIG)
    assert_within_limits(result, CONFIG)
    assert len(result) >= 3
    assert all(c.end - c.start <= CONFIG.caption_max_duration for c in result)
    assert cue_words(result) == [w.text for w in words]


def test_overlapping_word_times_do_not_make_overlapping_cues() -> None:
    a = final_of(0, timed_words(["One", "two."], start=10.0), utterance_id=1)
    b = final_of(1, timed_words(["Three", "four."], start=10.4), utterance_id=2)
    result = cues([a, b], CONFIG)
    assert len(result) == 2
    assert result[0].end <= result[1].start <= result[1].end

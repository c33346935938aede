"""The commit policy (streamer.core.agreement): LocalAgreement-n over scripted timed hypotheses."""

from __future__ import annotations

import pytest

from streamer.core.agreement import TAIL_GUARD, LocalAgreement, normalize_word
from streamer.events import Word

STEP = 0.3
LENGTH = 0.25
SENTENCE = "the scheduler hands tasks to workers and keeps the results in memory"
FAR = 100.0  # a window end far past every word: the tail guard never applies


def words(text: str, start: float = 0.0) -> list[Word]:
    """Words of `text`, one every 0.3 s from `start`, each 0.25 s long."""
    return [
        Word(round(start + i * STEP, 3), round(start + i * STEP + LENGTH, 3), w)
        for i, w in enumerate(text.split())
    ]


def texts(ws: list[Word]) -> list[str]:
    return [w.text for w in ws]


def test_a_single_hypothesis_commits_nothing() -> None:
    agreement = LocalAgreement(2)
    assert agreement.insert(words("one two three"), FAR) == []
    assert agreement.committed == []
    assert texts(agreement.unstable) == ["one", "two", "three"]


def test_two_hypotheses_commit_their_common_prefix_only() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three"), FAR)
    committed = agreement.insert(words("one two four five"), FAR)
    assert texts(committed) == ["one", "two"]
    assert texts(agreement.committed) == ["one", "two"]
    assert texts(agreement.unstable) == ["four", "five"]


def test_a_word_that_changes_is_not_committed_nor_anything_after_it() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three four"), FAR)
    committed = agreement.insert(words("one too three four"), FAR)
    assert texts(committed) == ["one"]


def test_disagreeing_first_words_commit_nothing() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("won two"), FAR)
    assert agreement.insert(words("one two"), FAR) == []


def test_agreement_needs_consecutive_hypotheses() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two"), FAR)
    agreement.insert(words("uno dos"), FAR)
    # Agrees with the first hypothesis but not with the one just before it.
    assert agreement.insert(words("one two"), FAR) == []


def test_punctuation_and_case_differences_still_agree_and_commit_the_latest_text() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("hello world how"), FAR)
    committed = agreement.insert(words("Hello, world. How"), FAR)
    assert texts(committed) == ["Hello,", "world.", "How"]


def test_normalize_word_keeps_letters_digits_and_apostrophes() -> None:
    assert normalize_word("Don't!") == "don't"
    assert normalize_word("Grüße,") == "grüße"
    assert normalize_word("42.") == "42"


def test_commits_continue_after_the_committed_prefix() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three"), FAR)
    assert texts(agreement.insert(words("one two three four"), FAR)) == ["one", "two", "three"]
    # The window is re-decoded from its start: the old words come back and are skipped by time.
    assert agreement.insert(words("one two three four five"), FAR) == [agreement.committed[-1]]
    assert texts(agreement.committed) == ["one", "two", "three", "four"]
    assert texts(agreement.unstable) == ["five"]


def test_words_starting_before_the_committed_end_are_old() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three"), FAR)
    agreement.insert(words("one two three"), FAR)
    assert agreement.committed_end == pytest.approx(0.85)
    # Re-decoded with different texts: still old audio, so not new words.
    assert agreement.new_words(words("won too tree four")) == words("won too tree four")[3:]


def test_repeated_old_words_with_shifted_times_are_skipped_by_ngram_overlap() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("we are going to"), FAR)
    agreement.insert(words("we are going to"), FAR)
    assert agreement.committed_end == pytest.approx(1.15)
    # A trimmed window re-decodes "going to" with later timestamps (starting after the committed end).
    redecoded = words("going to the park", start=1.2)
    assert texts(agreement.new_words(redecoded)) == ["the", "park"]
    agreement.insert(redecoded, FAR)
    committed = agreement.insert(words("going to the park now", start=1.2), FAR)
    assert texts(committed) == ["the", "park"]
    assert texts(agreement.committed) == ["we", "are", "going", "to", "the", "park"]


def test_a_genuine_repeat_long_after_the_committed_end_is_kept() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("yes"), FAR)
    agreement.insert(words("yes"), FAR)
    later = words("yes indeed", start=5.0)
    assert agreement.new_words(later) == later


def test_a_word_near_its_window_end_is_not_committed_on_that_vote() -> None:
    agreement = LocalAgreement(2)
    hypothesis = words("one two three")  # "three" ends at 0.85
    window_end = 0.85 + TAIL_GUARD / 2
    agreement.insert(hypothesis, window_end)
    assert texts(agreement.insert(hypothesis, window_end)) == ["one", "two"]
    # A later window has "three" well inside, but the previous vote was cut at its tail: not yet.
    assert agreement.insert(words("one two three four"), 2.0) == []
    assert texts(agreement.insert(words("one two three four"), 2.0)) == ["three", "four"]


def test_a_word_just_outside_the_tail_guard_is_committed() -> None:
    agreement = LocalAgreement(2)
    hypothesis = words("one two")  # "two" ends at 0.55
    window_end = 0.55 + TAIL_GUARD + 1e-6
    agreement.insert(hypothesis, window_end)
    assert texts(agreement.insert(hypothesis, window_end)) == ["one", "two"]


def test_force_commits_the_latest_hypothesis_up_to_a_time() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three four"), FAR)
    committed = agreement.force(before=0.6)  # "one" ends 0.25, "two" 0.55, "three" 0.85
    assert texts(committed) == ["one", "two"]
    assert texts(agreement.unstable) == ["three", "four"]
    assert agreement.force(before=0.1) == []


def test_force_without_a_hypothesis_commits_nothing() -> None:
    assert LocalAgreement(2).force(before=FAR) == []


def test_finish_commits_everything_new() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three"), FAR)
    agreement.insert(words("one two four"), FAR)
    committed = agreement.finish(words("one two four five"))
    assert texts(committed) == ["four", "five"]
    assert texts(agreement.committed) == ["one", "two", "four", "five"]


def test_finish_with_nothing_new_commits_nothing() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two"), FAR)
    agreement.insert(words("one two"), FAR)
    assert agreement.finish(words("one two")) == []
    assert agreement.finish([]) == []


def test_committed_words_are_never_rewritten() -> None:
    agreement = LocalAgreement(2)
    agreement.insert(words("one two three"), FAR)
    agreement.insert(words("one two three"), FAR)
    snapshot = list(agreement.committed)
    agreement.insert(words("uno dos tres cuatro"), FAR)
    agreement.insert(words("uno dos tres cuatro"), FAR)
    agreement.finish(words("uno dos tres cuatro cinco"))
    assert agreement.committed[: len(snapshot)] == snapshot
    assert texts(agreement.committed) == ["one", "two", "three", "cuatro", "cinco"]


def test_n3_needs_three_agreeing_hypotheses() -> None:
    agreement = LocalAgreement(3)
    assert agreement.insert(words("one two three"), FAR) == []
    assert agreement.insert(words("one two three"), FAR) == []
    assert texts(agreement.insert(words("one two four"), FAR)) == ["one", "two"]


def test_n3_a_disagreeing_middle_hypothesis_blocks_commit() -> None:
    agreement = LocalAgreement(3)
    agreement.insert(words("one two"), FAR)
    agreement.insert(words("won two"), FAR)
    assert agreement.insert(words("one two"), FAR) == []
    assert agreement.insert(words("one two"), FAR) == []
    assert texts(agreement.insert(words("one two"), FAR)) == ["one", "two"]


def test_incremental_hypotheses_commit_each_word_once_in_order() -> None:
    sentence = SENTENCE.split()
    agreement = LocalAgreement(2)
    committed: list[Word] = []
    for k in range(1, len(sentence) + 1):
        window_end = k * STEP
        hypothesis = [w for w in words(" ".join(sentence)) if w.start < window_end]
        committed += agreement.insert(hypothesis, window_end)
    committed += agreement.finish(words(" ".join(sentence)))
    assert texts(committed) == sentence
    assert [w.start for w in committed] == sorted(w.start for w in committed)


def test_committed_times_never_go_backwards() -> None:
    agreement = LocalAgreement(2)
    first = [Word(0.0, 1.0, "cost"), Word(1.0, 2.0, "incurred")]
    agreement.insert(first, 10.0)
    agreement.insert(first, 10.0)
    # Re-decoded audio places the next word 0.06 s before the committed end (within the overlap tolerance).
    later = [Word(1.94, 2.5, "by"), Word(2.5, 3.0, "casting")]
    agreement.insert(later, 10.0)
    committed = agreement.insert(later, 10.0)
    assert texts(committed) == ["by", "casting"]
    assert committed[0].start == 2.0 and committed[0].end == 2.5
    times = [t for w in agreement.committed for t in (w.start, w.end)]
    assert times == sorted(times)


def confident_words(spec: list[tuple[str, float]]) -> list[Word]:
    return [
        Word(round(i * STEP, 3), round(i * STEP + LENGTH, 3), text, probability)
        for i, (text, probability) in enumerate(spec)
    ]


def test_confident_words_commit_on_one_hypothesis_up_to_the_first_doubtful_one() -> None:
    agreement = LocalAgreement(2, confident=0.9, confident_context=0.6)
    hypothesis = confident_words([("one", 0.99), ("two", 0.95), ("three", 0.5), ("four", 0.99)])
    committed = agreement.insert(hypothesis, FAR)
    assert texts(committed) == ["one", "two"]
    assert texts(agreement.unstable) == ["three", "four"]


def test_confident_words_near_the_window_end_wait_for_a_second_vote() -> None:
    agreement = LocalAgreement(2, confident=0.9, confident_context=0.6)
    hypothesis = confident_words([("one", 0.99), ("two", 0.99), ("three", 0.99)])
    # "two" ends at 0.55 s and "three" at 0.85 s: with the window ending at 1.2 s only "one" and "two" have
    # 0.6 s of audio after them.
    assert texts(agreement.insert(hypothesis, 1.2)) == ["one", "two"]
    revised = confident_words([("one", 0.99), ("two", 0.99), ("tree", 0.99)])
    assert texts(agreement.insert(revised, 1.3)) == []  # changed, and only 0.45 s of audio after it
    assert texts(agreement.insert(revised, 1.4)) == ["tree"]  # two votes now


def test_without_a_confidence_threshold_one_hypothesis_commits_nothing() -> None:
    agreement = LocalAgreement(2)
    assert agreement.insert(confident_words([("one", 1.0), ("two", 1.0)]), FAR) == []

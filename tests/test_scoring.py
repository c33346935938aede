"""The scorer the accuracy tests and benchmarks share."""

from benchmarks.scoring import normalize, normalize_reference, pooled, score, wer


def test_reference_words_in_parentheses_are_scored() -> None:
    reference = "But the first Bible actually dated (which also was printed at Maintz) is later."
    assert normalize_reference(reference) == (
        "but the 1st bible actually dated which also was printed at maintz is later"
    )
    assert (
        wer(reference, "but the first bible actually dated which also was printed at maintz is later") == 0.0
    )
    # Leaving the six spoken words out is six deletions out of 14, not a perfect score.
    assert round(wer(reference, "but the first bible actually dated is later"), 4) == round(6 / 14, 4)


def test_bracketed_hypothesis_text_is_not_speech() -> None:
    assert normalize("(laughs) Hello [music] there.") == "hello there"
    assert wer("hello there", "(laughs) Hello there.") == 0.0


def test_empty_hypothesis_scores_one() -> None:
    assert wer("hello there", "") == 1.0
    assert wer("hello there", "(applause)") == 1.0


def test_scores_pool_errors_over_words() -> None:
    a = score("the cat sat down", "the hat sat down")
    b = score("good night", "good night moon")
    assert (a.errors, a.words, b.errors, b.words) == (1, 4, 1, 2)
    total = pooled([a, b])
    assert (total.errors, total.words) == (2, 6)
    assert total.wer == 2 / 6

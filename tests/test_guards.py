"""Quality guards (streamer.core.guards): non-speech, known hallucinations, repetition loops."""

from __future__ import annotations

import pytest

from streamer.config import DecodeConfig
from streamer.core.guards import compression_ratio, cut_repetition, cut_unaligned, normalize_text, screen
from streamer.engines.base import DecodedSegment
from streamer.events import Word

CONFIG = DecodeConfig()  # no_speech 0.6, logprob -1.0, compression 2.4, max_ngram_repeats 3


def words(text: str, probability: float = 0.9, start: float = 0.0) -> tuple[Word, ...]:
    return tuple(
        Word(start + i * 0.3, start + i * 0.3 + 0.25, w, probability) for i, w in enumerate(text.split())
    )


def segment(
    text: str,
    *,
    probability: float = 0.9,
    avg_logprob: float = -0.2,
    no_speech_prob: float = 0.01,
    compression: float | None = None,
    with_words: bool = True,
) -> DecodedSegment:
    ws = words(text, probability) if with_words else ()
    return DecodedSegment(
        start=ws[0].start if ws else 0.0,
        end=ws[-1].end if ws else 1.0,
        text=" " + text,
        words=ws,
        avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob,
        compression_ratio=compression_ratio(text) if compression is None else compression,
    )


def texts(ws: tuple[Word, ...] | list[Word]) -> list[str]:
    return [w.text for w in ws]


# -- screen -----------------------------------------------------------------------------------------------


def test_confident_speech_is_kept() -> None:
    screened = screen([segment("The meeting starts at nine."), segment("Please sit down.")], CONFIG)
    assert texts(screened.words) == ["The", "meeting", "starts", "at", "nine.", "Please", "sit", "down."]
    assert not screened.loop
    assert screened.dropped == 0


def test_non_speech_segment_is_dropped() -> None:
    screened = screen(
        [segment("Hello there."), segment("uh hm", no_speech_prob=0.9, avg_logprob=-1.5)], CONFIG
    )
    assert texts(screened.words) == ["Hello", "there."]
    assert screened.dropped == 1
    assert not screened.loop


@pytest.mark.parametrize(
    ("no_speech_prob", "avg_logprob"),
    [
        (0.9, -0.5),  # high no-speech probability but a confident decode
        (0.3, -2.0),  # an unsure decode but no no-speech signal
        (0.3, -1.5),  # exactly at the weak-segment no-speech bound is not above it
    ],
)
def test_non_speech_needs_both_signals(no_speech_prob: float, avg_logprob: float) -> None:
    screened = screen(
        [segment("We ship on Friday.", no_speech_prob=no_speech_prob, avg_logprob=avg_logprob)], CONFIG
    )
    assert texts(screened.words) == ["We", "ship", "on", "Friday."]
    assert screened.dropped == 0


@pytest.mark.parametrize(
    "text",
    ["Thank you for watching.", "Thanks for watching!", "Please subscribe to my channel.", "you", "Bye."],
)
def test_known_hallucination_with_low_probability_is_dropped(text: str) -> None:
    screened = screen([segment(text, probability=0.3)], CONFIG)
    assert screened.words == ()
    assert screened.dropped == 1


def test_known_hallucination_with_a_no_speech_signal_is_dropped() -> None:
    screened = screen([segment("Thank you.", probability=0.95, no_speech_prob=0.4)], CONFIG)
    assert screened.words == ()
    assert screened.dropped == 1


def test_known_hallucination_without_words_is_dropped() -> None:
    screened = screen([segment("Thank you for watching.", with_words=False)], CONFIG)
    assert screened.dropped == 1


def test_confident_thank_you_without_a_no_speech_signal_is_kept() -> None:
    screened = screen([segment("Thank you.", probability=0.92, no_speech_prob=0.05)], CONFIG)
    assert texts(screened.words) == ["Thank", "you."]
    assert screened.dropped == 0


def test_hallucination_matching_ignores_case_and_punctuation() -> None:
    screened = screen([segment("THANK YOU, for watching!!", probability=0.3)], CONFIG)
    assert screened.dropped == 1


def test_a_sentence_that_merely_contains_a_hallucination_is_kept() -> None:
    screened = screen([segment("Thank you for watching the demo.", probability=0.3)], CONFIG)
    assert len(screened.words) == 6
    assert screened.dropped == 0


def test_only_the_bad_segment_is_dropped() -> None:
    screened = screen(
        [
            segment("First point."),
            segment("Thank you for watching.", probability=0.2),
            segment("Second point."),
        ],
        CONFIG,
    )
    assert texts(screened.words) == ["First", "point.", "Second", "point."]
    assert screened.dropped == 1


def test_high_compression_ratio_segment_is_dropped_as_a_loop() -> None:
    screened = screen([segment("Okay."), segment("so so so", compression=3.1)], CONFIG)
    assert texts(screened.words) == ["Okay."]
    assert screened.loop
    assert screened.dropped == 1


def test_compression_ratio_of_a_loop_exceeds_the_threshold() -> None:
    loop = " ".join(["I'm going to go to the store."] * 20)
    normal = "The scheduler hands tasks to workers and keeps the results in memory until needed."
    assert compression_ratio(loop) > CONFIG.compression_ratio_threshold
    assert compression_ratio(normal) < CONFIG.compression_ratio_threshold
    assert compression_ratio("") == 0.0


def test_screen_cuts_a_word_loop_within_the_kept_words() -> None:
    screened = screen([segment("and then the the the the the")], CONFIG)
    assert texts(screened.words) == ["and", "then", "the"]
    assert screened.loop


def test_screen_of_nothing_is_empty() -> None:
    screened = screen([], CONFIG)
    assert screened.words == () and not screened.loop and screened.dropped == 0


def test_normalize_text_lowercases_and_strips_punctuation() -> None:
    assert normalize_text("  Thank   you, for WATCHING! ") == "thank you for watching"


# -- cut_repetition ---------------------------------------------------------------------------------------


def test_repeated_word_beyond_the_limit_is_cut_to_one() -> None:
    kept, loop = cut_repetition(words("the the the the the"), max_repeats=3)
    assert texts(kept) == ["the"]
    assert loop


def test_words_before_the_loop_are_kept_and_everything_after_it_is_cut() -> None:
    kept, loop = cut_repetition(words("we went to to to to to the park"), max_repeats=3)
    assert texts(kept) == ["we", "went", "to"]
    assert loop


def test_repeated_bigram_beyond_the_limit_is_cut() -> None:
    kept, loop = cut_repetition(words("I said I said I said I said hello"), max_repeats=3)
    assert texts(kept) == ["I", "said"]
    assert loop


def test_repeated_six_gram_is_cut() -> None:
    phrase = "one two three four five six"
    kept, loop = cut_repetition(words(" ".join([phrase] * 4)), max_repeats=3)
    assert texts(kept) == phrase.split()
    assert loop


def test_repeats_up_to_the_limit_are_kept() -> None:
    original = words("no no no I said I said I said stop")
    kept, loop = cut_repetition(original, max_repeats=3)
    assert kept == list(original)
    assert not loop


def test_repeats_are_compared_without_case_or_punctuation() -> None:
    kept, loop = cut_repetition(words("The, the. THE the!"), max_repeats=3)
    assert texts(kept) == ["The,"]
    assert loop


def test_max_repeats_is_configurable() -> None:
    assert cut_repetition(words("go go"), max_repeats=1) == ([words("go go")[0]], True)
    assert not cut_repetition(words("go go go go go"), max_repeats=5)[1]


def test_cut_repetition_of_nothing() -> None:
    assert cut_repetition([], max_repeats=3) == ([], False)


@pytest.mark.parametrize(
    "text",
    ["Привет как у тебя сегодня дела", "我们 今天 下午 去 公园", "Γεια σου τι κάνεις σήμερα φίλε"],
    ids=["russian", "chinese", "greek"],
)
def test_non_latin_words_are_not_mistaken_for_a_loop(text: str) -> None:
    original = words(text)
    kept, loop = cut_repetition(original, max_repeats=3)
    assert kept == list(original)
    assert not loop


@pytest.mark.parametrize(
    ("text", "no_speech_prob", "probability"),
    [
        ("and then we'll see you next time.", 0.44, 0.5),  # measured on lf04: some no-speech signal
        ("for the next one.", 0.05, 0.08),  # no no-speech signal, but words the model barely believes
    ],
)
def test_weak_trailing_segments_are_dropped(text: str, no_speech_prob: float, probability: float) -> None:
    spoken = segment("Prisoners were committed to it without reference to its capacity.")
    made_up = segment(text, avg_logprob=-1.4, no_speech_prob=no_speech_prob, probability=probability)
    screened = screen([spoken, made_up], CONFIG)
    assert texts(screened.words)[-1] == "capacity."
    assert screened.dropped == 1


def test_punctuation_only_words_are_dropped() -> None:
    spoken = segment("Glad to see you again, Phil.")
    dot = segment(".", avg_logprob=-0.5, no_speech_prob=0.1)
    assert texts(screen([spoken, dot], CONFIG).words) == ["Glad", "to", "see", "you", "again,", "Phil."]


# -- cut_unaligned ----------------------------------------------------------------------------------------


def timed(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(start, end, text, 0.9) for text, start, end in spec]


def without_duration(text: str, at: float) -> list[Word]:
    return [Word(at, at, w, 0.95) for w in text.split(" ")]


def test_a_run_of_words_without_duration_is_cut_as_a_loop() -> None:
    # Measured on lf02 (a final decode of 3.5 s): the speaker said "The chapel yard. 4. The middle yard."
    heard = timed(("The", 0.0, 0.52), ("chapelli", 0.52, 1.0), ("art.", 1.0, 1.52), ("4.", 2.16, 2.16))
    heard += timed(("The", 2.48, 2.6), ("middle", 2.6, 2.8), ("art.", 2.8, 2.94))
    made_up = without_duration("3. The chapelli art. 4. The middle", 2.94) + timed(("art.", 2.94, 3.16))
    kept, loop = cut_unaligned(heard + made_up, max_run=2)
    assert kept == heard
    assert loop


def test_single_words_without_duration_are_kept() -> None:
    heard = timed(("In", 0.0, 0.2), ("1465", 0.2, 0.2), ("Sweynheim", 0.3, 0.9), ("and", 0.9, 0.9))
    heard += timed(("Pannartz", 1.0, 1.6), ("began", 1.6, 1.6), ("to", 1.6, 1.6), ("print.", 1.6, 2.0))
    assert cut_unaligned(heard, max_run=2) == (heard, False)


def test_screen_cuts_unaligned_words_and_reports_a_loop() -> None:
    spoken = segment("The middle yard.")
    appended = without_duration("The middle yard. The middle yard.", 0.9)
    looping = DecodedSegment(
        0.0, 0.9, " The middle yard. The middle yard.", tuple(appended), -0.3, 0.01, compression_ratio("x")
    )
    screened = screen([spoken, looping], CONFIG)
    assert texts(screened.words) == ["The", "middle", "yard."]
    assert screened.loop

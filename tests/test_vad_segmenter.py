"""Streaming speech segmentation (streamer.core.vad) over scripted per-frame speech probabilities."""

from __future__ import annotations

import pytest

from streamer.config import VadConfig
from streamer.core.vad import FRAME_SECONDS, SPLIT_GRACE, VadSegmenter
from streamer.events import SpeechEnded, SpeechStarted

SPEECH = 0.9
SILENCE = 0.05
BETWEEN = 0.4  # between neg_threshold (0.35) and threshold (0.5)
CONFIG = VadConfig()  # threshold 0.5, neg 0.35, min_silence 0.6, speech_pad 0.25, min_speech 0.25
MIN_SILENCE_FRAMES = round(CONFIG.min_silence / FRAME_SECONDS)  # 19
MIN_SPEECH_FRAMES = round(CONFIG.min_speech / FRAME_SECONDS)  # 8

Event = SpeechStarted | SpeechEnded


def frames(*runs: tuple[float, int]) -> list[float]:
    """A probability sequence from (probability, frame count) runs."""
    return [p for p, count in runs for _ in range(count)]


def run(
    probabilities: list[float],
    config: VadConfig = CONFIG,
    *,
    flush: bool = False,
    start_time: float = 0.0,
    first_utterance_id: int = 0,
) -> list[tuple[int, Event]]:
    """Push every probability; return (index of the frame whose push emitted it, event)."""
    segmenter = VadSegmenter(config, start_time, first_utterance_id)
    out: list[tuple[int, Event]] = []
    for i, p in enumerate(probabilities):
        out.extend((i, e) for e in segmenter.push(p))
    if flush:
        out.extend((len(probabilities), e) for e in segmenter.flush())
    return out


def events(
    probabilities: list[float],
    config: VadConfig = CONFIG,
    start_time: float = 0.0,
    first_utterance_id: int = 0,
) -> list[Event]:
    out = run(probabilities, config, start_time=start_time, first_utterance_id=first_utterance_id)
    return [e for _, e in out]


def t(frame: int) -> float:
    return frame * FRAME_SECONDS


def is_event(event: Event, kind: type[Event], utterance_id: int, time: float) -> bool:
    return isinstance(event, kind) and event.utterance_id == utterance_id and abs(event.time - time) < 1e-9


def test_silence_produces_no_events() -> None:
    assert events(frames((SILENCE, 500))) == []


def test_one_utterance_starts_a_pad_before_its_first_speech_frame() -> None:
    out = run(frames((SILENCE, 50), (SPEECH, 40), (SILENCE, 40)))
    assert [type(e) for _, e in out] == [SpeechStarted, SpeechEnded]
    (start_frame, started), (end_frame, ended) = out
    assert is_event(started, SpeechStarted, 0, t(50) - CONFIG.speech_pad)
    # The start is known once min_speech of speech has been heard.
    assert start_frame == 50 + MIN_SPEECH_FRAMES - 1
    # The end is the last speech frame's end plus the pad, known only after min_silence of silence.
    assert is_event(ended, SpeechEnded, 0, t(90) + CONFIG.speech_pad)
    assert end_frame == 89 + MIN_SILENCE_FRAMES
    assert ended.time <= t(end_frame + 1)  # never in the future


def test_end_is_not_emitted_before_min_silence() -> None:
    out = run(frames((SPEECH, 40), (SILENCE, MIN_SILENCE_FRAMES - 1)))
    assert [type(e) for _, e in out] == [SpeechStarted]


def test_start_is_clipped_at_the_stream_start() -> None:
    started = events(frames((SILENCE, 2), (SPEECH, 20)))[0]
    assert started == SpeechStarted(0, 0.0)


def test_start_is_clipped_at_the_previous_utterance_end() -> None:
    config = VadConfig(speech_pad=0.5)
    out = events(frames((SPEECH, 30), (SILENCE, MIN_SILENCE_FRAMES + 1), (SPEECH, 30)), config)
    assert [type(e) for e in out] == [SpeechStarted, SpeechEnded, SpeechStarted]
    first_end, second_start = out[1], out[2]
    assert isinstance(first_end, SpeechEnded) and isinstance(second_start, SpeechStarted)
    # Unclipped, the second start (first speech frame - 0.5 s) would lie before the first end.
    assert t(30 + MIN_SILENCE_FRAMES + 1) - config.speech_pad < first_end.time
    assert second_start.time == pytest.approx(first_end.time)
    assert second_start.utterance_id == first_end.utterance_id + 1


def test_utterances_never_overlap_and_ids_increase() -> None:
    probs = frames(
        (SILENCE, 10), (SPEECH, 20), (SILENCE, 25), (SPEECH, 15), (SILENCE, 40), (SPEECH, 60), (SILENCE, 30)
    )
    out = events(probs)
    assert [type(e) for e in out] == [SpeechStarted, SpeechEnded] * 3
    times = [e.time for e in out]
    assert times == sorted(times)
    assert [e.utterance_id for e in out] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("blip", [1, 3, MIN_SPEECH_FRAMES - 1])
def test_blips_shorter_than_min_speech_produce_no_events(blip: int) -> None:
    assert events(frames((SILENCE, 20), (SPEECH, blip), (SILENCE, 60))) == []


def test_blip_is_dropped_and_later_speech_starts_a_new_candidate() -> None:
    out = events(frames((SPEECH, 3), (SILENCE, 30), (SPEECH, 20), (SILENCE, 30)))
    assert is_event(out[0], SpeechStarted, 0, t(33) - CONFIG.speech_pad)


def test_speech_frames_of_a_candidate_add_up_across_short_gaps() -> None:
    # 5 + 5 speech frames with a 10-frame gap (shorter than min_silence) reach min_speech together.
    out = events(frames((SILENCE, 20), (SPEECH, 5), (SILENCE, 10), (SPEECH, 5), (SILENCE, 40)))
    assert [type(e) for e in out] == [SpeechStarted, SpeechEnded]
    assert out[0].time == pytest.approx(t(20) - CONFIG.speech_pad)


def test_probabilities_between_thresholds_keep_speech_going() -> None:
    out = events(frames((SPEECH, 20), (BETWEEN, 40), (SILENCE, 40)))
    assert [type(e) for e in out] == [SpeechStarted, SpeechEnded]
    assert out[1].time == pytest.approx(t(60) + CONFIG.speech_pad)


def test_probabilities_below_neg_threshold_end_speech() -> None:
    out = events(frames((SPEECH, 20), (0.3, 40), (SILENCE, 40)))
    assert out[1].time == pytest.approx(t(20) + CONFIG.speech_pad)


def test_probabilities_between_thresholds_do_not_start_speech() -> None:
    assert events(frames((SILENCE, 10), (BETWEEN, 200), (SILENCE, 40))) == []


def test_probabilities_between_thresholds_do_not_count_as_speech_for_min_speech() -> None:
    assert events(frames((SPEECH, MIN_SPEECH_FRAMES - 1), (BETWEEN, 40), (SILENCE, 40))) == []


def test_threshold_itself_counts_as_speech() -> None:
    assert len(events(frames((CONFIG.threshold, 20), (SILENCE, 40)))) == 2


def test_max_utterance_splits_unbroken_speech_after_the_grace_period() -> None:
    config = VadConfig(max_utterance=5.0)
    limit = config.max_utterance + SPLIT_GRACE
    out = run(frames((SPEECH, round(32.0 / FRAME_SECONDS)), (SILENCE, 40)), config)
    evs = [e for _, e in out]
    starts = [e for e in evs if isinstance(e, SpeechStarted)]
    ends = [e for e in evs if isinstance(e, SpeechEnded)]
    assert len(starts) == len(ends) == 4
    assert [e.utterance_id for e in starts] == [0, 1, 2, 3]
    assert [e.utterance_id for e in ends] == [0, 1, 2, 3]
    # Each split closes one utterance and opens the next at the same instant, in that order.
    for end, next_start in zip(ends, starts[1:], strict=False):
        assert next_start.time == end.time
        assert evs.index(end) + 1 == evs.index(next_start)
    for start, end in zip(starts[:3], ends[:3], strict=True):
        assert end.time - start.time == pytest.approx(limit, abs=FRAME_SECONDS)
    # The split is emitted when it happens, not later.
    first_split_frame = next(i for i, e in out if isinstance(e, SpeechEnded))
    assert t(first_split_frame + 1) == pytest.approx(ends[0].time)
    assert ends[-1].time == pytest.approx(32.0 + config.speech_pad, abs=FRAME_SECONDS)


def test_max_utterance_ends_a_long_utterance_at_its_next_short_pause() -> None:
    config = VadConfig(max_utterance=5.0)
    speech = round(2.0 / FRAME_SECONDS)
    # Speech in 2 s runs separated by one-frame pauses (far shorter than min_silence).
    pattern = []
    for _ in range(5):
        pattern += [(SPEECH, speech), (SILENCE, 1)]
    out = run(frames(*pattern, (SILENCE, 40)), config)
    ends = [e for _, e in out if isinstance(e, SpeechEnded)]
    starts = [e for _, e in out if isinstance(e, SpeechStarted)]
    assert len(starts) == len(ends) == 2
    # The first pause after 5 s is the one after the third run, at 3 runs + 2 pauses.
    assert ends[0].time == pytest.approx(3 * speech * FRAME_SECONDS + 2 * FRAME_SECONDS, abs=0.01)
    assert starts[1].time >= ends[0].time


def test_max_utterance_split_during_a_pause_opens_no_speechless_utterance() -> None:
    config = VadConfig(max_utterance=5.0)
    # Speech up to 4.9 s, then silence: the 5 s split lands in the pause, before min_silence has passed.
    out = events(frames((SPEECH, round(4.9 / FRAME_SECONDS)), (SILENCE, 60)), config)
    assert [e.utterance_id for e in out if isinstance(e, SpeechStarted)] == [0]


def test_flush_closes_an_open_utterance_at_the_end_of_its_speech() -> None:
    out = run(frames((SPEECH, 40), (SILENCE, 10)), flush=True)
    assert [type(e) for _, e in out] == [SpeechStarted, SpeechEnded]
    assert is_event(out[1][1], SpeechEnded, 0, t(40) + CONFIG.speech_pad)


def test_flush_never_ends_after_the_audio() -> None:
    out = run(frames((SPEECH, 40)), flush=True)
    assert is_event(out[-1][1], SpeechEnded, 0, t(40))


def test_flush_drops_an_unconfirmed_candidate() -> None:
    segmenter = VadSegmenter(CONFIG)
    for p in frames((SPEECH, 3)):
        assert segmenter.push(p) == []
    assert segmenter.flush() == []
    assert not segmenter.speaking


def test_flush_after_a_closed_utterance_emits_nothing() -> None:
    segmenter = VadSegmenter(CONFIG)
    pushed = [e for p in frames((SPEECH, 20), (SILENCE, 40)) for e in segmenter.push(p)]
    assert len(pushed) == 2
    assert segmenter.flush() == []


def run_on(segmenter: VadSegmenter, probabilities: list[float]) -> list[tuple[int, Event]]:
    """Like `run`, on a segmenter that may already have heard something."""
    return [(i, e) for i, p in enumerate(probabilities) for e in segmenter.push(p)]


def push_all(segmenter: VadSegmenter, probabilities: list[float]) -> list[Event]:
    return [e for _, e in run_on(segmenter, probabilities)]


def test_cut_mid_speech_ends_the_utterance_now_and_speech_goes_on_in_a_new_one() -> None:
    segmenter = VadSegmenter(CONFIG)
    assert [type(e) for e in push_all(segmenter, frames((SILENCE, 10), (SPEECH, 50)))] == [SpeechStarted]
    (ended,) = segmenter.cut()
    assert is_event(ended, SpeechEnded, 0, t(60))  # the last speech frame's end (the pad lies in the future)
    assert not segmenter.speaking and segmenter.cut() == []
    # The speaker never paused: the next speech is a new utterance, confirmed after min_speech as usual and
    # dated from the cut (nothing between the two is lost, nothing overlaps).
    after = run_on(segmenter, frames((SPEECH, 40), (SILENCE, 40)))
    assert [(i, type(e)) for i, e in after] == [
        (MIN_SPEECH_FRAMES - 1, SpeechStarted),
        (40 + MIN_SILENCE_FRAMES - 1, SpeechEnded),
    ]
    assert is_event(after[0][1], SpeechStarted, 1, ended.time)
    assert is_event(after[1][1], SpeechEnded, 1, t(100) + CONFIG.speech_pad)


def test_cut_in_a_short_pause_ends_a_pad_after_the_speech() -> None:
    segmenter = VadSegmenter(CONFIG)
    push_all(segmenter, frames((SPEECH, 40), (SILENCE, 12)))  # a pause shorter than min_silence
    (ended,) = segmenter.cut()
    assert is_event(ended, SpeechEnded, 0, t(40) + CONFIG.speech_pad)
    assert ended.time < segmenter.time
    assert push_all(segmenter, frames((SILENCE, 60))) == []  # the pause itself ends nothing more


def test_cut_keeps_an_unconfirmed_candidate_and_does_nothing_when_idle() -> None:
    segmenter = VadSegmenter(CONFIG)
    assert segmenter.cut() == []
    push_all(segmenter, frames((SILENCE, 10), (SPEECH, 3)))
    pending = segmenter.pending_start
    assert segmenter.cut() == [] and segmenter.pending_start == pending
    (started,) = push_all(segmenter, frames((SPEECH, MIN_SPEECH_FRAMES)))
    assert is_event(started, SpeechStarted, 0, t(10) - CONFIG.speech_pad)


def test_ids_and_times_continue_from_a_resumed_stream() -> None:
    probs = frames((SILENCE, 10), (SPEECH, 20), (SILENCE, 30), (SPEECH, 20), (SILENCE, 30))
    plain = events(probs)
    resumed = events(probs, start_time=100.0, first_utterance_id=7)
    assert [e.utterance_id for e in resumed] == [7, 7, 8, 8]
    for a, b in zip(plain, resumed, strict=True):
        assert b.time == pytest.approx(a.time + 100.0)


def test_resumed_start_is_clipped_at_the_resume_time() -> None:
    out = events(frames((SPEECH, 20)), start_time=100.0)
    assert out[0] == SpeechStarted(0, 100.0)


def test_state_properties_follow_the_utterance() -> None:
    segmenter = VadSegmenter(CONFIG, start_time=10.0, first_utterance_id=3)
    assert not segmenter.speaking and segmenter.current_utterance is None
    for p in frames((SPEECH, 20)):
        segmenter.push(p)
    assert segmenter.speaking and segmenter.current_utterance == 3
    assert segmenter.time == pytest.approx(10.0 + t(20))
    for p in frames((SILENCE, 40)):
        segmenter.push(p)
    assert not segmenter.speaking and segmenter.current_utterance is None


def test_at_pause_follows_the_latest_frame_against_the_speech_threshold() -> None:
    segmenter = VadSegmenter(VadConfig(threshold=0.5, neg_threshold=0.35))
    assert segmenter.at_pause, "no frame yet: nothing is being said"
    for probability, pause in ((0.9, False), (0.5, False), (0.4, True), (0.9, False), (0.1, True)):
        segmenter.push(probability)
        assert segmenter.at_pause is pause, probability

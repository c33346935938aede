"""Audio in (streamer.core.audio): client formats, byte decoding, the streaming resampler, framing."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config import SAMPLE_RATE
from streamer.core.audio import (
    RESAMPLER_HALF_TAPS,
    AudioDecoder,
    AudioFormat,
    Encoding,
    Framer,
    StreamingResampler,
    to_pcm16,
)
from streamer.errors import AudioFormatError, StreamerError

TONE_HZ = 1000.0
DURATION = 1.0
RESAMPLED_RATES = (48000, 44100, 22050, 8000)


def sine(freq: float, rate: int, seconds: float = DURATION, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pcm16_bytes(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def float32_bytes(values: list[float]) -> bytes:
    return np.array(values, dtype="<f4").tobytes()


def lookahead_samples(rate: int) -> int:
    """Output samples the resampler holds back at the end of what it was fed (its filter's look-ahead)."""
    cutoff = min(1.0, SAMPLE_RATE / rate)
    half = int(np.ceil(RESAMPLER_HALF_TAPS / cutoff))
    return int(np.ceil(half * SAMPLE_RATE / rate)) + 1


def peak_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def amplitude(samples: np.ndarray) -> float:
    """Peak amplitude of a sine, from its RMS."""
    return float(np.sqrt(2.0 * np.mean(np.square(samples, dtype=np.float64))))


def steady(samples: np.ndarray, margin: int = 400) -> np.ndarray:
    """Drop the filter's start-up transient and the end."""
    return samples[margin:-margin]


def resample_in_chunks(signal: np.ndarray, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    resampler = StreamingResampler(rate)
    parts = []
    pos = 0
    while pos < len(signal):
        size = int(rng.integers(1, 2500))
        parts.append(resampler.process(signal[pos : pos + size]))
        pos += size
    return np.concatenate(parts)


# -- AudioFormat ------------------------------------------------------------------------------------------


def test_default_format_is_16k_mono_pcm16() -> None:
    fmt = AudioFormat()
    assert (fmt.sample_rate, fmt.encoding, fmt.channels) == (16000, Encoding.PCM16, 1)
    assert fmt.bytes_per_frame == 2


def test_parse_accepts_encoding_names_in_any_case() -> None:
    fmt = AudioFormat.parse(48000, "FLOAT32", 2)
    assert fmt == AudioFormat(48000, Encoding.FLOAT32, 2)
    assert fmt.bytes_per_frame == 8


@pytest.mark.parametrize(
    ("sample_rate", "encoding", "channels", "message"),
    [
        (12345, "pcm16", 1, "unsupported sample rate 12345 Hz"),
        (16000, "mp3", 1, "unsupported encoding 'mp3'"),
        (16000, "pcm16", 3, "unsupported channel count 3"),
        (16000, "pcm16", 0, "unsupported channel count 0"),
        (16000.0, "pcm16", 1, "sample_rate must be an integer"),
        ("16000", "pcm16", 1, "sample_rate must be an integer"),
        (True, "pcm16", 1, "sample_rate must be an integer"),
        (16000, "pcm16", "1", "channels must be an integer"),
        (16000, "pcm16", True, "channels must be an integer"),
    ],
)
def test_parse_rejects_bad_client_formats_with_a_clear_message(
    sample_rate: object, encoding: object, channels: object, message: str
) -> None:
    with pytest.raises(AudioFormatError, match=message) as caught:
        AudioFormat.parse(sample_rate, encoding, channels)
    assert isinstance(caught.value, StreamerError)


def test_unsupported_rate_message_lists_the_supported_rates() -> None:
    with pytest.raises(AudioFormatError) as caught:
        AudioFormat.parse(7000, "pcm16", 1)
    assert "8000" in str(caught.value) and "48000" in str(caught.value)


# -- AudioDecoder -----------------------------------------------------------------------------------------


def test_pcm16_decodes_to_float_in_minus_one_to_one() -> None:
    decoder = AudioDecoder(AudioFormat())
    out = decoder.decode(pcm16_bytes([0, 16384, -16384, 32767, -32768]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.5, -0.5, 32767 / 32768, -1.0])


def test_float32_decodes_unchanged_and_clips_out_of_range_values() -> None:
    decoder = AudioDecoder(AudioFormat(encoding=Encoding.FLOAT32))
    out = decoder.decode(float32_bytes([0.25, -0.75, 1.5, -3.0]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.25, -0.75, 1.0, -1.0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_float32_with_nan_or_infinity_is_rejected(bad: float) -> None:
    decoder = AudioDecoder(AudioFormat(encoding=Encoding.FLOAT32))
    with pytest.raises(AudioFormatError, match="NaN or infinity"):
        decoder.decode(float32_bytes([0.1, bad, 0.2]))


def test_stereo_is_down_mixed_to_the_mean_of_both_channels() -> None:
    decoder = AudioDecoder(AudioFormat(channels=2))
    # Interleaved L/R frames.
    out = decoder.decode(pcm16_bytes([16384, 0, -16384, -16384, 8192, -8192]))
    np.testing.assert_allclose(out, [0.25, -0.5, 0.0])


def test_float32_stereo_is_down_mixed() -> None:
    decoder = AudioDecoder(AudioFormat(encoding=Encoding.FLOAT32, channels=2))
    out = decoder.decode(float32_bytes([1.0, 0.0, 0.5, 0.25]))
    np.testing.assert_allclose(out, [0.5, 0.375])


def test_a_sample_split_across_chunks_is_kept_for_the_next_chunk() -> None:
    data = pcm16_bytes([1000, -2000, 3000])
    decoder = AudioDecoder(AudioFormat())
    first = decoder.decode(data[:3])  # one sample and a half
    second = decoder.decode(data[3:])
    np.testing.assert_allclose(first, [1000 / 32768])
    np.testing.assert_allclose(second, [-2000 / 32768, 3000 / 32768])


@pytest.mark.parametrize(
    "fmt",
    [
        AudioFormat(channels=2),
        AudioFormat(encoding=Encoding.FLOAT32),
        AudioFormat(encoding=Encoding.FLOAT32, channels=2),
    ],
)
def test_bytes_fed_one_at_a_time_decode_like_the_whole(fmt: AudioFormat) -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(-0.9, 0.9, size=12 * fmt.channels)
    if fmt.encoding is Encoding.PCM16:
        data = (values * 32767).astype("<i2").tobytes()
    else:
        data = values.astype("<f4").tobytes()
    whole = AudioDecoder(fmt).decode(data)
    decoder = AudioDecoder(fmt)
    pieces = [decoder.decode(data[i : i + 1]) for i in range(len(data))]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert len(whole) == 12


def test_an_incomplete_frame_yields_no_samples_yet() -> None:
    decoder = AudioDecoder(AudioFormat(channels=2))
    assert len(decoder.decode(b"\x01\x02\x03")) == 0
    assert len(decoder.decode(b"\x04")) == 1


def test_decoder_resamples_to_16k() -> None:
    decoder = AudioDecoder(AudioFormat(sample_rate=48000))
    tone = sine(TONE_HZ, 48000)
    out = decoder.decode(to_pcm16(0.5 * tone))
    assert abs(len(out) - SAMPLE_RATE * DURATION) <= lookahead_samples(48000)
    assert peak_frequency(steady(out)) == pytest.approx(TONE_HZ, abs=2.0)
    assert amplitude(steady(out)) == pytest.approx(0.5, rel=0.03)


# -- StreamingResampler -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RESAMPLED_RATES)
def test_resampled_tone_keeps_its_frequency_and_amplitude(rate: int) -> None:
    out = StreamingResampler(rate).process(sine(TONE_HZ, rate))
    assert out.dtype == np.float32
    assert peak_frequency(steady(out)) == pytest.approx(TONE_HZ, abs=2.0)
    assert amplitude(steady(out)) == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("rate", RESAMPLED_RATES)
def test_resampled_length_matches_the_duration(rate: int) -> None:
    # The resampler has no flush: it holds back its filter's look-ahead (at most 2 ms), nothing more.
    out = StreamingResampler(rate).process(sine(TONE_HZ, rate))
    missing = SAMPLE_RATE * DURATION - len(out)
    assert 0 <= missing <= lookahead_samples(rate)


@pytest.mark.parametrize("rate", RESAMPLED_RATES)
def test_random_chunking_gives_the_same_output_as_one_chunk(rate: int) -> None:
    signal = sine(TONE_HZ, rate) * np.linspace(0.2, 1.0, int(rate * DURATION), dtype=np.float32)
    whole = StreamingResampler(rate).process(signal)
    for seed in range(3):
        chunked = resample_in_chunks(signal, rate, seed)
        assert len(chunked) == len(whole)
        assert np.allclose(chunked, whole, atol=1e-6)


def test_tiny_chunks_produce_nothing_until_the_look_ahead_is_filled() -> None:
    resampler = StreamingResampler(48000)
    signal = sine(TONE_HZ, 48000)
    assert len(resampler.process(signal[:10])) == 0
    rest = resampler.process(signal[10:])
    whole = StreamingResampler(48000).process(signal)
    assert np.allclose(rest, whole, atol=1e-6)


def test_tone_above_the_output_nyquist_is_filtered_out() -> None:
    # 12 kHz would alias to 4 kHz at 16 kHz without the anti-aliasing low-pass.
    out = StreamingResampler(48000).process(sine(12000.0, 48000))
    assert len(out) > 0.9 * SAMPLE_RATE * DURATION
    assert amplitude(steady(out)) < 0.01  # at least 40 dB down


def test_16k_input_passes_through_unchanged() -> None:
    signal = sine(TONE_HZ, SAMPLE_RATE)
    np.testing.assert_array_equal(StreamingResampler(SAMPLE_RATE).process(signal), signal)


# -- Framer -----------------------------------------------------------------------------------------------


def test_framer_cuts_fixed_frames_and_keeps_the_leftover() -> None:
    framer = Framer(4)
    first = framer.push(np.arange(6, dtype=np.float32))
    second = framer.push(np.arange(6, 11, dtype=np.float32))
    assert [f.tolist() for f in first] == [[0, 1, 2, 3]]
    assert [f.tolist() for f in second] == [[4, 5, 6, 7]]
    flushed = framer.flush()
    assert flushed is not None
    assert flushed.tolist() == [8, 9, 10, 0]


def test_framer_emits_nothing_for_less_than_one_frame() -> None:
    framer = Framer(512)
    assert framer.push(np.ones(511, dtype=np.float32)) == []
    frames = framer.push(np.ones(1, dtype=np.float32))
    assert len(frames) == 1 and len(frames[0]) == 512


def test_framer_flush_pads_with_zeros_and_empties_the_buffer() -> None:
    framer = Framer(8)
    framer.push(np.full(3, 0.5, dtype=np.float32))
    frame = framer.flush()
    assert frame is not None
    assert frame.dtype == np.float32
    np.testing.assert_array_equal(frame, [0.5, 0.5, 0.5, 0, 0, 0, 0, 0])
    assert framer.flush() is None


def test_framer_flush_without_leftover_returns_none() -> None:
    framer = Framer(4)
    assert framer.flush() is None
    framer.push(np.ones(8, dtype=np.float32))
    assert framer.flush() is None


# -- to_pcm16 ---------------------------------------------------------------------------------------------


def test_to_pcm16_round_trips_through_the_decoder() -> None:
    rng = np.random.default_rng(7)
    samples = rng.uniform(-1.0, 1.0, size=1000).astype(np.float32)
    data = to_pcm16(samples)
    assert len(data) == 2 * len(samples)
    decoded = AudioDecoder(AudioFormat()).decode(data)
    np.testing.assert_allclose(decoded, samples, atol=2 / 32768)


def test_to_pcm16_clips_out_of_range_samples() -> None:
    data = to_pcm16(np.array([2.0, -2.0, 0.0], dtype=np.float32))
    assert np.frombuffer(data, dtype="<i2").tolist() == [32767, -32767, 0]

"""The Python package against the Rust engine: the same samples as
`voxide speak --raw`, streaming, asyncio, threads, permits, errors, leaks."""

from __future__ import annotations

import asyncio
import gc
import pathlib
import subprocess
import threading
import time

import numpy as np
import pytest

import voxide

TEXT = "The quick brown fox jumps over the lazy dog. Then it naps in the sun."
SHORT = "Hello there."


def cli_raw(cli: pathlib.Path, voice: pathlib.Path, tmp: pathlib.Path, *args: str) -> np.ndarray:
    raw = tmp / "cli.raw"
    subprocess.run(
        [str(cli), "speak", "--voice", str(voice), "--device", "cpu", *args, "--raw", str(raw)],
        check=True,
        capture_output=True,
    )
    return np.fromfile(raw, dtype="<f4")


# --- the same samples as the command line ---------------------------------


def test_speak_equals_cli_raw(engine, cli, voice, tmp_path):
    audio = engine.speak(TEXT, seed=7)
    expected = cli_raw(cli, voice, tmp_path, "--text", TEXT, "--seed", "7")
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape == expected.shape
    np.testing.assert_array_equal(audio.samples, expected)
    assert audio.sample_rate == 22050
    assert audio.duration == pytest.approx(len(expected) / 22050)


def test_options_equal_cli_raw(engine, cli, voice, tmp_path):
    audio = engine.speak(SHORT, seed=3, speed=1.5, noise_scale=0.5, noise_w=0.6)
    expected = cli_raw(
        cli, voice, tmp_path, "--text", SHORT, "--seed", "3", "--speed", "1.5",
        "--noise-scale", "0.5", "--noise-w", "0.6",
    )
    np.testing.assert_array_equal(audio.samples, expected)
    # Another seed gives other samples (the options do reach the engine).
    assert not np.array_equal(engine.speak(SHORT, seed=4, speed=1.5).samples, expected)


def test_ssml_and_phonemes_equal_cli(engine, cli, voice, tmp_path):
    ssml = '<speak>Hello <break time="200ms"/> there <mark name="m1"/> friend.</speak>'
    audio = engine.speak(ssml, input="ssml", seed=1)
    np.testing.assert_array_equal(
        audio.samples, cli_raw(cli, voice, tmp_path, "--text", ssml, "--ssml", "--seed", "1")
    )
    assert [m.name for m in audio.marks] == ["m1"]
    assert 0 < audio.marks[0].sample < len(audio)
    ipa = "həlˈoʊ."
    np.testing.assert_array_equal(
        engine.speak(ipa, input="phonemes").samples,
        cli_raw(cli, voice, tmp_path, "--phonemes", ipa),
    )


def test_wav_equals_cli_output(engine, cli, voice, tmp_path):
    out = tmp_path / "cli.wav"
    subprocess.run(
        [str(cli), "speak", "--voice", str(voice), "--device", "cpu", "--text", SHORT, "--output", str(out)],
        check=True,
        capture_output=True,
    )
    audio = engine.speak(SHORT)
    mine = tmp_path / "py.wav"
    audio.to_wav(mine)
    assert mine.read_bytes() == out.read_bytes()
    assert audio.to_bytes() == out.read_bytes()
    assert audio.to_bytes("f32") == audio.samples.astype("<f4").tobytes()
    pcm = np.frombuffer(audio.to_bytes("pcm"), dtype="<i2")
    assert pcm.shape == audio.samples.shape
    assert audio.to_bytes("pcm") == out.read_bytes()[44:]
    html = audio._repr_html_()
    assert html.startswith('<audio controls src="data:audio/wav;base64,')


def test_samples_are_a_view_without_copy(engine):
    audio = engine.speak(SHORT)
    a, b = audio.samples, audio.samples
    assert a.base is audio and b.base is audio
    assert np.shares_memory(a, b)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1.0
    # The view keeps the audio alive after the last other reference goes.
    expected = a.copy()
    del audio, b
    gc.collect()
    np.testing.assert_array_equal(a, expected)


def test_words(engine):
    audio = engine.speak(SHORT)
    words = audio.words
    assert [w.text for w in words] == ["Hello", "there"]
    assert (words[0].char_start, words[0].char_end) == (0, 5)
    assert 0 <= words[0].start < words[0].end <= words[1].start < words[1].end <= len(audio)


def test_empty_text_is_empty_audio(engine):
    audio = engine.speak("")
    assert len(audio) == 0 and audio.samples.shape == (0,)


# --- streaming ------------------------------------------------------------


def test_stream_concatenates_to_speak(engine):
    whole = engine.speak(TEXT, seed=5).samples
    stream = engine.stream(TEXT, seed=5)
    chunks = list(stream)
    assert len(chunks) > 2
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert len(chunks[0]) < len(whole) // 4
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    assert [w.text for w in stream.words] == [w.text for w in engine.speak(TEXT).words]
    assert stream.samples_delivered == len(whole)
    assert stream.sample_rate == 22050
    with pytest.raises(StopIteration):
        next(stream)


def test_stream_close_frees_the_permit(voice):
    engine = voxide.Engine(voice, max_concurrent=1, device="cpu")
    with engine.stream(TEXT) as stream:
        first = next(stream)
        assert len(first) > 0
        assert engine.try_permit() is None
    # Closed: the permit is back at once, and the stream is over.
    with engine.permit(timeout=0) as p:
        assert p.valid
    assert next(stream, None) is None


def test_dropped_stream_frees_the_permit(voice):
    engine = voxide.Engine(voice, max_concurrent=1, device="cpu")
    stream = engine.stream(TEXT)
    next(stream)
    del stream
    gc.collect()
    # Dropped without close: the synthesis thread stops at its next chunk.
    engine.permit(timeout=10).release()


def test_stream_errors_raise_from_next(engine):
    with pytest.raises(voxide.SsmlError, match="line"):
        list(engine.stream("<speak>unclosed", input="ssml"))


# --- asyncio --------------------------------------------------------------


async def _with_ticker(coro):
    """Run `coro` while a ticker counts 5 ms ticks; return (result, ticks, seconds)."""
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    t = asyncio.ensure_future(ticker())
    start = time.perf_counter()
    try:
        result = await coro
    finally:
        done.set()
    elapsed = time.perf_counter() - start
    await t
    return result, ticks, elapsed


def test_aspeak_leaves_the_loop_running(engine):
    audio, ticks, elapsed = asyncio.run(_with_ticker(engine.aspeak(TEXT, seed=2)))
    np.testing.assert_array_equal(audio.samples, engine.speak(TEXT, seed=2).samples)
    # A blocked loop would tick about once; a free one every ~5 ms (allow
    # a slow, shared machine a factor of 4).
    assert elapsed > 0.05
    assert ticks >= max(3, int(elapsed / 0.005 / 4)), (ticks, elapsed)


def test_astream_leaves_the_loop_running(engine):
    async def collect():
        return [c async for c in engine.astream(TEXT, seed=2)]

    chunks, ticks, elapsed = asyncio.run(_with_ticker(collect()))
    assert len(chunks) > 2
    np.testing.assert_array_equal(np.concatenate(chunks), engine.speak(TEXT, seed=2).samples)
    assert ticks >= max(3, int(elapsed / 0.005 / 4)), (ticks, elapsed)


def test_astream_break_frees_the_permit(voice):
    engine = voxide.Engine(voice, max_concurrent=1, device="cpu")

    async def first_then_break():
        agen = engine.astream(TEXT)
        async for chunk in agen:
            assert len(chunk) > 0
            break
        await agen.aclose()

    asyncio.run(first_then_break())
    engine.permit(timeout=0).release()


def test_concurrent_aspeak(engine):
    async def both():
        return await asyncio.gather(engine.aspeak(SHORT, seed=1), engine.aspeak(TEXT, seed=1))

    a, b = asyncio.run(both())
    np.testing.assert_array_equal(a.samples, engine.speak(SHORT, seed=1).samples)
    np.testing.assert_array_equal(b.samples, engine.speak(TEXT, seed=1).samples)


# --- threads and permits --------------------------------------------------


def test_two_threads_give_the_solo_samples(engine):
    solo = {t: engine.speak(t, seed=9).samples.copy() for t in (TEXT, SHORT)}
    got: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(text: str) -> None:
        try:
            barrier.wait()
            got[text] = engine.speak(text, seed=9).samples
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in solo]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for text, samples in solo.items():
        np.testing.assert_array_equal(got[text], samples)


def test_permit_context_manager(voice):
    engine = voxide.Engine(voice, max_concurrent=1, device="cpu")
    assert engine.max_concurrent == 1
    with engine.permit(timeout=1.0) as p:
        assert p.valid
        audio = engine.speak(SHORT, permit=p)
        assert len(audio) > 0
        assert not p.valid
        with pytest.raises(voxide.InvalidArgument, match="already used"):
            engine.speak(SHORT, permit=p)
    # Unused and released by `with`: free again.
    with engine.permit(timeout=1.0) as p:
        assert engine.try_permit() is None
    assert not p.valid
    q = engine.try_permit()
    assert q is not None
    q.release()
    q.release()  # idempotent


def test_permit_timeout(voice):
    engine = voxide.Engine(voice, max_concurrent=1, device="cpu")
    held = engine.permit()
    start = time.perf_counter()
    with pytest.raises(voxide.PermitTimeout, match="timed out") as e:
        engine.permit(timeout=0.2)
    assert 0.15 < time.perf_counter() - start < 5
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, voxide.Error)
    held.release()
    engine.permit(timeout=0.2).release()


def test_speak_waits_for_a_permit_without_the_gil(voice):
    engine = voxide.Engine(voice, max_concurrent=1, device="cpu")
    held = engine.permit()
    result: list[voxide.Audio] = []
    t = threading.Thread(target=lambda: result.append(engine.speak(SHORT)))
    t.start()
    time.sleep(0.3)
    assert t.is_alive() and not result  # waiting, and this thread still runs
    held.release()
    t.join(timeout=60)
    assert result and len(result[0]) > 0


# --- errors ---------------------------------------------------------------


def test_bad_voice_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(voxide.VoiceIoError, match="nope.onnx") as e:
        voxide.Engine(missing, device="cpu")
    assert isinstance(e.value, OSError) and isinstance(e.value, voxide.Error)


def test_invalid_model(tmp_path, voice):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    (tmp_path / "bad.onnx.json").write_bytes(voice.with_name(voice.name + ".json").read_bytes())
    with pytest.raises(voxide.ModelError, match="bad.onnx"):
        voxide.Engine(bad, device="cpu")


def test_no_voice(monkeypatch):
    monkeypatch.delenv("VOXIDE_VOICE", raising=False)
    with pytest.raises(voxide.InvalidArgument, match="no voice"):
        voxide.Engine(device="cpu")


def test_bad_engine_options(voice):
    with pytest.raises(voxide.InvalidArgument, match="device"):
        voxide.Engine(voice, device="tpu")
    with pytest.raises(voxide.InvalidArgument, match="precision|f32"):
        voxide.Engine(voice, device="cpu", precision="f8")
    with pytest.raises(voxide.InvalidArgument, match="max_concurrent"):
        voxide.Engine(voice, device="cpu", max_concurrent=0)


def test_unknown_voice(engine):
    with pytest.raises(voxide.UnknownVoice, match="nobody") as e:
        engine.speak(SHORT, voice="nobody")
    assert isinstance(e.value, LookupError)
    with pytest.raises(voxide.UnknownVoice, match="nobody"):
        engine.stream(SHORT, voice="nobody")


def test_bad_speaker(engine):
    with pytest.raises(voxide.InvalidArgument, match="speaker"):
        engine.speak(SHORT, speaker="alice")
    with pytest.raises(voxide.InvalidArgument, match="speaker"):
        engine.speak(SHORT, speaker=5)
    with pytest.raises(voxide.InvalidArgument, match="speaker"):
        engine.speak(SHORT, speaker=1.5)


def test_bad_ssml(engine):
    with pytest.raises(voxide.SsmlError) as e:
        engine.speak("<speak>Hello <break time=oops/></speak>", input="ssml")
    assert isinstance(e.value, voxide.InvalidArgument) and isinstance(e.value, ValueError)
    assert str(e.value)


def test_bad_options(engine):
    with pytest.raises(voxide.InvalidArgument, match="input"):
        engine.speak(SHORT, input="morse")
    with pytest.raises(voxide.InvalidArgument, match="seed"):
        engine.speak(SHORT, seed=-1)
    with pytest.raises(voxide.InvalidArgument, match="speed"):
        engine.speak(SHORT, speed=100.0)
    with pytest.raises(voxide.InvalidArgument, match="timeout"):
        engine.permit(timeout=-1)
    with pytest.raises(voxide.InvalidArgument, match="format"):
        engine.speak("").to_bytes("mp3")


def test_unwritable_wav(engine, tmp_path):
    with pytest.raises(voxide.VoiceIoError):
        engine.speak("").to_wav(tmp_path / "no" / "such" / "dir.wav")


def test_errors_leave_the_engine_usable(engine):
    before = engine.speak(SHORT).samples.copy()
    for bad in (dict(voice="x"), dict(input="ssml"), dict(speaker="x")):
        with pytest.raises(voxide.Error):
            engine.speak("<speak>", **bad)
    # All permits were given back.
    ps = [engine.permit(timeout=1) for _ in range(engine.max_concurrent)]
    for p in ps:
        p.release()
    np.testing.assert_array_equal(engine.speak(SHORT).samples, before)


# --- engine facts and voices ----------------------------------------------


def test_engine_properties(engine, voice):
    assert engine.voices == ["en_US-joe-medium"]
    assert engine.default_voice == "en_US-joe-medium"
    assert engine.device == "cpu"
    assert engine.sample_rate() == 22050
    assert engine.max_concurrent == 2
    assert engine.threads >= 1
    assert engine.precision in ("f32", "bf16x3", "bf16")
    assert "Engine(" in repr(engine)


def test_named_voices(voice):
    engine = voxide.Engine(voices={"joe": voice, "other": str(voice)}, device="cpu")
    assert sorted(engine.voices) == ["joe", "other"]
    assert engine.default_voice == "joe"
    np.testing.assert_array_equal(
        engine.speak(SHORT, voice="other").samples, engine.speak(SHORT, voice="joe").samples
    )
    listed = voxide.Engine(voices=[voice], device="cpu")
    assert listed.voices == ["en_US-joe-medium"]


# --- no leak --------------------------------------------------------------


def _rss_kib() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_no_leak_over_1000_calls(engine):
    # Short real requests (one phoneme at double speed, ~2,500 samples), so
    # the 1,000 calls measure the binding's per-call costs: permits,
    # options, Audio objects and their numpy views, stream threads and
    # channels.
    def call(i: int) -> int:
        if i % 10 == 0:
            return sum(len(c) for c in engine.stream("ə", input="phonemes", speed=2.0))
        audio = engine.speak("ə", input="phonemes", speed=2.0, seed=i)
        return len(audio.samples) + len(audio.words)

    for i in range(100):  # warm-up: allocator pools, numpy, thread stacks
        call(i)
    gc.collect()
    before = _rss_kib()
    total = 0
    for i in range(1000):
        total += call(i)
    gc.collect()
    growth = _rss_kib() - before
    # Leaking each call's samples alone would grow by `total * 4` bytes;
    # allow a quarter of that, and at least 4 MiB of allocator noise.
    limit = max(4096, total * 4 // 1024 // 4)
    # The check can fail: leaking every call's samples would exceed it.
    assert total * 4 // 1024 > limit, (total, limit)
    assert growth < limit, f"RSS grew {growth} KiB over 1000 calls (limit {limit} KiB)"

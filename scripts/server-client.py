#!/usr/bin/env python3
"""voxide serve, spoken to by clients nobody here wrote.

1. The official `openai` package: audio.speech.create for wav, pcm, flac,
   mp3 and opus, and with_streaming_response (audio and SSE). Lossless
   results must equal `voxide speak --output -` (same text and seed); mp3
   and opus are decoded with ffmpeg and compared with it: the length within
   the codec's padding (50 ms) and the waveform's SNR above a threshold
   (after the best alignment: within +-5 ms for opus, +-110 ms for mp3, whose
   encoder delay stays in a stream without a gapless header).
2. The web page in headless Chromium, driven over WebDriver (plain HTTP,
   urllib): load /, type, press Speak; the page must report audio bytes
   received, chunks scheduled and played, and word events; a bad SSML
   request must show the server's error. A screenshot is written.

Usage: server-client.py BASE_URL VOXIDE_BINARY VOICE SCREENSHOT.png [--no-page|--page-only]
Prints one line per check and a closing 'N passed, N failed' line.
"""

import base64
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import openai

BASE, VOXIDE, VOICE, SHOT = sys.argv[1:5]
MODE = sys.argv[5] if len(sys.argv) > 5 else ""
TEXT = "The server speaks. Its samples match the command line, word for word."
SEED = 11
# Waveform SNR (dB) a decoded lossy stream must reach against the exact
# samples. Measured here: mp3 (LAME, 64 kbit/s) about 23 dB, opus (48
# kbit/s) 12 to 16 dB; perceptual codecs keep the spectrum, not the exact
# waveform, so the bar is set a few dB under: a wrong rate, a shift or
# silence scores below 1 dB.
SNR_MIN = {"mp3": 12.0, "opus": 6.0}
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name} {detail}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def s16(b):
    n = len(b) // 2
    return struct.unpack(f"<{n}h", b[: 2 * n])


def snr_aligned(ref, got, max_lag):
    """Best SNR (dB) over lags of `got` against `ref`, on a middle window."""
    best = (-1e9, 0)
    n = min(len(ref), len(got)) - 2 * max_lag
    start = max_lag
    window = range(start, start + min(n, 6000))
    sig = sum(ref[i] * ref[i] for i in window) or 1
    # Coarse to fine: every 2nd lag, then the neighbours of the best.
    def snr(lag):
        err = sum((ref[i] - got[i + lag]) ** 2 for i in window)
        return 10 * math.log10(sig / max(err, 1))
    for lag in range(-max_lag, max_lag + 1, 2):
        best = max(best, (snr(lag), lag))
    for lag in range(best[1] - 3, best[1] + 4):
        if -max_lag <= lag <= max_lag:
            best = max(best, (snr(lag), lag))
    return best


def ffmpeg_s16(data, ext, rate):
    with tempfile.NamedTemporaryFile(suffix="." + ext) as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", f.name, "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"],
            capture_output=True,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode(errors="replace"))
    return out.stdout


def openai_checks():
    cli = subprocess.run(
        [VOXIDE, "speak", "--voice", VOICE, "--text", TEXT, "--seed", str(SEED), "--output", "-"],
        capture_output=True,
        check=True,
    ).stdout
    pcm = cli[44:]
    rate = struct.unpack("<I", cli[24:28])[0]
    client = openai.OpenAI(base_url=BASE + "/v1", api_key=os.environ.get("VOXIDE_TEST_KEY", "none"))
    ref = s16(pcm)
    for fmt in ["wav", "pcm", "flac", "mp3", "opus"]:
        r = client.audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT, response_format=fmt, extra_body={"seed": SEED}
        )
        data = r.content
        if fmt == "wav":
            check("openai wav == voxide speak", data == cli, f"{len(data)} bytes")
        elif fmt == "pcm":
            check("openai pcm == voxide speak", data == pcm, f"{len(data)} bytes")
        elif fmt == "flac":
            dec = ffmpeg_s16(data, "flac", rate)
            check("openai flac decodes to voxide speak", dec == pcm, f"{len(data)} bytes")
        else:
            dec = s16(ffmpeg_s16(data, "mp3" if fmt == "mp3" else "ogg", rate))
            # mp3 is streamed without a gapless (Xing/LAME) header, so a
            # decoder keeps LAME's encoder delay (576 + 529 samples) and the
            # last frame's padding: up to 0.12 s more; opus trims both
            # (pre-skip and the final granule position): 0.05 s.
            slack, max_lag = (0.12, 2400) if fmt == "mp3" else (0.05, rate // 200)
            dlen = (len(dec) - len(ref)) / rate
            check(f"openai {fmt} length", -0.05 <= dlen <= slack, f"{len(dec)} vs {len(ref)} samples")
            snr, lag = snr_aligned(ref, dec, max_lag)
            check(f"openai {fmt} content", snr >= SNR_MIN[fmt], f"SNR {snr:.1f} dB at lag {lag} (min {SNR_MIN[fmt]})")
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="pcm", extra_body={"seed": SEED}
    ) as r:
        chunks = list(r.iter_bytes())
    check("openai streaming pcm == voxide speak", b"".join(chunks) == pcm, f"{len(chunks)} chunks")
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format="pcm",
        extra_body={"seed": SEED, "stream_format": "sse"},
    ) as r:
        ctype = r.headers.get("content-type", "")
        events = [json.loads(l[6:]) for l in r.iter_lines() if l.startswith("data: ")]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    check("openai SSE is text/event-stream", ctype.startswith("text/event-stream"), ctype)
    check("openai SSE deltas == voxide speak", audio == pcm, f"{len(events)} events")
    check("openai SSE ends with done", events and events[-1]["type"] == "speech.audio.done")
    try:
        client.audio.speech.create(model="tts-1", voice="nobody", input=TEXT)
        check("openai unknown voice raises", False)
    except openai.BadRequestError as e:
        check("openai unknown voice raises BadRequestError", e.status_code == 400 and "voice" in str(e))


class WebDriver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium") or "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--autoplay-policy=no-user-gesture-required",
                            "--window-size=900,800",
                        ],
                    }
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def find(self, css):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(el.values()))

    def script(self, js):
        return self.s("POST", "/execute/sync", {"script": js, "args": []})

    def quit(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def browser_checks():
    port = free_port()
    driver = subprocess.Popen(
        ["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wd = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        wd = WebDriver(port)
        wd.s("POST", "/url", {"url": BASE + "/"})
        # The voices load into the picker.
        for _ in range(100):
            if wd.script("return document.getElementById('voice').options.length") > 0:
                break
            time.sleep(0.1)
        text = wd.find("#text")
        wd.s("POST", f"/element/{text}/clear", {})
        wd.s("POST", f"/element/{text}/value", {"text": "Hello from the browser. Every word lights up."})
        wd.s("POST", f"/element/{wd.find('#speak')}/click", {})
        state = {}
        for _ in range(600):
            state = wd.script("return Object.assign({}, document.getElementById('status').dataset)")
            if state.get("state") in ("done", "error"):
                break
            time.sleep(0.1)
        err = wd.script("return document.getElementById('error').textContent")
        check("page: speech done", state.get("state") == "done", f"{state} {err}")
        check("page: audio received", int(state.get("bytes", 0)) > 10000 and int(state.get("chunks", 0)) > 0, str(state))
        check(
            "page: every chunk played",
            int(state.get("played", 0)) == int(state.get("scheduled", -1)) > 0,
            str(state),
        )
        check("page: word events", int(state.get("words", 0)) >= 6, str(state))
        png = base64.b64decode(wd.s("GET", "/screenshot"))
        os.makedirs(os.path.dirname(SHOT) or ".", exist_ok=True)
        with open(SHOT, "wb") as f:
            f.write(png)
        check("page: screenshot", png.startswith(b"\x89PNG"), SHOT)
        # A server error reaches the page's alert region.
        wd.s("POST", f"/element/{wd.find('#ssml')}/click", {})
        wd.s("POST", f"/element/{text}/clear", {})
        wd.s("POST", f"/element/{text}/value", {"text": "<speak><unclosed></speak>"})
        wd.s("POST", f"/element/{wd.find('#speak')}/click", {})
        for _ in range(100):
            st = wd.script("return document.getElementById('status').dataset.state")
            if st == "error":
                break
            time.sleep(0.1)
        err = wd.script("return document.getElementById('error').textContent")
        check("page: server error shown", st == "error" and "400" in err, err)
    finally:
        if wd:
            wd.quit()
        driver.terminate()
        driver.wait(10)


if MODE != "--page-only":
    openai_checks()
if MODE != "--no-page":
    if shutil.which("chromedriver") and shutil.which("chromium"):
        browser_checks()
    else:
        line = "SKIP server page: chromium or chromedriver not installed"
        print(line)
        # Counted by scripts/test.sh, as the Rust tests' skips are.
        log = os.environ.get("VOXIDE_SKIP_LOG")
        if log:
            with open(log, "a") as f:
                f.write(line + "\n")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

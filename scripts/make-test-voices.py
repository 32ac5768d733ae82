#!/usr/bin/env python3
"""Make the small random-weight Piper test voices in tests/fixtures/voices/.

    python3 scripts/make-test-voices.py            # then scripts/gen-speaker-fixtures.py

Run by a developer when the voices must change, never by CI (`.ci/run`): it
needs torch and piper-tts's training code (gigabytes). On first use it makes
a throwaway venv (default /tmp/mkvoice-venv, `--venv`) with
`pip install torch 'piper-tts[train]==1.8.0'` from PyPI and re-runs itself
there.

The voices are built and exported by piper-tts's own code, run as a tool
(its code is GPL; nothing of it is copied here): `piper.train.vits.lightning.
VitsModel` builds the model with reduced sizes and seeded weights, a
checkpoint of it is written, and `piper.train.export_onnx` (the exporter
Piper voices come from) turns it into .onnx. One change to the exporter's
call: `torch.onnx.export(..., dynamo=False)`, the TorchScript exporter that
made the published Piper voices (newer torch defaults to the dynamo
exporter, whose graph has other node names).

Weights: torch's seeded default init, except the layers Piper initialises to
zero (the flow couplings' `post`, the duration predictor's spline `proj`),
which get small random values so every stage does something, and constant
tensors (LayerNorm, zero biases), which get small random offsets (the
exporter merges equal initializers, unlike in a trained voice); the duration
predictor's affine mean is set so sentences last a sane time (checked below
with onnxruntime: 0.5-5 s for a short sentence, per speaker).

The configs copy the phoneme id map of voices/en_US-joe-medium.onnx.json
(scripts/fetch-voice.sh) and its structure. Writes:
  test-3spk.onnx(.json)  3 speakers (ann, bob, cid), espeak en-us
  test-de.onnx(.json)    1 speaker, espeak de
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PIPER = "piper-tts[train]==1.8.0"

# Reduced sizes (Piper "medium": hidden 192, filter 768, 6 layers, decoder 256).
SMALL = dict(
    hidden_channels=32,
    inter_channels=32,
    filter_channels=64,
    n_heads=2,
    n_layers=2,
    upsample_initial_channel=64,
    resblock="2",
    resblock_kernel_sizes=(3, 5, 7),
    resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
    upsample_rates=(8, 8, 4),
    upsample_kernel_sizes=(16, 16, 8),
)

VOICES = [
    # name, speakers, gin, espeak voice, language, seed
    ("test-3spk", {"ann": 0, "bob": 1, "cid": 2}, 16, "en-us",
     {"code": "en_US", "family": "en", "region": "US", "name_native": "English", "name_english": "English",
      "country_english": "United States"}, 1001),
    ("test-de", {}, 0, "de",
     {"code": "de_DE", "family": "de", "region": "DE", "name_native": "Deutsch", "name_english": "German",
      "country_english": "Germany"}, 1002),
]

CHECK_TEXT = {"en-us": "Hello world, this is a test.", "de": "Guten Tag, das ist ein Test."}


def ensure_venv(venv):
    """Re-run this script inside `venv` (made and filled on first use)."""
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    try:
        subprocess.check_call([py, "-c", "import torch, lightning, onnx, piper.train.vits.lightning"],
                              stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        subprocess.check_call([py, "-m", "pip", "install", "torch", PIPER, "onnx", "numpy"])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def build(name, speakers, gin, seed, work):
    import torch
    from piper.train.vits.lightning import VitsModel

    torch.manual_seed(seed)
    n = max(1, len(speakers))
    hp = dict(SMALL, num_symbols=256, num_speakers=n, gin_channels=gin, sample_rate=22050, mos_metric=None)
    model = VitsModel(**hp)
    g = model.model_g
    with torch.no_grad():
        # Piper zero-initialises these; random values make every stage count.
        for f in g.flow.flows:
            if hasattr(f, "post"):
                f.post.weight.normal_(0.0, 0.05)
                f.post.bias.normal_(0.0, 0.05)
        for f in g.dp.flows:
            if hasattr(f, "proj"):
                f.proj.weight.normal_(0.0, 0.1)
                f.proj.bias.normal_(0.0, 0.1)
        # Constant tensors (LayerNorm gammas and betas, zero biases) get small
        # random offsets: the exporter would merge equal initializers into one.
        for p in g.parameters():
            if p.numel() > 1 and bool(p.max() == p.min()):
                p.add_(torch.randn_like(p) * 0.05)
        # logw = (z - m) * exp(-logs): this m gives 2-4 frames per id.
        g.dp.flows[0].m.copy_(torch.tensor([[-0.2], [0.3]]))
    ckpt = os.path.join(work, f"{name}.ckpt")
    torch.save({
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": __import__("lightning").__version__,
        "epoch": 0,
        "global_step": 0,
    }, ckpt)
    return ckpt


def export(ckpt, out):
    """piper.train.export_onnx on the checkpoint (TorchScript exporter)."""
    import functools
    import torch
    from piper.train import export_onnx

    real = torch.onnx.export
    torch.onnx.export = functools.partial(real, dynamo=False)
    argv = sys.argv
    try:
        sys.argv = ["export_onnx", "--checkpoint", ckpt, "--output-file", out]
        export_onnx.main()
    finally:
        sys.argv = argv
        torch.onnx.export = real


def config(name, speakers, espeak, language):
    # The phoneme id map of Piper's English voices (joe's, 151 symbols).
    joe = os.path.join(ROOT, "voices", "en_US-joe-medium.onnx.json")
    if not os.path.exists(joe):
        sys.exit(f"{joe} is missing: run scripts/fetch-voice.sh first")
    with open(joe, encoding="utf-8") as f:
        id_map = json.load(f)["phoneme_id_map"]
    return {
        "audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": espeak},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": id_map,
        "num_symbols": 256,
        "num_speakers": max(1, len(speakers)),
        "speaker_id_map": speakers,
        "piper_version": "1.8.0",
        "language": language,
        "dataset": name,
    }


def check(onnx_path, cfg):
    """Seconds of a short sentence per speaker (default scales, onnxruntime)."""
    import numpy as np
    import onnxruntime as ort
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    voice = PiperVoice(config=PiperConfig.from_dict(cfg), session=ort.InferenceSession(onnx_path))
    sents = voice.phonemize(CHECK_TEXT[cfg["espeak"]["voice"]])
    ids = voice.phonemes_to_ids(sents[0])
    inf = cfg["inference"]
    scales = np.array([inf["noise_scale"], inf["length_scale"], inf["noise_w"]], np.float32)
    secs = []
    for s in range(cfg["num_speakers"]):
        feeds = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
                 "scales": scales}
        if cfg["num_speakers"] > 1:
            feeds["sid"] = np.array([s], np.int64)
        audio = voice.session.run(None, feeds)[0].reshape(-1)
        secs.append(audio.size / 22050)
        assert np.isfinite(audio).all()
    print(f"{os.path.basename(onnx_path)}: {len(ids)} ids -> " + ", ".join(f"{t:.2f} s" for t in secs))
    assert all(0.5 <= t <= 5.0 for t in secs), secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", default="/tmp/mkvoice-venv")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "voices"))
    a = ap.parse_args()
    ensure_venv(a.venv)
    import tempfile

    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name, speakers, gin, espeak, language, seed in VOICES:
            out = os.path.join(a.out, f"{name}.onnx")
            export(build(name, speakers, gin, seed, work), out)
            cfg = config(name, speakers, espeak, language)
            with open(out + ".json", "w", encoding="utf-8") as f:
                json.dump(cfg, f, ensure_ascii=False, indent=2)
                f.write("\n")
            check(out, cfg)
            print(f"{out}: {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()

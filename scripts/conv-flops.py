#!/usr/bin/env python3
"""FLOPs of every conv kernel of a Piper voice, per second of audio.

Reads the voice's .onnx (needs the `onnx` package) and its .onnx.json, finds
every Conv / ConvTranspose, and counts 2·cout·(cin/group)·k FLOPs per output
column (a transposed conv of stride u: 2·cout·cin·2 per output column, its
two live taps). Columns per second of audio: the encoder and duration
predictor run per phoneme id (--ids-per-second, default: measured by the
caller, 14 is typical English speech), the flow per frame
(sample_rate / hop), the decoder per frame times the upsampling done before
that layer. Attention products (T² terms) are not convs and are left out.
Prints a Markdown table per kernel shape and the totals per model part.

  scripts/conv-flops.py voices/en_US-joe-medium.onnx
"""
import argparse
import collections
import json
import math

import onnx
from onnx import helper


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--ids-per-second", type=float, default=14.0)
    a = ap.parse_args()
    cfg = json.load(open(a.model + ".json", encoding="utf-8"))
    m = onnx.load(a.model)
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    ups = [n for n in nodes if n.op_type == "ConvTranspose" and "/dec/" in n.name]
    strides = []
    for n in ups:
        at = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        strides.append(at["strides"][0])
    hop = math.prod(strides)
    frames = cfg["audio"]["sample_rate"] / hop
    rows = collections.OrderedDict()
    parts = collections.Counter()
    for n in nodes:
        w = inits.get(n.input[1])
        if w is None:
            continue
        at = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        group = at.get("group", 1)
        dil = at.get("dilations", [1])[0]
        name = n.name
        if n.op_type == "ConvTranspose":
            cin, cout, k = w
            per_col = 2 * cout * cin * 2
        else:
            cout, cin_g, k = w
            cin = cin_g * group
            per_col = 2 * cout * cin_g * k
        if "/enc_p/" in name or "/dp/" in name:
            part, cols = ("encoder" if "/enc_p/" in name else "duration"), a.ids_per_second
        elif "/flow/" in name:
            part, cols = "flow", frames
        elif "/dec/" in name:
            part = "decoder"
            if n.op_type == "ConvTranspose":
                i = ups.index(n)
                cols = frames * math.prod(strides[: i + 1])
            elif "conv_pre" in name:
                cols = frames
            elif "conv_post" in name:
                cols = frames * hop
            else:
                # resblocks.j: stage j // (kernels per stage)
                j = int(name.split("resblocks.")[1].split("/")[0])
                per_stage = len(cfg.get("resblock_kernel_sizes", [])) or 3
                cols = frames * math.prod(strides[: j // per_stage + 1])
        else:
            part, cols = "other", frames
        gflop = per_col * cols / 1e9
        kind = "convT" if n.op_type == "ConvTranspose" else ("depthwise" if group > 1 else "conv")
        key = (part, kind, cout, cin, k, dil)
        r = rows.setdefault(key, [0, 0.0])
        r[0] += 1
        r[1] += gflop
        parts[part] += gflop
    print(f"{a.model}: {frames:.1f} frames/s (hop {hop}), {a.ids_per_second} ids/s\n")
    print("| part | kernel | cout × cin × k (dilation) | count | GFLOP per s of audio |")
    print("|---|---|---|---|---|")
    for (part, kind, cout, cin, k, dil), (cnt, g) in rows.items():
        print(f"| {part} | {kind} | {cout} × {cin} × {k} ({dil}) | {cnt} | {g:.3f} |")
    print()
    for p, g in parts.items():
        print(f"{p}: {g:.2f} GFLOP per second of audio")
    print(f"total: {sum(parts.values()):.2f} GFLOP per second of audio")


if __name__ == "__main__":
    main()

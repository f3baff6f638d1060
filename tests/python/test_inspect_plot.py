#!/usr/bin/env python3
"""`wkvq inspect --plot DIR`: the KV lab's figures, checked as data, not as pictures.

* Every SVG is well-formed XML (xml.etree) with one panel per (layer, K|V), one band per stage
  (raw, smoothed, smoothed + rotated), one series per swept method and the weights-only
  reference line.
* The plotted values are the data: each polyline point mapped back to data through the panel's
  own tick marks (a linear fit of tick value, or log10 of it, against tick position) equals the
  value of kv_ranges_<model>.json / the sweep JSON within the 0.05 px rounding of the SVG.
* The data are right: the raw channel ranges equal a float64 numpy forward of stories260K
  (reference/model.py) over the same windows (sink position left out) within the f32 rounding
  bound of harness.f32_logit_tolerance's derivation; the smoothing is d = (max + min) / 2,
  s = max(r / mean r, 0.01); the smoothed ranges are (raw - d) / s; the smoothed + rotated ones
  equal the reference's per-head Hadamard rotation of the smoothed K/V.
* Bad input is refused with a message saying what was expected: a file where the directory
  should be, a missing or invalid sweep file, a JSON that is no sweep, --plot with nothing to
  draw, a layer out of range.
"""
import json
import math
import os
import xml.etree.ElementTree as ET

import numpy as np

import harness
from harness import EPS32, Checker
from reference.formats import read_llama2c
from reference.kv_quant import stats_smoothing
from reference.model import apply_rope, forward, rmsnorm

CTX = 128
WINDOWS = 3
SINKS = 1
# The SVG writes coordinates to 0.1 px: a point is within 0.05 px of its exact place, and so is
# each tick mark it is read against, so a value read back is within 0.1 px of its data.
PX = 0.1
NS = "{http://www.w3.org/2000/svg}"


def groups(el, cls):
    return [g for g in el.iter(NS + "g") if g.get("class") == cls]


def points(poly):
    return np.array([[float(v) for v in p.split(",")] for p in poly.get("points").split()])


def axis_map(panel, which):
    """(to_value, units per px) of a panel's axis, fitted to its tick marks."""
    ax = groups(panel, which + "-axis")[0]
    log = ax.get("data-log") == "1"
    pos, val = [], []
    for t in groups(ax, "tick"):
        line = t.find(NS + "line")
        pos.append(float(line.get("x1" if which == "x" else "y1")))
        v = float(t.find(NS + "text").text)
        val.append(math.log10(v) if log else v)
    slope, icpt = np.polyfit(pos, val, 1)
    fit_err = np.max(np.abs(np.polyval([slope, icpt], pos) - val))
    if fit_err > 1e-6 * max(1.0, np.max(np.abs(val))) + abs(slope) * PX:
        raise harness.TestFailure(f"{which} ticks are not on one {'log' if log else 'linear'} "
                                  f"scale (misfit {fit_err:.3g})")
    f = (lambda p: 10 ** (slope * p + icpt)) if log else (lambda p: slope * p + icpt)
    return f, abs(slope)


def reference_kv(model_path, cids):
    """Per layer, float64 K (after RoPE) and V of every window position >= SINKS, and the
    magnitude sum_j |W_cj| |xb_j| bounding their f32 rounding."""
    fp, _ = read_llama2c(model_path)
    fp = fp.astype(np.float64)
    cfg, w = fp.config, fp.weights
    ks, vs, mags = [[] for _ in w.layers], [[] for _ in w.layers], [0.0] * cfg.n_layers
    for i in range(WINDOWS):
        toks = np.asarray(cids[i * CTX:(i + 1) * CTX])
        _, hidden = forward(fp, toks, return_hidden=True)
        inputs = [w.emb[toks]] + hidden[:-1]
        for li, layer in enumerate(w.layers):
            xb = rmsnorm(inputs[li], layer.att_norm, cfg.norm_eps)
            k = apply_rope((xb @ layer.wk.T).reshape(CTX, cfg.n_kv_heads, cfg.head_dim),
                           np.arange(CTX), cfg.rope_theta, cfg.rope_layout).reshape(CTX, -1)
            ks[li].append(k[SINKS:])
            vs[li].append((xb @ layer.wv.T)[SINKS:])
            m = max((np.abs(xb) @ np.abs(layer.wk.T)).max(),
                    (np.abs(xb) @ np.abs(layer.wv.T)).max())
            mags[li] = max(mags[li], float(m))
    k_max = max(cfg.dim, cfg.hidden_dim, cfg.q_dim, CTX)
    tol = [EPS32 * np.sqrt(k_max) * np.sqrt(cfg.n_layers + 1) * m for m in mags]
    return fp, [np.concatenate(k) for k in ks], [np.concatenate(v) for v in vs], tol


def hadamard(n):
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def check_data(c, data, model_path, cids):
    fp, ks, vs, tol = reference_kv(model_path, cids)
    cfg = fp.config
    names = [s["name"] for s in data["stages"]]
    c.check(names == ["raw", "smoothed", "smoothed + rotated"], f"stages {names}")
    c.check(data["tokens"] == WINDOWS * (CTX - SINKS), f"tokens {data['tokens']}")
    st = {s["name"]: s for s in data["stages"]}
    sm = data["smoothing"]
    hd = cfg.head_dim
    H = hadamard(hd)
    ref_ranges = []
    for li in range(cfg.n_layers):
        kv = np.concatenate([ks[li], vs[li]], 1)
        ref_ranges.append((kv.min(0), kv.max(0)))
    ref_smooth = stats_smoothing(ref_ranges, cfg.kv_dim)
    for li in range(cfg.n_layers):
        for kind, x in (("k", ks[li]), ("v", vs[li])):
            raw_lo, raw_hi = (np.array(st["raw"][f"{kind}_{e}"][li]) for e in ("min", "max"))
            d, s = np.array(sm[f"{kind}_shift"][li]), np.array(sm[f"{kind}_scale"][li])
            err = max(np.abs(raw_lo - x.min(0)).max(), np.abs(raw_hi - x.max(0)).max())
            c.check(err <= tol[li], f"layer {li} {kind}: raw ranges vs float64 reference "
                    f"{err:.2e} <= {tol[li]:.2e}")
            at = 0 if kind == "k" else 2
            rd, rs = ref_smooth[li][at], ref_smooth[li][at + 1]
            # r and mean(r) are off by at most tol each: |ds/s| <= tol / r + tol / mean(r).
            r = (raw_hi - raw_lo) / 2
            d_err = np.abs(d - rd).max()
            s_rel = np.abs(s / rs - 1) / (tol[li] / r + tol[li] / r.mean())
            c.check(d_err <= tol[li] and s_rel.max() <= 1, f"layer {li} {kind}: smoothing d, s "
                    f"= stats of the reference (|dd| {d_err:.1e}, |ds/s| at {s_rel.max():.2f} "
                    "of its bound)")
            # The smoothed ranges are the raw ones through (x - d) / s, in f32.
            f32 = lambda a: np.asarray(a, np.float32)
            want_lo, want_hi = (f32(raw_lo) - f32(d)) / f32(s), (f32(raw_hi) - f32(d)) / f32(s)
            got_lo = np.array(st["smoothed"][f"{kind}_min"][li])
            got_hi = np.array(st["smoothed"][f"{kind}_max"][li])
            e = max(np.abs(got_lo - want_lo).max(), np.abs(got_hi - want_hi).max())
            c.check(e <= 4 * EPS32 * np.abs(want_hi).max(), f"layer {li} {kind}: smoothed = "
                    f"(raw - d) / s ({e:.1e})")
            # Smoothed + rotated: the reference rotates its own smoothed K/V per head.
            y = ((x - d) / s).reshape(len(x), -1, hd) @ H.T
            y = y.reshape(len(x), -1)
            rot_tol = np.sqrt(hd) * tol[li] / s.min() + 4 * EPS32 * np.abs(y).max()
            got_lo = np.array(st["smoothed + rotated"][f"{kind}_min"][li])
            got_hi = np.array(st["smoothed + rotated"][f"{kind}_max"][li])
            e = max(np.abs(got_lo - y.min(0)).max(), np.abs(got_hi - y.max(0)).max())
            c.check(e <= rot_tol, f"layer {li} {kind}: smoothed + rotated vs reference "
                    f"Hadamard {e:.2e} <= {rot_tol:.2e}")


def check_ranges_svg(c, path, data, n_layers):
    root = ET.parse(path).getroot()  # raises on malformed XML
    cells = groups(root, "cell")
    c.check(len(cells) == 2 * n_layers, f"{len(cells)} panels for {n_layers} layers x (K, V)")
    legend = [g.get("data-name") for g in groups(root, "entry")]
    c.check(legend == [s["name"] for s in data["stages"]], f"legend {legend}")
    worst = 0.0
    for cell in cells:
        li, kind = int(cell.get("data-layer")), cell.get("data-kv").lower()
        panel = groups(cell, "panel")[0]
        fx, ux = axis_map(panel, "x")
        fy, uy = axis_map(panel, "y")
        bands = groups(panel, "band")
        if not c.check(len(bands) == len(data["stages"]), f"layer {li} {kind}: {len(bands)} "
                       "bands, one per stage"):
            continue
        for band, stage in zip(bands, data["stages"]):
            row = data["layers"].index(li)
            for edge, key in (("hi", "max"), ("lo", "min")):
                poly = [p for p in band.iter(NS + "polyline") if p.get("class") == edge][0]
                pts = points(poly)
                want = np.array(stage[f"{kind}_{key}"][row])
                x_err = np.abs(fx(pts[:, 0]) - np.arange(len(want))).max() / ux
                y_err = np.abs(fy(pts[:, 1]) - want).max() / uy
                worst = max(worst, x_err, y_err)
    c.check(worst <= PX + 1e-6, f"every band point maps back to its data within {worst:.3f} px "
            f"(<= {PX})")


def check_sweep_svg(c, path, sweep):
    root = ET.parse(path).getroot()
    methods = []
    for r in sweep["rows"]:
        if "result" in r and r["method"] not in methods:
            methods.append(r["method"])
    series = groups(root, "series")
    names = [s.get("data-name") for s in series]
    c.check(names == methods, f"one series per method with a result: {names}")
    panel = groups(root, "panel")[0]
    fx, ux = axis_map(panel, "x")
    fy, uy = axis_map(panel, "y")  # log: uy is decades per px
    worst = 0.0
    for s, m in zip(series, methods):
        want = sorted({r["config"]: (r["result"]["kv_bits_per_element"], r["result"]["kld"])
                       for r in sweep["rows"] if r["method"] == m and "result" in r}.values())
        lines = [p for p in s.iter(NS + "polyline")]  # one: no point of the sweep is <= 0
        pts = points(lines[0])
        if not c.check(len(pts) == len(want), f"{m}: {len(pts)} points, {len(want)} configs"):
            continue
        for (px, py), (bits, kld) in zip(pts, want):
            worst = max(worst, abs(fx(px) - bits) / ux,
                        abs(math.log10(fy(py)) - math.log10(kld)) / uy)
    c.check(worst <= PX + 1e-6, f"sweep points map back to (bits, KLD) within {worst:.3f} px")
    ref = groups(root, "reference")
    y = float(ref[0].find(NS + "line").get("y1")) if ref else float("nan")
    w_only = sweep["w_only"]["kld"]
    c.check(len(ref) == 1 and abs(math.log10(fy(y)) - math.log10(w_only)) / uy <= PX + 1e-6,
            f"the weights-only reference line at KLD {w_only:.4g}")


def expect_error(c, wkvq, args, part, what):
    cp = harness.run_wkvq(wkvq, args, check=False)
    err = cp.stderr.decode("utf-8", "replace")
    c.check(cp.returncode not in (0,) and cp.returncode > 0 and part in err,
            f"{what}: exit {cp.returncode}, message has {part!r}: {err.strip()[-200:]!r}")


def test(args):
    sh = args.shared
    model_path = f"{sh}/models/stories260K/stories260K.bin"
    calib, text = f"{sh}/data/tinystories/calib.txt", f"{sh}/data/tinystories/test.txt"
    harness.require_files(model_path, calib, text)
    out, tmp = os.path.join(args.tmp, "figures"), args.tmp
    sweep_path = os.path.join(tmp, "sweep.json")
    cp = harness.run_wkvq(args.wkvq, [
        "ppl", "--model", model_path, "--text", text, "--calib", calib, "--calib-windows", 2,
        "--max-windows", 1, "--wbits", 4, "--kv-sweep", "--kv-sweep-methods", "rtn", "wkvq",
        "kivi", "q4_1", "--kv-budgets", "3.5,4.5", "--json"])
    with open(sweep_path, "wb") as f:
        f.write(cp.stdout)
    sweep = json.loads(cp.stdout)
    cp = harness.run_wkvq(args.wkvq, [
        "inspect", "--model", model_path, "--calib", calib, "--calib-ctx", CTX,
        "--calib-windows", WINDOWS, "--calib-sinks", SINKS, "--plot", out, "--sweep", sweep_path])
    stdout = cp.stdout.decode()
    c = Checker()
    files = ["kv_sweep_sweep.svg", "kv_ranges_stories260K.svg", "kv_ranges_stories260K.json"]
    for f in files:
        c.check(f"wrote {os.path.join(out, f)}" in stdout, f"prints the path of {f}")
    with open(os.path.join(out, files[2])) as f:
        data = json.load(f)
    cids = harness.wkvq_tokenize(args.wkvq, ["--model", model_path, "--text-file", calib],
                                 bos=True)
    check_data(c, data, model_path, cids)
    check_ranges_svg(c, os.path.join(out, files[1]), data, 5)
    check_sweep_svg(c, os.path.join(out, files[0]), sweep)

    # --plot-layers draws those layers only; the sweep alone loads no model.
    cp = harness.run_wkvq(args.wkvq, [
        "inspect", "--model", model_path, "--calib", calib, "--calib-ctx", CTX,
        "--calib-windows", 1, "--plot", os.path.join(tmp, "two"), "--plot-layers", "1,3"])
    root = ET.parse(os.path.join(tmp, "two", files[1])).getroot()
    got = sorted({(int(g.get("data-layer")), g.get("data-kv")) for g in groups(root, "cell")})
    c.check(got == [(1, "K"), (1, "V"), (3, "K"), (3, "V")], f"--plot-layers 1,3: {got}")
    cp = harness.run_wkvq(args.wkvq, ["inspect", "--plot", os.path.join(tmp, "alone"),
                                      "--sweep", sweep_path])
    c.check(b"model" not in cp.stdout.split(b"\n")[0] and
            os.path.exists(os.path.join(tmp, "alone", files[0])), "--sweep alone: the figure")

    a_file = os.path.join(tmp, "a_file")
    with open(a_file, "w") as f:
        f.write("x")
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"rows": [')
    nosweep = os.path.join(tmp, "nosweep.json")
    with open(nosweep, "w") as f:
        json.dump({"ppl": 3.0}, f)
    model = ["--model", model_path]
    expect_error(c, args.wkvq, ["inspect", "--plot", a_file, "--sweep", sweep_path],
                 "exists and is not a directory", "--plot at a file")
    expect_error(c, args.wkvq, ["inspect", "--plot", os.path.join(a_file, "sub"), "--sweep",
                                sweep_path], "cannot create the directory", "--plot under a file")
    expect_error(c, args.wkvq, ["inspect", "--plot", out, "--sweep", os.path.join(tmp, "none")],
                 "none", "a missing sweep file")
    expect_error(c, args.wkvq, ["inspect", "--plot", out, "--sweep", bad],
                 "not valid JSON", "a sweep file that is not JSON")
    expect_error(c, args.wkvq, ["inspect", "--plot", out, "--sweep", nosweep],
                 "no \"rows\" array; expected the JSON that `wkvq ppl --kv-sweep --json` prints",
                 "a JSON that is no sweep")
    expect_error(c, args.wkvq, ["inspect", *model, "--plot", out], "nothing to draw",
                 "--plot without --calib or --sweep")
    expect_error(c, args.wkvq, ["inspect", *model, "--sweep", sweep_path], "give --plot DIR",
                 "--sweep without --plot")
    expect_error(c, args.wkvq, ["inspect", *model, "--calib", calib, "--calib-windows", 1,
                                "--plot", out, "--plot-layers", "7"], "layer 7 out of range",
                 "a layer out of range")
    c.finish()


if __name__ == "__main__":
    harness.main(test)

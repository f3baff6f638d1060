#!/usr/bin/python3
"""`--kv-auto BITS` (cli/kv_auto.h) and quantize's KV default on stories260K:

1. `ppl --kv-auto 4.5` lists its candidates (one per values' bits and group within 4.5 bits per
   element at the calibration context, the rest of the budget as an fp16 window), marks the one
   with the least KLD on the calibration windows, and evaluates exactly that configuration: the
   same PPL and KLD as `ppl` with the chosen settings given explicitly (the ranges measured per
   channel and merged into groups equal the ranges measured per group), at <= 4.5 bits.
2. `quantize --method rtn --calib C` with no KV option writes that choice (kv_meta rel8, its
   bits, group and window) and the static ranges, and the directory evaluates as the in-memory
   model (and with a float cache by --kvbits 32 alone); `--method gptq` has the same default,
   with the ranges measured on the GPTQ weights; without --calib rtn keeps KV4 in groups of
   head_dim and says how to get the default.
3. `ppl --ablation --kv-auto 4.5` adds the chosen format's rung with the same PPL and KLD.
4. Bad input: --kv-auto beside an explicit KV format option, without --calib, or below the
   cheapest candidate is refused with a message naming the fix.
"""
import json
import os
import re

import harness
from harness import Checker

CTX = 512
WINDOWS = 4
CAND = re.compile(r"^\s+(\*?)\s*K4 V(\d) g(\d+) w(\d+) rel8: ([0-9.]+) bits, KLD ([0-9.]+)$")


def candidates(stderr: str):
    return [(m.group(1) == "*", int(m.group(2)), int(m.group(3)), int(m.group(4)),
             float(m.group(5)), float(m.group(6)))
            for m in (CAND.match(line) for line in stderr.splitlines()) if m]


def test(args):
    sh = args.shared
    model = f"{sh}/models/stories260K/stories260K.bin"
    text, calib = f"{sh}/data/tinystories/test.txt", f"{sh}/data/tinystories/calib.txt"
    harness.require_files(model, text, calib)
    c = Checker()
    base = ["ppl", "--model", model, "--text", text, "--calib", calib, "--ctx", CTX,
            "--max-windows", WINDOWS, "--wbits", 4, "--kld", "--json"]

    cp = harness.run_wkvq(args.wkvq, base + ["--kv-auto", 4.5])
    auto = json.loads(cp.stdout.decode())
    cands = candidates(cp.stderr.decode())
    chosen = [x for x in cands if x[0]]
    c.check(len(cands) >= 3 and len(chosen) == 1,
            f"{len(cands)} candidates listed, {len(chosen)} chosen")
    c.check(all(x[4] <= 4.5 + 1e-9 for x in cands), "every candidate within 4.5 bits")
    if chosen:
        _, vbits, group, window, bits, kld = chosen[0]
        c.check(kld == min(x[5] for x in cands), f"the chosen K4 V{vbits} g{group} w{window} has "
                f"the least calibration KLD ({kld})")
        c.check(abs(auto["kv_bits_per_element"] - bits) < 1e-9 and bits <= 4.5 + 1e-9,
                f"evaluated at {auto['kv_bits_per_element']} bits per element (listed {bits})")
        cp = harness.run_wkvq(args.wkvq, base + [
            "--kvbits", 4, "--kv-vbits", vbits, "--kvgroup", group, "--kv-window", window,
            "--kv-meta", "rel8", "--kv-smooth", "stats"])
        explicit = json.loads(cp.stdout.decode())
        c.check(explicit["ppl"] == auto["ppl"] and explicit["kld"] == auto["kld"],
                f"--kv-auto evaluates its choice: ppl {auto['ppl']} / {explicit['ppl']}, "
                f"kld {auto['kld']} / {explicit['kld']}")

    out = os.path.join(args.tmp, "q")
    cp = harness.run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", model,
                                      "--calib", calib, "--out", out])
    qc = json.load(open(os.path.join(out, "config.json")))["quantization_config"]
    if chosen:
        c.check(qc.get("kv_meta") == "rel8" and qc["kv_group_size"] == group and
                qc.get("kv_window", 0) == window and qc.get("kv_value_bits", 4) == vbits,
                f"quantize --calib writes the choice: {qc.get('kv_meta')} g{qc['kv_group_size']} "
                f"w{qc.get('kv_window')} V{qc.get('kv_value_bits')}")
    cp = harness.run_wkvq(args.wkvq, ["ppl", "--model", out, "--text", text, "--ctx", CTX,
                                      "--max-windows", WINDOWS, "--json"])
    saved = json.loads(cp.stdout.decode())
    c.check(abs(saved["ppl"] / auto["ppl"] - 1) < 1e-3,
            f"the directory evaluates as the in-memory model: ppl {saved['ppl']} vs {auto['ppl']}")
    # ppl --ablation --kv-auto 4.5 adds the rung of that format: the same numbers as ppl
    cp = harness.run_wkvq(args.wkvq, ["ppl", "--ablation", "--model", model, "--text", text,
                                      "--calib", calib, "--ctx", CTX, "--max-windows", WINDOWS,
                                      "--kv-auto", 4.5, "--json"])
    rungs = {r["rung"]: r["decode"] for r in json.loads(cp.stdout.decode())["rungs"]}
    name = (f"W4 K4 V{chosen[0][1]} g{chosen[0][2]} w{chosen[0][3]} rel8 RTN + POQ + stats "
            "smoothing") if chosen else "(no choice listed)"
    got = rungs.get(name, {})
    c.check(got.get("ppl") == auto["ppl"] and got.get("kld") == auto["kld"],
            f"the ablation's rung '{name}' is --kv-auto's evaluation: {got.get('kld')} / "
            f"{auto['kld']}")
    # a float cache on that directory by --kvbits alone (its window, value bits and rel8 dropped)
    cp = harness.run_wkvq(args.wkvq, ["ppl", "--model", out, "--text", text, "--ctx", CTX,
                                      "--max-windows", 1, "--kvbits", 32, "--json"], check=False)
    c.check(cp.returncode == 0 and json.loads(cp.stdout.decode()).get("kv_bits_per_element",
                                                                       32) == 32,
            f"--kvbits 32 on it runs a float cache: {cp.stderr.decode().strip()[-160:]}")
    # --method gptq has the same default; its rel8 ranges are measured with the GPTQ weights
    gq = os.path.join(args.tmp, "gptq")
    cp = harness.run_wkvq(args.wkvq, ["quantize", "--method", "gptq", "--model", model,
                                      "--calib", calib, "--samples", 4, "--out", gq])
    qc = json.load(open(os.path.join(gq, "config.json")))["quantization_config"]
    err = cp.stderr.decode()
    c.check(qc["method"] == "gptq" and qc.get("kv_meta") == "rel8" and "kv auto 4.5" in err and
            re.search(r"kv rel8 ranges: .*\(quantized model", err) is not None,
            f"quantize --method gptq --calib defaults to --kv-auto 4.5: {qc.get('kv_meta')}")
    plain = os.path.join(args.tmp, "plain")
    cp = harness.run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", model,
                                      "--out", plain])
    qc = json.load(open(os.path.join(plain, "config.json")))["quantization_config"]
    c.check(qc["kv_bits"] == 4 and "kv_meta" not in qc and "--calib" in cp.stderr.decode(),
            "without --calib: KV4, fp16 metadata, and a note naming --calib")

    for bad, needle in [(["--kv-auto", 4.5, "--kvbits", 4], "leave out"),
                        (["--kv-auto", 2.0], "cheapest"),
                        (["--kv-auto", 4.5, "--kv-meta", "rel8"], "leave out")]:
        cp = harness.run_wkvq(args.wkvq, base + bad, check=False)
        err = cp.stderr.decode()
        c.check(cp.returncode != 0 and needle in err, f"{bad} refused: {err.strip()[-160:]}")
    cp = harness.run_wkvq(args.wkvq, ["ppl", "--model", model, "--text", text, "--ctx", CTX,
                                      "--max-windows", 1, "--wbits", 4, "--kv-auto", 4.5],
                          check=False)
    c.check(cp.returncode != 0 and "--calib" in cp.stderr.decode(),
            "--kv-auto without --calib is refused, naming --calib")
    c.finish()


if __name__ == "__main__":
    harness.main(test)

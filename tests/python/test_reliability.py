#!/usr/bin/python3
"""Reliability of the CLI, process-level checks on stories260K and wkvq-ref-6m:

1. A failed save keeps the previous model: `quantize --out DIR` into an existing quantized
   directory under a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so writes fail with EFBIG)
   exits non-zero, leaves DIR byte-identical and loadable, and leaves no DIR.wkvq-* temporaries.
2. One KV settings check for writer and reader: `quantize --kvgroup 33` (32 KV channels) fails at
   write time with the message the reader gives for kv_group_size 33 in config.json; `ppl
   --kvgroup 33` is refused; a tokenizer whose vocabulary is larger than the model's is refused.
3. No silent truncation: num_hidden_layers below the layers in the safetensors is refused; a
   flipped byte in model.safetensors of a quantized directory fails the load with a checksum
   error, while a format_version 1 directory (no checksums) still loads; --threads far above the
   hardware threads and an out-of-range --seed are refused.
4. A write error on stdout (`> /dev/full`) fails the command with a message naming stdout.
5. Kernel choice: WKVQ_GEMV pins the int4 GEMV and `ppl --json` / `bench --json` report it;
   two runs pinned alike give bit-identical results; a bad WKVQ_GEMV is refused; likewise
   WKVQ_DECODE_GEMV=int8 is reported (or refused where the CPU runs no int8 kernels: the AVX2
   ones, or AVX-512 with AVX512_VNNI), a bad value refused; --decode-gemv / --prefill-gemm
   override the variables (reported pinned as asked), a bad value refused;
   WKVQ_AMX=off is reported, a bad value refused.
6. Progress: with stderr not a terminal no carriage returns, one summary line instead; --quiet
   prints nothing on stderr.
"""
import json
import os
import resource
import shutil
import signal
import subprocess

import harness
from harness import Checker


def run(binary, args, env=None, limit_bytes=None, stdout=subprocess.PIPE):
    def pre():
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    full_env = dict(os.environ)
    full_env.update(env or {})
    cp = subprocess.run([binary] + [str(a) for a in args], stdout=stdout, stderr=subprocess.PIPE,
                        env=full_env, preexec_fn=pre, timeout=600)
    err = cp.stderr.decode("utf-8", "replace")
    print(f"  $ wkvq {' '.join(str(a) for a in args)}  [rc={cp.returncode}]  "
          f"{err.strip().splitlines()[-1] if err.strip() else ''}", flush=True)
    return cp, err


def tree_bytes(d):
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def check_failed_save(c, wkvq, model, text, tmp):
    out = os.path.join(tmp, "save", "q")
    os.makedirs(os.path.dirname(out))
    base = ["quantize", "--method", "rtn", "--model", model]
    cp, err = run(wkvq, [*base, "--out", out])
    c.check(cp.returncode == 0, f"first save succeeds ({err.strip()[-200:]})")
    before = tree_bytes(out)
    size = len(before["model.safetensors"])
    # the second save differs (another group size) and cannot write its model.safetensors
    cp, err = run(wkvq, [*base, "--wgroup", 32, "--out", out], limit_bytes=size // 2)
    c.check(cp.returncode != 0, f"a save under a file size limit of {size // 2} bytes fails "
            f"(rc {cp.returncode})")
    c.check(os.path.isdir(out) and tree_bytes(out) == before,
            "the previous directory is left byte-identical")
    leftovers = sorted(n for n in os.listdir(os.path.dirname(out)) if n != "q")
    c.check(leftovers == [], f"no temporaries are left beside it (found {leftovers})")
    cp, err = run(wkvq, ["ppl", "--model", out, "--text", text, "--max-windows", 1])
    c.check(cp.returncode == 0, "the previous directory still loads")
    cp, err = run(wkvq, [*base, "--wgroup", 32, "--out", out])
    with open(os.path.join(out, "config.json")) as f:
        group = json.load(f)["quantization_config"]["group_size"]
    c.check(cp.returncode == 0 and group == 32 and sorted(os.listdir(os.path.dirname(out))) == ["q"],
            f"without the limit the save replaces it (group_size {group})")
    return out


def check_kv_settings(c, wkvq, model, text, qdir, tmp):
    cp, err = run(wkvq, ["quantize", "--method", "rtn", "--model", model, "--kvgroup", 33,
                         "--out", os.path.join(tmp, "g33")])
    c.check(cp.returncode != 0 and not os.path.exists(os.path.join(tmp, "g33", "config.json")),
            "quantize --kvgroup 33 (32 KV channels) fails and writes nothing")
    core = "a KV group is 0 (head_dim) or 1..32 channels"
    c.check(core in err, f"... with the KV settings message ({err.strip()[-160:]})")
    bad = os.path.join(tmp, "g33_edited")
    shutil.copytree(qdir, bad)
    with open(os.path.join(bad, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"]["kv_group_size"] = 33
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump(cfg, f)
    cp, err2 = run(wkvq, ["ppl", "--model", bad, "--text", text, "--max-windows", 1])
    c.check(cp.returncode != 0 and core in err2 and "kv_group_size" in err2,
            f"the reader refuses kv_group_size 33 with the same message ({err2.strip()[-160:]})")
    cp, err = run(wkvq, ["ppl", "--model", model, "--text", text, "--max-windows", 1,
                         "--kvbits", 4, "--kvgroup", 33, "--json"])
    c.check(cp.returncode != 0 and core in err, "ppl --kvgroup 33 is refused, not run as g32")
    cp, err = run(wkvq, ["ppl", "--model", model, "--text", text, "--max-windows", 1,
                         "--kvbits", 4, "--kvgroup", 12, "--json"])
    c.check(cp.returncode == 0 and "KV4 g12" in json.loads(cp.stdout)["quantization"],
            "ppl --kvgroup 12 (does not divide 32: the last group is shorter) runs as g12")


def check_tokenizer_vocab(c, wkvq, model, text, big_tok, tmp):
    cp, err = run(wkvq, ["quantize", "--method", "rtn", "--model", model, "--tokenizer", big_tok,
                         "--out", os.path.join(tmp, "tok")])
    c.check(cp.returncode != 0 and "31999" in err and "512" in err and
            not os.path.exists(os.path.join(tmp, "tok")),
            f"quantize --tokenizer with 32000 tokens for a 512-token model is refused "
            f"({err.strip()[-160:]})")
    cp, err = run(wkvq, ["ppl", "--model", model, "--tokenizer", big_tok, "--text", text,
                         "--max-windows", 1])
    c.check(cp.returncode == 1 and "embedding rows" in err,
            f"ppl with that tokenizer is refused, no crash (rc {cp.returncode})")


def check_truncation(c, wkvq, ref6m, qdir, text, tmp):
    fewer = os.path.join(tmp, "fewer_layers")
    os.makedirs(fewer)
    with open(os.path.join(ref6m, "config.json")) as f:
        cfg = json.load(f)
    n = cfg["num_hidden_layers"]
    cfg["num_hidden_layers"] = n - 1
    with open(os.path.join(fewer, "config.json"), "w") as f:
        json.dump(cfg, f)
    for name in ("model.safetensors", "tokenizer.model"):
        shutil.copy(os.path.join(ref6m, name), os.path.join(fewer, name))
    cp, err = run(wkvq, ["logits", "--model", fewer, "--tokens", "1,2,3",
                         "--out", os.path.join(tmp, "l.npy")])
    c.check(cp.returncode != 0 and "num_hidden_layers" in err and f"layer {n - 1}" in err,
            f"num_hidden_layers {n - 1} with {n} layers of tensors is refused "
            f"({err.strip()[-160:]})")

    flipped = os.path.join(tmp, "flipped")
    shutil.copytree(qdir, flipped)
    st = os.path.join(flipped, "model.safetensors")
    with open(st, "r+b") as f:
        f.seek(os.path.getsize(st) - 100)  # inside the last tensor's bytes
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x10]))
    cp, err = run(wkvq, ["ppl", "--model", flipped, "--text", text, "--max-windows", 1])
    c.check(cp.returncode != 0 and "checksum" in err and "model.safetensors" in err,
            f"a flipped bit in model.safetensors fails the load ({err.strip()[-160:]})")
    old = os.path.join(tmp, "version1")
    shutil.copytree(qdir, old)
    with open(os.path.join(old, "config.json")) as f:
        cfg = json.load(f)
    c.check(cfg["quantization_config"].get("format_version") == 4 and
            "model.safetensors" in cfg["quantization_config"].get("checksums", {}),
            "a new directory is format_version 4 (table storage) with checksums")
    cfg["quantization_config"]["format_version"] = 1
    cfg["quantization_config"].pop("checksums", None)
    with open(os.path.join(old, "config.json"), "w") as f:
        json.dump(cfg, f)
    cp, err = run(wkvq, ["ppl", "--model", old, "--text", text, "--max-windows", 1])
    c.check(cp.returncode == 0, "a format_version 1 directory (no checksums) still loads")


def check_ranges(c, wkvq, model, text):
    cores = os.cpu_count() or 1
    cp, err = run(wkvq, ["ppl", "--model", model, "--text", text, "--max-windows", 1,
                         "--threads", 1000])
    c.check(cp.returncode != 0 and "--threads" in err and "1000" in err,
            f"--threads 1000 on {cores} hardware threads is refused ({err.strip()[-160:]})")
    cp, err = run(wkvq, ["ppl", "--model", model, "--text", text, "--max-windows", 1,
                         "--threads", 2 * cores])
    c.check(cp.returncode == 0, f"--threads {2 * cores} (2x the hardware threads) runs")
    for cmd in (["generate", "--model", model, "--steps", 4],
                ["bench", "--random-shape", "stories260k-shape", "--prefill", 4, "--decode", 2]):
        for seed in ("-1", str(2 ** 64), "1e3"):
            cp, err = run(wkvq, [*cmd, "--seed", seed])
            c.check(cp.returncode != 0 and "--seed" in err,
                    f"{cmd[0]} --seed {seed} is refused, not wrapped")
    cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 4,
                         "--decode", 2, "--seed", str(2 ** 64 - 1)])
    c.check(cp.returncode == 0, "bench --seed 2^64-1 (the largest) runs")
    # the fp16 cache bench --parallel compares against is a cache of its own, not the int one's
    # settings with 16 bits (those kept --kv-vbits and were refused)
    cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 8,
                         "--decode", 2, "--kvbits", 4, "--kv-vbits", 2, "--kv-window", 4,
                         "--parallel", 2])
    c.check(cp.returncode == 0, f"bench --parallel 2 with --kv-vbits 2 --kv-window 4 runs "
                                f"({err.strip()[-160:]})")


def check_stdout_errors(c, wkvq, model, text):
    cases = [["ppl", "--model", model, "--text", text, "--max-windows", 1, "--json"],
             ["tokenize", "--model", model, "--prompt", "Once upon a time"],
             ["generate", "--model", model, "--steps", 8]]
    for args in cases:
        with open("/dev/full", "wb") as full:
            cp, err = run(wkvq, args, stdout=full)
        c.check(cp.returncode != 0 and "stdout" in err,
                f"{args[0]} > /dev/full fails naming stdout ({err.strip()[-120:]})")


def check_kernels(c, wkvq, qdir, model, text):
    results = {}
    for form in ("dot", "scaled", "table", "dot"):
        cp, err = run(wkvq, ["ppl", "--model", qdir, "--text", text, "--max-windows", 2,
                             "--json"], env={"WKVQ_GEMV": form})
        if cp.returncode != 0 and form in ("scaled", "table") and "AVX-512" in err:
            print(f"  (no AVX-512 here: WKVQ_GEMV={form} is refused, as documented)")
            continue
        j = json.loads(cp.stdout)
        k = j.get("kernels", {})
        c.check(k.get("int4_gemv") == form and k.get("int4_gemv_pinned") is True,
                f"WKVQ_GEMV={form}: ppl --json reports kernels {k}")
        if form in results:
            c.check(j["nll"] == results[form], f"two runs with WKVQ_GEMV={form}: identical nll")
        results[form] = j["nll"]
    cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 4,
                         "--decode", 2, "--wbits", 4, "--json"],
                  env={"WKVQ_GEMV": "dot"})
    k = json.loads(cp.stdout).get("kernels", {}) if cp.returncode == 0 else {}
    c.check(k.get("int4_gemv") == "dot" and "isa" in k, f"bench --json reports kernels {k}")
    cp, err = run(wkvq, ["ppl", "--model", qdir, "--text", text, "--max-windows", 1],
                  env={"WKVQ_GEMV": "fast"})
    c.check(cp.returncode != 0 and "WKVQ_GEMV" in err, "WKVQ_GEMV=fast is refused")
    cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 4,
                         "--decode", 2, "--wbits", 4, "--json"], env={"WKVQ_DECODE_GEMV": "int8"})
    if cp.returncode != 0 and "AVX512_VNNI" in err:
        print("  (no AVX512_VNNI here: WKVQ_DECODE_GEMV=int8 is refused, as documented)")
    else:
        k = json.loads(cp.stdout).get("kernels", {}) if cp.returncode == 0 else {}
        c.check(k.get("decode_gemv") == "int8" and k.get("decode_gemv_pinned") is True,
                f"WKVQ_DECODE_GEMV=int8: bench --json reports kernels {k}")
    cp, err = run(wkvq, ["ppl", "--model", qdir, "--text", text, "--max-windows", 1],
                  env={"WKVQ_DECODE_GEMV": "fast"})
    c.check(cp.returncode != 0 and "WKVQ_DECODE_GEMV" in err, "WKVQ_DECODE_GEMV=fast is refused")
    # The command-line options override the variables: pinned as asked, whatever the environment.
    for flag, var, key in (("--decode-gemv", "WKVQ_DECODE_GEMV", "decode_gemv"),
                           ("--prefill-gemm", "WKVQ_PREFILL_GEMM", "prefill_gemm")):
        for asked, env_value in (("f32", "int8"), ("int8", "f32")):
            cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 4,
                                 "--decode", 2, "--wbits", 4, "--json", flag, asked],
                          env={var: env_value})
            if asked == "int8" and cp.returncode != 0 and "AVX512_VNNI" in err:
                c.check(flag in err, f"{flag} int8 without int8 kernels names the option: {err}")
                continue
            k = json.loads(cp.stdout).get("kernels", {}) if cp.returncode == 0 else {}
            c.check(k.get(key) == asked and k.get(key + "_pinned") is True,
                    f"{flag} {asked} over {var}={env_value}: bench --json reports kernels {k}")
        cp, err = run(wkvq, ["ppl", "--model", qdir, "--text", text, "--max-windows", 1, flag,
                             "fast"])
        c.check(cp.returncode != 0 and flag in err and "int8" in err,
                f"{flag} fast is refused with the choices: {err.strip()}")
        cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 4,
                             "--decode", 2, "--wbits", 4, flag, "int8"],
                      env={"WKVQ_ISA": "reference"})
        c.check(cp.returncode != 0 and flag + " int8" in err and "reference" in err,
                f"{flag} int8 on the reference kernels is refused before loading: {err.strip()}")
    cp, err = run(wkvq, ["ppl", "--model", qdir, "--text", text, "--max-windows", 1])
    c.check("int4 gemv" in err, "the kernel choice is printed on stderr")
    cp, err = run(wkvq, ["bench", "--random-shape", "stories260k-shape", "--prefill", 4,
                         "--decode", 2, "--wbits", 4, "--json"], env={"WKVQ_AMX": "off"})
    k = json.loads(cp.stdout).get("kernels", {}) if cp.returncode == 0 else {}
    c.check(k.get("int8_gemm_amx") is False, f"WKVQ_AMX=off: bench --json reports kernels {k}")
    # The int8 GEMM on AMX tiles gives the AVX512_VNNI GEMM's numbers bit for bit (evaluation
    # through it with WKVQ_PREFILL_GEMM=int8; W4 with one group per row, which it takes).
    nll = {}
    for amx in ("off", "auto"):
        cp, err = run(wkvq, ["ppl", "--model", model, "--wbits", 4, "--text", text,
                             "--max-windows", 2, "--mode", "prefill", "--json"],
                      env={"WKVQ_PREFILL_GEMM": "int8", "WKVQ_AMX": amx})
        j = json.loads(cp.stdout) if cp.returncode == 0 else {}
        nll[amx] = (j.get("nll"), j.get("kernels", {}).get("int8_gemm_amx"))
    if "AVX512_VNNI" in err:
        print("  (no AVX512_VNNI here: no int8 GEMM to compare)")
    elif nll["auto"][1]:
        c.check(nll["auto"][0] is not None and nll["auto"][0] == nll["off"][0],
                f"ppl through the int8 GEMM: AMX and AVX512_VNNI give the same nll {nll}")
    else:
        print("  (AMX-INT8 not usable here: only the AVX512_VNNI GEMM runs)")
    cp, err = run(wkvq, ["ppl", "--model", qdir, "--text", text, "--max-windows", 1],
                  env={"WKVQ_AMX": "maybe"})
    c.check(cp.returncode != 0 and "WKVQ_AMX" in err, "WKVQ_AMX=maybe is refused")


def check_progress(c, wkvq, model, text):
    cp, err = run(wkvq, ["ppl", "--model", model, "--text", text, "--max-windows", 3])
    c.check(cp.returncode == 0 and "\r" not in err and "windows 3/3" in err,
            "stderr not a terminal: no carriage returns, a summary line")
    for args in (["ppl", "--model", model, "--text", text, "--max-windows", 1],
                 ["generate", "--model", model, "--steps", 8],
                 ["tokenize", "--model", model, "--prompt", "Hello"],
                 ["bench", "--random-shape", "stories260k-shape", "--prefill", 4, "--decode", 2],
                 ["inspect", "--model", model]):
        cp, err = run(wkvq, [*args, "--quiet"])
        c.check(cp.returncode == 0 and err == "", f"{args[0]} --quiet: nothing on stderr "
                f"({err[:120]!r})")


def test(args):
    sh = args.shared
    model = f"{sh}/models/stories260K/stories260K.bin"
    ref6m = f"{sh}/models/wkvq-ref-6m"
    big_tok = f"{sh}/models/llama2-tokenizer/tokenizer.model"
    text = f"{sh}/data/tinystories/test.txt"
    harness.require_files(model, ref6m, big_tok, text)
    shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.tmp)
    c = Checker()
    qdir = check_failed_save(c, args.wkvq, model, text, args.tmp)
    check_kv_settings(c, args.wkvq, model, text, qdir, args.tmp)
    check_tokenizer_vocab(c, args.wkvq, model, text, big_tok, args.tmp)
    check_truncation(c, args.wkvq, ref6m, qdir, text, args.tmp)
    check_ranges(c, args.wkvq, model, text)
    check_stdout_errors(c, args.wkvq, model, text)
    check_kernels(c, args.wkvq, qdir, model, text)
    check_progress(c, args.wkvq, model, text)
    c.finish()


if __name__ == "__main__":
    harness.main(test)

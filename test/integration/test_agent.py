#!/usr/bin/env python3
"""The real remora binary with real plugins: embedded default, CLI, configuration errors,
environment overrides, SIGTERM, ABI refusals and out-of-tree SDK plugins.

Environment (set by test/meson.build): REMORA_BIN, BUILD_ROOT, SOURCE_ROOT.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from tap import main

from agentlib import (ABI, BIN, BUILD, EMPTY_CONF, PLUGINS, SRC, TMP, Agent, env, plugin_dir,
                      records, run, write)

def is_dk_rss(line):
    return '"remora.process.rss_bytes"' in line


# ---- tests --------------------------------------------------------------------------------


def test_embedded_default(t):
    """No file, no variables but a short interval: dk records on stdout; SIGTERM exits 0."""
    a = Agent(["-c", EMPTY_CONF], REMORA_INPUT_DK_INTERVAL="1s", DD_HOSTNAME="sidecar-7")
    when, line = a.wait_line(is_dk_rss, 8)
    t.ok(line is not None, "the dk input's records appear on stdout", a.errors())
    if line:
        r = json.loads(line)
        t.eq(r.get("kind"), "metric", "the record is a metric")
        t.ok(isinstance(r.get("value"), (int, float)) and r["value"] > 1 << 20,
             "rss is a plausible number of bytes", r)
        t.eq(r.get("unit"), "By", "rss has its unit")
        t.eq(r.get("tags", {}).get("host"), "sidecar-7", "DD_HOSTNAME names the host")
    _, line = a.wait_line(lambda l: '"remora.queue_bytes"' in l, 3)
    t.ok(line is not None and json.loads(line)["tags"].get("instance") == "output.file",
         "per-instance stats are tagged with their instance", line)
    rc = a.stop()
    t.eq(rc, 0, "SIGTERM exits 0")
    err = a.errors()
    t.contains(err, "started with input.dk, output.file", "the start line names the instances")
    t.contains(err, "stopped", "the shutdown is logged")
    t.ok(not any(l.split()[1:2] == ["error"] for l in err.splitlines()), "no errors logged", err)


def test_default_interval(t):
    """With its default interval (10 s) the first dk records arrive about 10 s after start."""
    a = Agent(["-c", EMPTY_CONF])
    when, line = a.wait_line(is_dk_rss, 14)
    t.ok(line is not None, "dk records within its default interval", a.errors())
    if when is not None:
        t.ok(9.0 <= when - a.start <= 13.0, "the first tick comes at 10 s",
             f"{when - a.start:.2f}s")
    t.eq(a.stop(), 0, "SIGTERM exits 0")


def test_sigterm_flushes_pending(t):
    """Records waiting for the batch timeout are flushed on SIGTERM, not lost."""
    a = Agent(["-c", EMPTY_CONF], REMORA_INPUT_DK_INTERVAL="1s",
              REMORA_OUTPUT_FILE_BATCH_TIMEOUT="10m", REMORA_OUTPUT_FILE_BATCH_RECORDS="100000")
    time.sleep(2.6)
    early = []
    while not a.lines.empty():
        early.append(a.lines.get()[1])
    t.eq(len(records(early)), 0, "nothing is written before the batch timeout")
    rc = a.stop()
    t.eq(rc, 0, "SIGTERM exits 0")
    recs = records(a.all)
    ticks = {r["time"] for r in recs if r.get("name") == "remora.process.rss_bytes"}
    t.ok(len(ticks) >= 2, "both ticks' records were flushed at shutdown", recs[:3])


def stalled_agent(grace):
    """An agent whose output is a FIFO nobody reads, so its drain can never finish."""
    fifo = os.path.join(TMP, f"stall-{time.monotonic_ns()}.fifo")
    os.mkfifo(fifo)
    a = Agent(["-c", EMPTY_CONF], REMORA_INPUT_DK_INTERVAL="1s", REMORA_OUTPUT_FILE_PATH=fifo,
              REMORA_OUTPUT_FILE_BATCH_TIMEOUT="100ms", REMORA_AGENT_SHUTDOWN_GRACE=grace)
    time.sleep(1.6)
    return a


def test_shutdown_grace(t):
    """A drain that cannot finish ends at shutdown_grace with a count of what is left."""
    a = stalled_agent("1s")
    t0 = time.monotonic()
    rc = a.stop(timeout=10)
    took = time.monotonic() - t0
    t.eq(rc, 0, "the agent exits 0 when the grace ends")
    t.ok(0.9 <= took <= 4.0, "it waits for the grace (1 s), not longer", f"{took:.2f}s")
    err = a.errors()
    t.ok("shutdown grace of 1000 ms ended with" in err and "records undelivered" in err,
         "the undelivered records are logged with their count", err)


def test_second_signal(t):
    """A second signal exits at once, whatever is still draining."""
    a = stalled_agent("20s")
    a.p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    t0 = time.monotonic()
    rc = a.stop(signal.SIGTERM, timeout=10)
    t.eq(rc, 128 + signal.SIGTERM, "the second SIGTERM exits at once with 128+15")
    t.ok(time.monotonic() - t0 < 2.0, "without waiting for the 20 s grace")
    t.contains(a.errors(), "second signal (SIGTERM); exiting now", "and says so")


def test_json_logs(t):
    r = run(["check-config", "-c", EMPTY_CONF], REMORA_AGENT_LOG_FORMAT="json",
            ENV_DEFAULT_ENABLED_INPUTS="dk,cpu")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    t.ok(lines and all(json.loads(l).get("level") for l in lines),
         "REMORA_AGENT_LOG_FORMAT=json writes JSON log lines", r.stderr)


def test_plugins_list(t):
    r = run(["plugins", "-c", EMPTY_CONF])
    t.eq(r.returncode, 0, "remora plugins exits 0")
    lines = r.stdout.splitlines()
    t.ok(any(l.split()[:2] == ["input", "dk"] and "1.0" in l for l in lines),
         "dk is listed as an input with its ABI", r.stdout)
    t.ok(any(l.split()[:2] == ["output", "file"] and "1.0" in l for l in lines),
         "file is listed as an output with its ABI", r.stdout)
    t.ok(all(len(l.split()) >= 4 for l in lines[1:]), "each line has kind, name, version, ABI",
         r.stdout)


def test_one_exported_symbol(t):
    """Every built plugin exports exactly one symbol: the loader's entry point."""
    sos = sorted(f for f in os.listdir(PLUGINS) if f.endswith(".so"))
    t.ok(len(sos) >= 2, "the built plugins are found", sos)
    for f in sos:
        r = subprocess.run(["nm", "-D", "--defined-only", os.path.join(PLUGINS, f)],
                           stdout=subprocess.PIPE, text=True)
        syms = [l.split()[-1] for l in r.stdout.splitlines() if l.strip()]
        t.eq(syms, ["rmr_plugin_describe"], f"{f} exports only rmr_plugin_describe")


def test_describe(t):
    r = run(["plugins", "-c", EMPTY_CONF, "--describe", "file"])
    t.eq(r.returncode, 0, "--describe file exits 0")
    t.contains(r.stdout, "path", "the path option is described")
    t.contains(r.stdout, "REMORA_OUTPUT_FILE_", "the variable prefix is shown")
    t.contains(r.stdout, "batch_timeout", "common output options are described")
    r = run(["plugins", "-c", EMPTY_CONF, "--describe", "fiel"])
    t.ok(r.returncode != 0, "an unknown plugin fails")
    t.contains(r.stderr, "did you mean 'file'", "and suggests the nearest")


def test_check_config_sources(t):
    conf = write(os.path.join(TMP, "sources.conf"),
                 "[agent]\nlog_level = debug\n\n[input.dk]\ninterval = 5s\n")
    r = run(["check-config", "-c", conf], REMORA_OUTPUT_FILE_PATH=os.path.join(TMP, "x.ndjson"))
    t.eq(r.returncode, 0, "check-config exits 0", r.stderr)
    out = r.stdout
    t.contains(out, "[input.dk]", "the dk section is printed")
    t.ok(any("interval = 5s" in l and "sources.conf:5" in l for l in out.splitlines()),
         "a file value shows file:line", out)
    t.ok(any("path" in l and "REMORA_OUTPUT_FILE_PATH" in l for l in out.splitlines()),
         "a variable value shows the variable", out)
    t.ok(any("batch_records" in l and "default" in l for l in out.splitlines()),
         "a default shows default", out)


def check_fails(t, text, needles, what):
    conf = write(os.path.join(TMP, f"bad-{time.monotonic_ns()}.conf"), text)
    r = run(["check-config", "-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.ok(r.returncode != 0, f"{what}: check-config fails")
    for n in needles:
        t.contains(r.stderr, n.replace("FILE", os.path.basename(conf)), f"{what}: names {n}")
    r2 = run(["run", "-c", conf], timeout=10, REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.ok(r2.returncode != 0, f"{what}: run refuses to start")


def test_config_errors(t):
    check_fails(t, "[input.dk]\nintervall = 5s\n",
                ["FILE:2", "[input.dk]", "'intervall'", "did you mean 'interval'"], "unknown key")
    check_fails(t, "[input.dk]\ninterval = soon\n", ["FILE:2", "[input.dk]", "'interval'"],
                "bad type")
    check_fails(t, "[output.needs_path]\ntoken = x\n", ["[output.needs_path]", "'path'"],
                "missing required key")
    check_fails(t, "[input.dkk]\n", ["FILE:1", "dkk", "did you mean 'dk'"], "unknown plugin")


def test_secret_redacted(t):
    conf = write(os.path.join(TMP, "secret.conf"),
                 "[output.needs_path]\npath = /dev/null\ntoken = s3cr3t-value\n")
    r = run(["check-config", "-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR)
    t.eq(r.returncode, 0, "check-config with a secret exits 0", r.stderr)
    t.ok("s3cr3t-value" not in r.stdout + r.stderr, "the secret is never printed")
    t.contains(r.stdout, "<redacted>", "it is shown as <redacted>")


def test_enabled_inputs_exact(t):
    conf = write(os.path.join(TMP, "two-inputs.conf"), "[input.abi_frozen]\ninterval = 1s\n")
    r = run(["check-config", "-c", conf], REMORA_AGENT_PLUGIN_DIR=PDIR,
            ENV_DEFAULT_ENABLED_INPUTS="dk")
    t.eq(r.returncode, 0, "check-config exits 0", r.stderr)
    t.contains(r.stdout, "[input.dk]", "dk runs")
    t.ok("[input.abi_frozen]" not in r.stdout, "an input missing from the list does not run",
         r.stdout)
    r = run(["check-config", "-c", EMPTY_CONF], REMORA_AGENT_PLUGIN_DIR=PDIR,
            ENV_DEFAULT_ENABLED_INPUTS="self,cpu")
    t.eq(r.returncode, 0, "an unknown input name is not fatal", r.stderr)
    t.contains(r.stdout, "[input.dk]", "the alias self runs dk")
    t.contains(r.stderr, "'cpu'", "the unknown name is warned about")
    t.contains(r.stderr, "dk", "the warning names the known inputs")


def test_file_path_env(t):
    out = os.path.join(TMP, "moved.ndjson")
    a = Agent(["-c", EMPTY_CONF], REMORA_INPUT_DK_INTERVAL="1s", REMORA_OUTPUT_FILE_PATH=out,
              REMORA_OUTPUT_FILE_BATCH_TIMEOUT="100ms")
    deadline = time.monotonic() + 8
    text = ""
    while time.monotonic() < deadline and "remora.process.rss_bytes" not in text:
        time.sleep(0.2)
        if os.path.exists(out):
            with open(out) as f:
                text = f.read()
    t.contains(text, "remora.process.rss_bytes", "REMORA_OUTPUT_FILE_PATH moves the records")
    t.eq(a.stop(), 0, "SIGTERM exits 0")
    t.eq(len(records(a.all)), 0, "nothing went to stdout")
    t.ok(all(json.loads(l)["kind"] for l in text.splitlines() if l), "every line is JSON")


def abi_minor():
    with open(os.path.join(os.environ["SOURCE_ROOT"], "sdk/include/remora/plugin.h")) as f:
        for line in f:
            if line.startswith("#define RMR_ABI_MINOR"):
                return int(line.split()[2])
    raise RuntimeError("RMR_ABI_MINOR not found")


def test_abi_refusal(t):
    d = plugin_dir("abi_major2", "abi_minor_next", name="abi")
    r = run(["plugins", "-c", EMPTY_CONF], REMORA_AGENT_PLUGIN_DIR=d)
    minor = abi_minor()
    t.contains(r.stdout, f"abi_major2.so': it was built for remora plugin ABI 2.{minor} but this "
               f"remora speaks ABI 1.{minor}; rebuild the plugin against remora-sdk 1.x",
               "a wrong-major plugin is refused with the sentence")
    t.contains(r.stdout, f"newer than this remora's ABI 1.{minor}", "a newer minor is refused")
    t.ok(any(l.split()[:2] == ["input", "dk"] for l in r.stdout.splitlines()),
         "the good plugins still load")
    a = Agent(["-c", EMPTY_CONF], REMORA_AGENT_PLUGIN_DIR=d, REMORA_INPUT_DK_INTERVAL="1s")
    _, line = a.wait_line(is_dk_rss, 8)
    t.ok(line is not None, "the agent runs beside a refused plugin")
    a.stop()
    t.contains(a.errors(), f"ABI 2.{abi_minor()}", "run logs the refusal")


def test_world_writable(t):
    d = plugin_dir("abi_frozen", name="ww")
    victim = os.path.join(d, "abi_frozen.so")
    os.chmod(victim, 0o777)
    r = run(["plugins", "-c", EMPTY_CONF], REMORA_AGENT_PLUGIN_DIR=d)
    t.contains(r.stdout, "abi_frozen.so': it is writable by everyone",
               "a world-writable plugin is refused")
    t.ok(not any(l.split()[:2] == ["input", "abi_frozen"] for l in r.stdout.splitlines()),
         "and not listed as loaded")
    os.chmod(victim, 0o755)
    os.chmod(d, 0o777)
    r = run(["plugins", "-c", EMPTY_CONF], REMORA_AGENT_PLUGIN_DIR=d)
    t.contains(r.stdout, "directory", "a world-writable directory is refused")
    os.chmod(d, 0o755)


def test_sdk_examples(t):
    """Install the SDK to a temporary prefix, build the examples out of tree with pkg-config,
    load them into remora and find their records in the file output."""
    dest = tempfile.mkdtemp(prefix="destdir-", dir=TMP)
    r = subprocess.run(["meson", "install", "--no-rebuild", "-C", BUILD, "--destdir", dest],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t.eq(r.returncode, 0, "meson install to a destdir", r.stdout[-2000:])
    pcs = [os.path.join(root, f) for root, _, files in os.walk(dest) for f in files
           if f == "remora-sdk.pc"]
    t.eq(len(pcs), 1, "remora-sdk.pc is installed")
    if not pcs:
        return
    penv = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
                PKG_CONFIG_SYSROOT_DIR=dest)
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "remora-sdk"], env=penv,
                            stdout=subprocess.PIPE, text=True)
    t.eq(cflags.returncode, 0, "pkg-config --cflags --libs remora-sdk")
    t.contains(cflags.stdout, dest, "the flags point into the installed prefix")
    work = tempfile.mkdtemp(prefix="examples-", dir=TMP)
    shutil.copytree(os.path.join(SRC, "sdk", "examples"), work, dirs_exist_ok=True)
    mk = subprocess.run(["make", "-C", work], env=penv, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
    t.eq(mk.returncode, 0, "the examples build out of tree", mk.stdout[-3000:])
    # An installed fake host from a sanitized build carries the sanitizers' instrumentation, so
    # a test linking it needs their runtime too; a release build needs nothing.
    san = os.environ.get("REMORA_SANITIZE", "none")
    tenv = dict(penv)
    if san not in ("", "none"):
        tenv["CFLAGS"] = f"-O1 -g -fsanitize={san}"
        tenv["LDFLAGS"] = f"-fsanitize={san}"
    unit = subprocess.run(["make", "-C", work, "test"], env=tenv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    t.eq(unit.returncode, 0, "the example's unit test links the installed fake host and passes",
         unit.stdout[-3000:])
    t.contains(unit.stdout, "0 failed", "the fake host test ran")
    sos = [os.path.join(root, f) for root, _, files in os.walk(work) for f in files
           if f.endswith(".so")]
    t.ok(len(sos) >= 2, "both example plugins were built", sos)
    d = plugin_dir(*sos, name="examples")
    out = os.path.join(TMP, "examples.ndjson")
    conf = write(os.path.join(TMP, "examples.conf"),
                 f"[input.heartbeat]\ninterval = 1s\n\n[output.file]\npath = {out}\n"
                 "batch_timeout = 100ms\n")
    r = run(["plugins", "-c", conf], REMORA_AGENT_PLUGIN_DIR=d)
    t.ok(any(l.split()[:2] == ["input", "heartbeat"] for l in r.stdout.splitlines()),
         "remora plugins lists the example input", r.stdout + r.stderr)
    a = Agent(["-c", conf], REMORA_AGENT_PLUGIN_DIR=d)
    deadline = time.monotonic() + 8
    text = ""
    while time.monotonic() < deadline and "example.heartbeat" not in text:
        time.sleep(0.2)
        if os.path.exists(out):
            with open(out) as f:
                text = f.read()
    t.contains(text, "example.heartbeat", "the example input's records reach the file output")
    t.eq(a.stop(), 0, "SIGTERM exits 0", a.errors())


PDIR = plugin_dir("abi_frozen", "needs_path", name="main")

if __name__ == "__main__":
    try:
        main([test_embedded_default, test_plugins_list, test_one_exported_symbol, test_describe,
              test_check_config_sources, test_config_errors, test_secret_redacted,
              test_enabled_inputs_exact, test_file_path_env, test_abi_refusal,
              test_world_writable, test_sigterm_flushes_pending, test_shutdown_grace,
              test_second_signal, test_json_logs, test_sdk_examples,
              test_default_interval])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)

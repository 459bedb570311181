"""What the bench scripts read from /proc: a process's CPU seconds and peak RSS, a CPU's steal."""
import os


def cpu_seconds(pid):
    """utime + stime of pid, in seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid):
    """VmHWM of pid in bytes, 0 when unknown."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def steal_ms(cpu):
    """Milliseconds of steal /proc/stat reports for CPU cpu (a string) so far: time the
    hypervisor ran something else on it (10 ms ticks)."""
    with open("/proc/stat") as f:
        for line in f:
            p = line.split()
            if p[0] == "cpu" + cpu:
                return int(p[8]) * 1000.0 / os.sysconf("SC_CLK_TCK")
    return 0.0

"""A small TAP producer for remora's integration tests (stdlib only)."""
import sys
import traceback


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(f"{'' if cond else 'not '}ok {self.n} - {name}", flush=True)
        if not cond and diag is not None:
            for line in str(diag).splitlines()[-40:]:
                print(f"#   {line}", flush=True)
        return bool(cond)

    def eq(self, got, want, name, diag=None):
        extra = f"\n{diag}" if diag else ""
        return self.ok(got == want, name, f"got {got!r}, want {want!r}{extra}")

    def contains(self, hay, needle, name):
        return self.ok(hay is not None and needle in hay, name,
                       f"{needle!r} not in:\n{hay}")

    def run(self, fn):
        """Runs one test function; an exception is one failure, not the end of the run."""
        try:
            fn(self)
        except Exception:  # noqa: BLE001 - a test's crash must be reported, not fatal
            self.ok(False, f"{fn.__name__} raised", traceback.format_exc())

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0


def main(tests):
    t = Tap()
    only = sys.argv[1:]
    for fn in tests:
        if not only or fn.__name__ in only:
            t.run(fn)
    sys.exit(t.done())

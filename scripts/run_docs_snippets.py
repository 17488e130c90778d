"""Runs the ```python blocks of the docs pages, as a reader would paste them.

    python scripts/run_docs_snippets.py [PAGE.md ...]      # default: every page

Each page's runnable blocks run in order, in a process of their own (the
current `KERAS_BACKEND`; forked from a zygote that has imported keras and
kerasx, or a new interpreter for a page that sets `os.environ`), in a
temporary working directory, with
`KERASX_DOCS_QUICK=1` set: `kerasx.datasets.load_data` then returns at most
`QUICK_TRAIN` training and `QUICK_TEST` test examples and `Model.fit` runs at
most `QUICK_EPOCHS` epochs, so a page that trains on Fashion-MNIST runs in
seconds. A failure names the page, the block number, its line and the
traceback.

The conventions (documented on docs/contributing.md):

- A ```python block runs, unless the line before its fence (blank lines
  aside) is the HTML comment `<!-- fragment -->` (invisible on the site): a
  fragment is not run.
- `<!-- backends: tensorflow jax -->` before a fence runs that block only on
  the backends named; on the others it is skipped with that reason.
- A ```text block right after a python block (blank lines aside) is the
  output the block printed. The test compares it with what the block prints,
  numbers masked (quick mode changes sizes and values, not the output's form).
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
QUICK_TRAIN = 512
QUICK_TEST = 256
QUICK_EPOCHS = 2

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*(?P<body>[^>]*?)\s*-->$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
PYTHON_LANGUAGES = {"python", "py", "python3", "py3", "pycon", "ipython"}


@dataclass
class Block:
    """One fenced code block of a page."""

    number: int  # 1-based, among the page's python blocks
    line: int  # 1-based line of the opening fence
    language: str
    info: str
    code: str
    markers: list[str] = field(default_factory=list)
    output: str | None = None  # the ```text block shown under it

    @property
    def fragment(self) -> bool:
        return any(m == "fragment" or m.startswith("fragment:") for m in self.markers)

    @property
    def backends(self) -> list[str] | None:
        for marker in self.markers:
            if marker.startswith("backends:"):
                return marker.split(":", 1)[1].replace(",", " ").split()
        return None

    @property
    def runnable(self) -> bool:
        """Run by the docs-test: a plain ```python block that is not a fragment."""
        return self.language == "python" and not self.fragment


def _language(info: str) -> str:
    info = info.strip()
    if info.startswith("{"):
        classes = re.findall(r"\.([\w-]+)", info)
        return classes[0].lower() if classes else ""
    return info.split()[0].lower() if info else ""


def code_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown page, python numbered, with its markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    number = 0
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, ticks, info = match["indent"], match["ticks"], match["info"]
        end = index + 1
        closing = re.compile(rf"^[ \t]*{re.escape(ticks[0])}{{{len(ticks)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[index + 1 : end]
        ]
        markers = []
        back = index - 1
        while back >= 0 and not lines[back].strip():
            back -= 1
        while back >= 0 and _MARKER.match(lines[back].strip()):
            markers.append(_MARKER.match(lines[back].strip())["body"].strip().lower())
            back -= 1
        language = _language(info)
        is_python = language in PYTHON_LANGUAGES
        if is_python:
            number += 1
        block = Block(
            number=number if is_python else 0,
            line=index + 1,
            language=language,
            info=info.strip(),
            code="\n".join(body) + "\n",
            markers=markers,
        )
        if language == "text" and blocks and blocks[-1].language == "python":
            between = lines[blocks[-1]._end + 1 : index]  # type: ignore[attr-defined]
            if all(not line.strip() for line in between):
                blocks[-1].output = block.code
        block._end = end  # type: ignore[attr-defined]
        blocks.append(block)
        index = end + 1
    return [b for b in blocks if b.language in PYTHON_LANGUAGES]


def unmarked_python_blocks(text: str) -> list[Block]:
    """Python blocks the docs-test would not run and that are not fragments.

    The docs-test runs plain ```python blocks; a ```py, ```python3, ```pycon
    or attribute-form fence would silently escape it.
    """
    return [b for b in code_blocks(text) if not b.runnable and not b.fragment]


def pages(docs_dir: Path = DOCS) -> list[Path]:
    """Every Markdown page with at least one python block, in a stable order."""
    return [
        path
        for path in sorted(docs_dir.rglob("*.md"))
        if any(b.runnable for b in code_blocks(path.read_text(encoding="utf-8")))
    ]


def normalized_output(text: str) -> list[str]:
    """Output lines with numbers masked and trailing space removed."""
    return [
        _NUMBER.sub("N", line).rstrip()
        for line in text.strip("\n").splitlines()
        if line.strip()
    ]


@dataclass
class Result:
    page: str
    number: int
    line: int
    status: str  # "passed", "failed", "skipped", "fragment"
    seconds: float = 0.0
    stdout: str = ""
    error: str = ""
    reason: str = ""
    shown_output: str | None = None

    def describe(self) -> str:
        where = f"{self.page}, block {self.number} (line {self.line})"
        if self.status == "failed":
            return f"{where} failed:\n{self.error}"
        if self.status == "skipped":
            return f"{where} skipped: {self.reason}"
        return f"{where}: {self.status} in {self.seconds:.1f} s"

    def output_mismatch(self) -> str | None:
        """A description of how the shown output differs from the printed one."""
        if self.status != "passed" or self.shown_output is None:
            return None
        shown = normalized_output(self.shown_output)
        printed = normalized_output(self.stdout)
        if shown == printed:
            return None
        return (
            f"{self.page}, block {self.number} (line {self.line}): the output shown "
            f"under the block differs from what it printed (numbers masked).\n"
            f"shown:\n  " + "\n  ".join(shown) + "\nprinted:\n  " + "\n  ".join(printed)
        )


# -- the child process: runs one page's blocks in one namespace ---------------

_QUICK_SETUP = f"""
import builtins
import os
import sys

def _quick_patch():
    import keras
    import kerasx.datasets

    _load_data = kerasx.datasets.load_data

    def _quick_load_data(*args, **kwargs):
        (x, y), (xt, yt) = _load_data(*args, **kwargs)
        train = (x[:{QUICK_TRAIN}], y[:{QUICK_TRAIN}])
        return train, (xt[:{QUICK_TEST}], yt[:{QUICK_TEST}])

    _quick_load_data.__doc__ = _load_data.__doc__
    kerasx.datasets.load_data = _quick_load_data
    _fit = keras.Model.fit

    def _quick_fit(self, *args, **kwargs):
        if "epochs" in kwargs:
            kwargs["epochs"] = min(kwargs["epochs"], {QUICK_EPOCHS})
        return _fit(self, *args, **kwargs)

    keras.Model.fit = _quick_fit

# Patched once the page's code has imported keras or kerasx itself (the import
# finished, depth back to 0), so a block that sets KERAS_BACKEND, XLA_FLAGS or
# TensorFlow's logical devices first still runs before keras is imported.
_import = builtins.__import__
_state = {{"depth": 0, "done": False}}

def _watching_import(name, *args, **kwargs):
    _state["depth"] += 1
    try:
        return _import(name, *args, **kwargs)
    finally:
        _state["depth"] -= 1
        if (
            not _state["done"]
            and _state["depth"] == 0
            and name.split(".")[0] in ("keras", "kerasx")
        ):
            _state["done"] = True
            builtins.__import__ = _import
            _quick_patch()

if os.environ.get("KERASX_DOCS_QUICK"):
    builtins.__import__ = _watching_import
"""


def _child(page: Path, report: Path, quick_setup: bool = True) -> int:
    import io
    import traceback

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if quick_setup:  # the zygote's children inherit it already applied
        exec(compile(_QUICK_SETUP, "<docs quick mode>", "exec"), {})
    namespace: dict = {"__name__": "__main__"}
    results = []
    failed = False
    for block in code_blocks(page.read_text(encoding="utf-8")):
        result = Result(str(page), block.number, block.line, "passed")
        result.shown_output = block.output
        if block.fragment:
            result.status = "fragment"
        elif not block.runnable:
            result.status = "skipped"
            result.reason = f"```{block.info} is not a ```python block"
        elif failed:
            result.status = "skipped"
            result.reason = "an earlier block of the page failed"
        elif block.backends is not None and backend not in block.backends:
            result.status = "skipped"
            result.reason = (
                f"runs on {', '.join(block.backends)} only; backend is {backend}"
            )
        else:
            buffer = io.StringIO()
            start = time.perf_counter()
            filename = f"{page}:block{block.number}"
            try:
                code = compile(
                    "\n" * (block.line) + block.code,
                    filename,
                    "exec",
                    dont_inherit=True,
                )
                with contextlib.redirect_stdout(buffer):
                    exec(code, namespace)
            except BaseException:  # reported with its traceback, not hidden
                result.status = "failed"
                result.error = traceback.format_exc()
                failed = True
            result.seconds = time.perf_counter() - start
            result.stdout = buffer.getvalue()
            sys.stdout.write(result.stdout)
        results.append(asdict(result))
        report.write_text(json.dumps(results), encoding="utf-8")
    return 0


# -- the parent: one fresh process per page ----------------------------------


def _environment(env: dict | None) -> dict:
    environment = dict(os.environ if env is None else env)
    environment.setdefault("KERASX_DOCS_QUICK", "1")
    environment.setdefault("MPLBACKEND", "Agg")
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), environment.get("PYTHONPATH", "")) if p
    )
    return environment


def sets_environment(page: Path) -> bool:
    """Whether a block of the page sets environment variables (`os.environ`).

    Such a page (e.g. one choosing `KERAS_BACKEND` or `XLA_FLAGS` before
    `import keras`) runs in a fresh interpreter; the others fork from the
    zygote, which has imported keras and kerasx already.
    """
    blocks = code_blocks(Path(page).read_text(encoding="utf-8"))
    return any(b.runnable and "os.environ" in b.code for b in blocks)


def _run_fresh(page: Path, work: str, report: Path, environment: dict, timeout: float):
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(page)]
    command += ["--report", str(report)]
    try:
        process = subprocess.run(
            command,
            cwd=work,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return process.returncode != 0, (process.stderr or "")[-3000:]
    except subprocess.TimeoutExpired:
        return True, f"timed out after {timeout:.0f} s"


def run_page(page: Path, timeout: float = 300, env: dict | None = None) -> list[Result]:
    """Runs the page's blocks in a fresh process; one Result per python block.

    With the default environment a page forks from the zygote (a process that
    has imported keras, kerasx and NumPy and nothing more), which saves the
    backend's import per page; a page that sets environment variables, or a
    call with its own `env`, starts a new interpreter.
    """
    page = Path(page).resolve()
    environment = _environment(env)
    try:
        shown = page.relative_to(ROOT).as_posix()
    except ValueError:
        shown = str(page)
    with tempfile.TemporaryDirectory(prefix="kerasx-docs-") as work:
        report = Path(work) / "report.json"
        if env is None and not sets_environment(page):
            crashed, tail = _zygote(environment).run(page, work, report, timeout)
        else:
            crashed, tail = _run_fresh(page, work, report, environment, timeout)
        done = json.loads(report.read_text()) if report.exists() else []
    results = [Result(**r) for r in done]
    for result in results:
        result.page = shown
    blocks = code_blocks(page.read_text(encoding="utf-8"))
    if crashed or len(results) < len(blocks):
        after = blocks[len(results)] if len(results) < len(blocks) else blocks[-1]
        results.append(
            Result(
                shown,
                after.number,
                after.line,
                "failed",
                error=f"the page's process ended early:\n{tail}",
            )
        )
    return results


# -- the zygote: forks one child per page -------------------------------------
#
# Importing keras with its backend costs 2-5 s per process on a 2-core
# machine, most of a short page's time. The zygote imports keras, kerasx and
# NumPy once (and runs no backend op, so no backend runtime exists yet); each
# page runs in a child forked from it, in its own namespace and working
# directory, and exits: no state passes from one page to the next.


class _Zygote:
    """A long-lived `--zygote` process; `run` forks a child for one page."""

    def __init__(self, environment: dict) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            text=True,
            bufsize=1,
        )
        atexit.register(self.close)
        ready = self._process.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"the docs zygote did not start: {ready!r}")

    def run(self, page: Path, work: str, report: Path, timeout: float):
        done = Path(work) / "exit_status"
        request = {"page": str(page), "report": str(report), "work": work}
        with self._lock:  # one request and its reply (the child's pid) at a time
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            pid = int(self._process.stdout.readline())
        deadline = time.monotonic() + timeout
        while not done.exists():
            if self._process.poll() is not None:
                return True, "the docs zygote ended"
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                # Wait for the reaper's exit_status so that it is not written
                # while the caller removes the directory.
                settle = time.monotonic() + 10
                while not done.exists() and time.monotonic() < settle:
                    time.sleep(0.05)
                return True, f"timed out after {timeout:.0f} s"
            time.sleep(0.05)
        stderr = Path(work) / "stderr.txt"
        tail = stderr.read_text(errors="replace")[-3000:] if stderr.exists() else ""
        status = int(done.read_text())
        if status != 0:
            how = f"signal {-status}" if status < 0 else f"status {status}"
            tail += f"\n(the page's process ended with {how})"
        return status != 0, tail

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=10)


_ZYGOTES: dict[tuple, _Zygote] = {}
_ZYGOTES_LOCK = threading.Lock()


def _zygote(environment: dict) -> _Zygote:
    key = tuple(sorted(environment.items()))
    with _ZYGOTES_LOCK:
        if key not in _ZYGOTES:
            _ZYGOTES[key] = _Zygote(environment)
        return _ZYGOTES[key]


def _serve_zygote() -> int:
    # What a fresh interpreter would import first on every page, and no more:
    # no backend op runs here, so each child initialises its own runtime.
    import keras  # noqa: F401

    import kerasx
    import kerasx.datasets  # noqa: F401

    quick = {}
    exec(compile(_QUICK_SETUP, "<docs quick mode>", "exec"), quick)
    if os.environ.get("KERASX_DOCS_QUICK"):
        builtins.__import__ = quick["_import"]  # keras is imported: patch now
        quick["_quick_patch"]()
    works: dict[int, Path] = {}

    def reap(signum, frame):  # the exit status of every child that ended
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            work = works.pop(pid, None)
            # Only the reaper writes `exit_status`, once the child has ended,
            # so nothing writes into the directory after the client saw it.
            # A timed-out page's directory may be gone already.
            with contextlib.suppress(OSError):
                if work is not None:
                    _write_status(work, os.waitstatus_to_exitcode(status))

    signal.signal(signal.SIGCHLD, reap)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        work = Path(request["work"])
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:  # the child: one page, then exit
            status = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                os.chdir(work)
                for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
                    out = os.open(work / name, os.O_WRONLY | os.O_CREAT, 0o600)
                    os.dup2(out, fd)
                sys.stdin.close()
                status = _child(
                    Path(request["page"]), Path(request["report"]), quick_setup=False
                )
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)  # the zygote's reaper writes exit_status
        works[pid] = work
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        print(pid, flush=True)
    return 0


def _write_status(work: Path, status: int) -> None:
    """Writes `exit_status` whole or not at all (the client polls for it)."""
    partial = work / "exit_status.partial"
    partial.write_text(str(status))
    os.replace(partial, work / "exit_status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if args.zygote:
        return _serve_zygote()
    if args.child:
        return _child(args.child, args.report)
    problems = 0
    for page in args.pages or pages():
        start = time.perf_counter()
        results = run_page(page, timeout=args.timeout)
        for result in results:
            print(result.describe())
            mismatch = result.output_mismatch()
            if mismatch:
                print(mismatch)
            problems += result.status == "failed" or bool(mismatch)
        print(f"-- {page}: {time.perf_counter() - start:.1f} s")
    print(f"run_docs_snippets: {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

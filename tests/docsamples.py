"""Helpers of the documentation tests: Markdown blocks, and transcripts run in bash.

A transcript is ``$ command`` lines (a line ending with ``\\`` continues the command), each
followed by what it prints. :func:`check_transcript` runs the commands in one bash, so
variables and ``$?`` carry over, and compares what they print with what the transcript shows,
or, with ``FLEXACTIONS_REGENERATE_DOCS=1``, rewrites the transcript with what they printed.
"""

from __future__ import annotations

import difflib
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
GENERATED = DOCS / "_generated"
README = ROOT / "README.md"
REGENERATE = os.environ.get("FLEXACTIONS_REGENERATE_DOCS") == "1"
HOW_TO_REGENERATE = (
    "FLEXACTIONS_REGENERATE_DOCS=1 pytest "
    "tests/test_docs.py tests/test_docs_examples.py tests/browser"
)


# Markdown: fenced blocks and literalinclude directives


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown file: its info string (e.g. ``python``) and its text."""

    path: Path
    line: int
    info: str
    text: str


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, outermost only (a fence inside a longer one is text)."""
    blocks = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^(`{3,}|~{3,})\s*(.*)$", lines[index])
        if not opening:
            index += 1
            continue
        fence, info, start = opening.group(1), opening.group(2).strip(), index
        index += 1
        body = []
        while index < len(lines) and not re.match(
            rf"^{fence[0]}{{{len(fence)},}}\s*$", lines[index]
        ):
            body.append(lines[index])
            index += 1
        blocks.append(Block(path, start + 1, info, "\n".join(body) + "\n"))
        index += 1
    return blocks


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


@dataclass(frozen=True)
class Include:
    """A ``{literalinclude}`` of a page: the file and the markers that cut the fragment."""

    page: Path
    path: Path
    options: dict[str, str]


def literal_includes() -> list[Include]:
    includes = []
    for page in doc_pages():
        for block in fenced_blocks(page):
            if not block.info.startswith("{literalinclude}"):
                continue
            target = block.info.removeprefix("{literalinclude}").strip()
            options = {}
            for line in block.text.splitlines():
                option = re.match(r"^:([\w-]+):\s*(.*)$", line)
                if option:
                    options[option.group(1)] = option.group(2).strip().strip("\"'")
            includes.append(Include(page, (page.parent / target).resolve(), options))
    return includes


# Transcripts: "$ command" lines and what each prints, run in one bash


@dataclass
class Entry:
    """A command of a transcript (its continuation lines included) and its output."""

    command: str
    output: str


def parse_transcript(text: str) -> list[Entry]:
    entries: list[Entry] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("$ "):
            if not entries:
                raise ValueError(f"A transcript starts with a '$ ' command line, not {line!r}")
            entries[-1].output += line + "\n"
            index += 1
            continue
        command = [line[2:]]
        while command[-1].endswith("\\") and index + 1 < len(lines):
            index += 1
            command.append(lines[index])
        entries.append(Entry("\n".join(command), ""))
        index += 1
    return entries


def render_transcript(entries: list[Entry]) -> str:
    return "".join(f"$ {entry.command}\n{entry.output}" for entry in entries)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Values that differ on every run; compared as placeholders.
VOLATILE = [
    (re.compile(r"\S*/flexactions-[a-z0-9_]{8}(?=/)"), "<temporary folder>"),
    (re.compile(r"^(date|server): .*$", re.IGNORECASE | re.MULTILINE), r"\1: <varies>"),
    (re.compile(r"server time [0-9T:+-]+"), "server time <now>"),
    (re.compile(r"(passed|failed) in [0-9.]+s"), r"\1 in <seconds>"),
]
#: Values a transcript shows and later commands reuse (job ids, the shop's token): the ones
#: the committed output shows are mapped to the ones this run printed.
LEARNED = [
    re.compile(r"\b([0-9a-f]{32})\b"),
    re.compile(r"^Token:\s+(\S+)$", re.MULTILINE),
]
JOB_ID = LEARNED[0]


def clean(output: str) -> str:
    """What a terminal shows of ``output``: no colour codes or carriage returns, no trailing
    blank lines."""
    return ANSI.sub("", output).replace("\r", "").rstrip() + "\n"


def masked(text: str) -> str:
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


@dataclass
class Substitutions:
    """Text to change in commands before they run (e.g. the port), and back in outputs."""

    forward: dict[str, str] = field(default_factory=dict)
    learned: dict[str, str] = field(default_factory=dict)
    last_job: str | None = None

    def command(self, text: str) -> str:
        for old, new in {**self.forward, **self.learned}.items():
            text = text.replace(old, new)
        for job in JOB_ID.findall(text):
            if job not in self.learned.values() and self.last_job is not None:
                # A job id no output has shown yet: the job the previous command queued.
                text = text.replace(job, self.last_job)
                self.learned[job] = self.last_job
        return text

    def output(self, text: str) -> str:
        for old, new in self.forward.items():
            text = text.replace(new, old)
        return text

    def learn(self, expected: str, actual: str) -> None:
        for pattern in LEARNED:
            pairs = zip(pattern.findall(expected), pattern.findall(actual), strict=False)
            self.learned.update((old, new) for old, new in pairs if old != new)
        jobs = JOB_ID.findall(actual)
        if jobs:
            self.last_job = jobs[-1]

    def expected(self, text: str) -> str:
        for old, new in self.learned.items():
            text = text.replace(old, new)
        return text


class Shell:
    """One bash process running commands in turn, so variables and ``$?`` carry over."""

    END = "@@end-of-command@@"

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def run(self, command: str, timeout: float = 120) -> str:
        """Run ``command`` (its stdin is /dev/null) and return what it printed."""
        assert self.process.stdin is not None and self.process.stdout is not None
        script = (
            f"{{\n{command}\n}} < /dev/null\n__s=$?; printf '\\n%s\\n' '{self.END}'; (exit $__s)\n"
        )
        self.process.stdin.write(script.encode())
        self.process.stdin.flush()
        end = f"\n{self.END}\n".encode()
        data = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while end not in data:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise AssertionError(f"{command!r} did not finish in {timeout} s: {data!r}")
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"bash exited during {command!r}: {data!r}")
                data += chunk
        return data[: data.index(end)].decode()

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def check_transcript(
    path: Path, shell: Shell, substitutions: Substitutions, readme_block: str | None = None
) -> list[str]:
    """Run the transcript at ``path`` (or the README's block); return its differences, or
    rewrite it with this run's outputs when regenerating."""
    text = readme_block if readme_block is not None else path.read_text()
    entries = parse_transcript(text)
    problems = []
    ran = []
    for entry in entries:
        command = substitutions.command(entry.command)
        actual = clean(substitutions.output(shell.run(command)))
        expected = clean(entry.output) if entry.output.strip() else ""
        substitutions.learn(expected, actual)
        actual_shown = actual if actual.strip() else ""
        # Regenerated commands keep the reader's values (the port) and this run's job ids.
        shown_command = substitutions.output(command) if REGENERATE else entry.command
        ran.append(Entry(shown_command, actual_shown))
        if masked(substitutions.expected(expected)) != masked(actual_shown):
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    actual_shown.splitlines(keepends=True),
                    "shown",
                    "printed now",
                )
            )
            problems.append(f"{path.name}: $ {entry.command}\n{diff}")
    if REGENERATE:
        new_text = render_transcript(ran)
        if readme_block is None:
            path.write_text(new_text)
        else:
            path.write_text(path.read_text().replace(readme_block, new_text))
        return []
    return problems


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """A reader's environment: this Python's venv first on PATH, no FLEXACTIONS_* or
    database settings of the developer's, unbuffered Python output (as on a terminal)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"HOME", "USER", "LOGNAME", "SHELL", "TERM"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        LANG="C.UTF-8",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        COLUMNS="80",
    )
    env.update(extra)
    return env


class Server:
    """A process started as a reader starts it; its output is kept from the start."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.output = ""
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, b""):
            with self._lock:
                self.output += line.decode()

    def wait_until(self, text: str, timeout: float = 60) -> str:
        """Wait until the process printed ``text`` and answers on its port; return what it
        printed up to the end of that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                output = self.output
            if text in output:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                except OSError:
                    pass
                else:
                    end = output.index(text) + len(text)
                    return output[: output.find("\n", end) + 1 or None]
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"The server did not print {text!r}: {self.output}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()

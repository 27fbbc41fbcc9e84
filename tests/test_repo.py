"""The repository explains itself: no tracked text file points at design notes outside it or at
one machine's folders (docs/DESIGN.md holds what the notes said)."""
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Written so that this file does not match itself.
OUTSIDE_NOTES = re.compile(r"shared[/\\]docs")
MACHINE_PATH = re.compile(r"(?<![\w.~])/(work|root|home)/")
NOTE_NAMES = ("METHOD", "EDGE", "STACK", "STYLE")  # the notes' file names, cited bare


def tracked_files():
    """Paths of the files git tracks under ROOT, or skip when ROOT is not a git checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    top = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True)
    if top.returncode != 0 or pathlib.Path(top.stdout.strip()).resolve() != ROOT:
        pytest.skip(f"{ROOT} is not a git checkout")
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                         check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def text_lines(path):
    """The lines of a text file, or [] for a binary or missing one."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # deleted in the working tree
        return []
    if b"\0" in data[:8192]:
        return []
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return []


def offending_lines(root, names):
    """``file:line: text`` for every line of the files ``names`` (relative to ``root``) that refers
    outside the repository."""
    bare = [n for n in NOTE_NAMES if f"docs/{n}.md" not in names]
    note_name = re.compile(r"\b(%s)\.md\b" % "|".join(bare)) if bare else None
    hits = []
    for name in names:
        for number, line in enumerate(text_lines(root / name), 1):
            if (OUTSIDE_NOTES.search(line) or MACHINE_PATH.search(line)
                    or (note_name and note_name.search(line))):
                hits.append(f"{name}:{number}: {line.strip()[:120]}")
    return hits


def test_no_reference_outside_the_repository():
    names = tracked_files()
    assert len(names) > 50, "git ls-files listed almost nothing"
    hits = offending_lines(ROOT, names)
    assert not hits, ("tracked files refer to design notes outside the repository or to a "
                      "machine's folders (cite docs/DESIGN.md, use paths relative to the "
                      "repository):\n" + "\n".join(hits))


def test_the_check_finds_what_it_looks_for(tmp_path):
    """The patterns match the references they exist for, and not the allowed ones."""
    s = "/"  # the planted lines are assembled, so that this file passes its own check
    bad = [f"see ../shared{s}docs{s}notes.md", f"out: {s}work{s}runs{s}kd", f'"{s}home{s}me"',
           "(METHOD" + ".md)"]
    good = ["../shared/audio/speech/test", "~/.cache/tinyse_tf", "docs/EDGETPU.md", "runs/kd"]
    for i, line in enumerate(bad + good):
        (tmp_path / f"f{i}.md").write_text(line + "\n")
    (tmp_path / "blob.bin").write_bytes(b"\0" + f"{s}work{s}x".encode())
    names = [f"f{i}.md" for i in range(len(bad) + len(good))] + ["blob.bin"]
    hits = offending_lines(tmp_path, names)
    assert [h.split(":")[0] for h in hits] == [f"f{i}.md" for i in range(len(bad))]

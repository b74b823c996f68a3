#!/usr/bin/env python3
"""tests/docs_examples.py - the C and Python in the documentation, run (make check-docs).

    python3 tests/docs_examples.py [--root DIR] [--cc CC] [--python PY] [FILE.md ...]

Reads README.md and docs/*.md of the tree at DIR (default: the tree holding this file),
or the FILEs named. Every fenced block whose info string is `c` is one of three kinds:

  program       it defines `int main`. The next fenced block of the file must be a
                ```text block (prose may come between): the program's exact standard
                output. The program is compiled against the tree's header and library
                as a user would (cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude
                prog.c -Llib -lvib -lm -Wl,-rpath,<lib>), run in its own directory
                build/docs/<file>-<line>/ with BLIS_NUM_THREADS=1 and OMP_NUM_THREADS=1
                (the documented numbers are those of one thread), under a time limit,
                and must exit 0 and print the documented output (trailing whitespace
                and trailing blank lines aside). A program that names data/mnist runs
                with the tree's data/ beside it and fails if data/mnist is missing
                (`make data` fetches it; check-docs never downloads).
  declarations  no `main`: the block is compiled after `#include <vib.h>` (so a
                signature, typedef or macro that disagrees with the header fails) and
                every vib_* function it declares is linked from libvib. An anonymous
                `enum { NAME = VALUE };` is checked as `_Static_assert(NAME == VALUE)`,
                since C does not allow declaring an enumerator twice.
  fragment      the block's fence is preceded (blank lines aside) by the line
                <!-- docs-check: fragment -->: skipped on purpose, and counted.

Every fenced block whose info string is `python` is one of two kinds:

  program       any block not marked as a fragment: a whole script. Like a C program it
                is followed by its ```text output, and runs in build/docs/<file>-<line>/
                with one thread, under the same time limit and comparison, by PY
                (--python; default $PYTHON, else /usr/bin/python3, Debian's interpreter
                that python3-numpy serves, else the one running this) with the tree's
                package (PYTHONPATH=<root>/python) and library (LIBVIB_PATH=
                <root>/lib/libvib.so.0). A traceback names the markdown file and line.
  fragment      marked as for C: not run, but it must parse as Python.

So a usage snippet that is neither a whole program nor marked fails (a C one does not
compile at file scope, a Python one has no output block), and so does a ```text block
that follows no program: a new example cannot go unchecked without saying so. Other
languages and indented blocks are not read. Compiler messages point at the markdown file
and line (#line).

Python 3 standard library only (the Python programs need numpy in PY, as the package
does). Prints one line per block checked, a unified diff for a wrong output, and a
summary; exits non-zero on any failure.
"""

import argparse
import difflib
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

TIMEOUT_S = 60  # the slowest example (the model's 300 steps) takes well under a second
MARKER = re.compile(r"^\s*<!--\s*docs-check:\s*(.*?)\s*-->\s*$")
OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)")
MAIN = re.compile(r"\bint\s+main\s*\(")
FUNC = re.compile(r"\b(vib_[a-z0-9_]+)\s*\(")
ENUM = re.compile(r"\benum\s*\{([^{}]*)\}\s*;")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
CHECKED = ("c", "python")  # the languages whose blocks are checked
WARN = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]


class Block:
    def __init__(self, path, line, lang, text, marker):
        self.path = path  # as given, relative to the root when found by the default
        self.line = line  # 1-based line of the opening fence
        self.lang = lang
        self.text = text
        self.marker = marker  # the docs-check marker before the fence, or None

    def where(self):
        return "%s:%d" % (self.path, self.line)


def read_blocks(root, rel):
    """The fenced blocks of one markdown file, in order."""
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, i, last_text = [], 0, None
    while i < len(lines):
        m = OPEN.match(lines[i])
        if not m:
            if lines[i].strip():
                last_text = lines[i]
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3), i
        close = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{%d,}\\s*$" % len(fence))
        i += 1
        body = []
        while i < len(lines) and not close.match(lines[i]):
            body.append(lines[i])
            i += 1
        mk = MARKER.match(last_text) if last_text is not None else None
        blocks.append(Block(rel, start + 1, lang, "\n".join(body) + "\n",
                            mk.group(1) if mk else None))
        last_text = lines[i] if i < len(lines) else None
        i += 1
    return blocks


def normalize(text):
    out = [l.rstrip() for l in text.split("\n")]
    while out and out[-1] == "":
        out.pop()
    return out


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def build_flags(root):
    lib = os.path.join(root, "lib")
    return (["-I" + os.path.join(root, "include")],
            ["-L" + lib, "-lvib", "-lm", "-Wl,-rpath," + lib])


def work_dir(root, prog):
    """A fresh directory build/docs/<file>-<line>/ for one program."""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", prog.path.rsplit(".", 1)[0]).strip("_")
    work = os.path.join(root, "build", "docs", "%s-%d" % (stem, prog.line))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return work


def check_program(cc, root, prog, out_block, failures):
    """A C program: compiled as a user would, then run and compared."""
    work = work_dir(root, prog)
    with open(os.path.join(work, "prog.c"), "w", encoding="utf-8") as f:
        f.write('#line %d "%s"\n%s' % (prog.line + 1, prog.path, prog.text))
    inc, libs = build_flags(root)
    cmd = cc + WARN + inc + ["prog.c", "-o", "prog"] + libs
    r = run(cmd, cwd=work)
    if r.returncode != 0:
        failures.append("%s: the program does not compile" % prog.where())
        print("FAIL %s: the program does not compile:\n  %s\n%s"
              % (prog.where(), " ".join(shlex.quote(c) for c in cmd), r.stderr.rstrip()))
        return
    run_and_compare(root, prog, out_block, work, [os.path.join(work, "prog")], {}, failures)


# Runs a Python program written to prog.py so that a traceback names the markdown file
# and its line: the source is padded with blank lines to its place in the file and
# compiled under the file's absolute path (so the traceback also quotes the line).
PY_BOOT = ("import sys; p, md = sys.argv[1], sys.argv.pop(2); sys.argv = [p]; "
           "src = open(p, encoding='utf-8').read(); "
           "exec(compile(src, md, 'exec'), {'__name__': '__main__', '__file__': p})")


def check_python_program(python, root, prog, out_block, failures):
    """A Python program: run with the tree's package (python/) and library (lib/)."""
    work = work_dir(root, prog)
    with open(os.path.join(work, "prog.py"), "w", encoding="utf-8") as f:
        f.write("\n" * prog.line + prog.text)
    env = {"PYTHONPATH": os.pathsep.join(
               [os.path.join(root, "python")]
               + [p for p in [os.environ.get("PYTHONPATH")] if p]),
           "LIBVIB_PATH": os.path.join(root, "lib", "libvib.so.0"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [python, "-c", PY_BOOT, "prog.py", os.path.join(root, prog.path)]
    run_and_compare(root, prog, out_block, work, cmd, env, failures)


def run_and_compare(root, prog, out_block, work, cmd, extra_env, failures):
    """Run a program in its directory with one thread and compare its standard output
    with the documented one."""
    if "data/mnist" in prog.text:
        data = os.path.join(root, "data")
        if not os.path.isdir(os.path.join(data, "mnist")):
            failures.append("%s: needs MNIST" % prog.where())
            print("FAIL %s: the program reads data/mnist, which is missing: run `make data`"
                  % prog.where())
            return
        os.symlink(data, os.path.join(work, "data"))
    env = dict(os.environ, BLIS_NUM_THREADS="1", OMP_NUM_THREADS="1", **extra_env)
    try:
        r = run(cmd, cwd=work, env=env, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        failures.append("%s: timed out" % prog.where())
        print("FAIL %s: the program ran longer than %d s" % (prog.where(), TIMEOUT_S))
        return
    if r.returncode != 0:
        failures.append("%s: exit status %d" % (prog.where(), r.returncode))
        print("FAIL %s: the program exited with status %d\n--- its stdout:\n%s\n--- its stderr:\n%s"
              % (prog.where(), r.returncode, r.stdout.rstrip(), r.stderr.rstrip()))
        return
    want, got = normalize(out_block.text), normalize(r.stdout)
    if want != got:
        failures.append("%s: output differs from %s" % (prog.where(), out_block.where()))
        print("FAIL %s: the output differs from the one documented at %s:"
              % (prog.where(), out_block.where()))
        sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(
            want, got, "%s (documented)" % out_block.where(),
            "%s (printed)" % prog.where(), lineterm=""))
        return
    print("ok   %s: program, output as documented at %s" % (prog.where(), out_block.where()))


def enum_asserts(m):
    """`enum { A = 1, B = 2 };` as static assertions, when every value is written."""
    items = [e.strip() for e in m.group(1).split(",") if e.strip()]
    parts = [e.split("=", 1) for e in items]
    if not parts or any(len(p) != 2 for p in parts):
        return m.group(0)
    return " ".join('_Static_assert((%s) == (%s), "%s is %s");'
                    % (n.strip(), v.strip(), n.strip(), v.strip()) for n, v in parts)


def check_declarations(cc, root, path, decls, failures):
    """All declaration blocks of one file in one translation unit, linked."""
    if not decls:
        return
    work = os.path.join(root, "build", "docs")
    os.makedirs(work, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", path.rsplit(".", 1)[0]).strip("_")
    src = os.path.join(work, "%s-declarations.c" % stem)
    top, refs, declared = ["#include <vib.h>"], [], {}
    for b in decls:
        text = COMMENT.sub(lambda c: re.sub(r"[^\n]", " ", c.group(0)), b.text)
        top.append('#line %d "%s"' % (b.line + 1, path))
        top.append(ENUM.sub(enum_asserts, text))
        for n, line in enumerate(text.split("\n")):
            for name in FUNC.findall(line):
                declared.setdefault(name, "%s:%d" % (path, b.line + 1 + n))
                refs.append("    ref = (void (*)(void))%s;" % name)
    with open(src, "w", encoding="utf-8") as f:
        f.write("\n".join(top))
        f.write("\n\nint main(void)\n{\n    void (*volatile ref)(void);\n")
        f.write("\n".join(refs))
        f.write("\n    (void)ref;\n    return 0;\n}\n")
    inc, libs = build_flags(root)
    cmd = cc + WARN + inc + [src, "-o", src[:-2]] + libs
    r = run(cmd)
    first = "%s:%d" % (path, decls[0].line)
    if len(decls) > 1:
        first += "-%d" % decls[-1].line
    if r.returncode != 0:
        failures.append("%s: declaration blocks do not compile or link" % path)
        print("FAIL %s: declaration blocks (%d) that do not compile against include/vib.h or "
              "do not link against libvib (a usage snippet must be a whole program with a "
              "```text output after it, or be marked <!-- docs-check: fragment -->):\n  %s\n%s"
              % (first, len(decls), " ".join(shlex.quote(c) for c in cmd), r.stderr.rstrip()))
        for name in sorted(set(re.findall(r"undefined reference to `(vib_[a-z0-9_]+)'",
                                          r.stderr))):
            print("  %s declares %s, which libvib does not define" % (declared[name], name))
        return
    print("ok   %s: declaration blocks (%d) agree with include/vib.h, %d functions linked"
          % (first, len(decls), len(declared)))


def default_python():
    """The interpreter for the Python programs: $PYTHON, else Debian's /usr/bin/python3
    (python3-numpy is a package for it, not for a pyenv or virtualenv python3 that may
    come first on PATH), else this one."""
    if os.environ.get("PYTHON"):
        return os.environ["PYTHON"]
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def python_ready(python, failures, state):
    """Whether `python` runs and imports numpy, asked once; says why not, once."""
    if "ready" not in state:
        try:
            r = run([python, "-c", "import numpy"], timeout=TIMEOUT_S)
            why = r.stderr.strip().split("\n")[-1] if r.returncode else ""
        except OSError as e:
            why = str(e)
        state["ready"] = not why
        if why:
            failures.append("the Python programs cannot run")
            print("FAIL the Python programs need %s with numpy (Debian: apt-get install "
                  "python3-numpy, or make deps; another interpreter: --python or $PYTHON): %s"
                  % (python, why))
    return state["ready"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(here))
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--python", default=default_python(),
                    help="the interpreter of the ```python programs (default: $PYTHON, else "
                         "/usr/bin/python3 if it exists, else this one)")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    cc = shlex.split(args.cc)
    files = args.files or (
        [f for f in ["README.md"] if os.path.exists(os.path.join(root, f))]
        + sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md"))))

    failures, py_state = [], {}
    n_prog = n_py = n_decl = n_frag = 0
    for path in files:
        blocks = read_blocks(root, path)
        claimed, decls = set(), []
        for i, b in enumerate(blocks):
            if b.marker is not None and (b.marker != "fragment" or b.lang not in CHECKED):
                failures.append("%s: bad marker" % b.where())
                print("FAIL %s: marker `docs-check: %s` before a ```%s block; the one marker "
                      "is `docs-check: fragment`, before a ```c or ```python block"
                      % (b.where(), b.marker, b.lang))
                continue
            if b.lang not in CHECKED:
                continue
            if b.marker == "fragment":
                n_frag += 1
                if b.lang == "python":
                    try:
                        compile(b.text, b.where(), "exec")
                    except SyntaxError as e:
                        failures.append("%s: a Python fragment that does not parse" % b.where())
                        print("FAIL %s: a ```python fragment must still be Python: line %d: %s"
                              % (b.where(), b.line + (e.lineno or 0), e.msg))
                        continue
                    print("skip %s: marked as a fragment (its syntax checked)" % b.where())
                else:
                    print("skip %s: marked as a fragment" % b.where())
                continue
            if b.lang == "c" and not MAIN.search(COMMENT.sub(" ", b.text)):
                n_decl += 1
                decls.append(b)
                continue
            # a program: a C block with a main, or any unmarked Python block
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            if b.lang == "c":
                n_prog += 1
            else:
                n_py += 1
            if nxt is None or nxt.lang != "text":
                failures.append("%s: no output block" % b.where())
                print("FAIL %s: a program must be followed by a ```text block holding "
                      "its output (the next fenced block is %s)%s"
                      % (b.where(), "```%s at line %d" % (nxt.lang, nxt.line)
                         if nxt else "none",
                         "; a Python snippet that is not a whole program is marked "
                         "<!-- docs-check: fragment -->" if b.lang == "python" else ""))
                continue
            claimed.add(i + 1)
            if b.lang == "c":
                check_program(cc, root, b, nxt, failures)
            elif python_ready(args.python, failures, py_state):
                check_python_program(args.python, root, b, nxt, failures)
        for i, b in enumerate(blocks):
            if b.lang == "text" and i not in claimed:
                failures.append("%s: output block without a program" % b.where())
                print("FAIL %s: a ```text block holds a program's output, but no ```c or "
                      "```python program comes right before it" % b.where())
        check_declarations(cc, root, path, decls, failures)

    print("check-docs: %d C programs, %d Python programs, %d declaration blocks, %d marked "
          "fragments in %s; %s"
          % (n_prog, n_py, n_decl, n_frag, " ".join(files),
             "%d failed" % len(failures) if failures else "all as documented"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

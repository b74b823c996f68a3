#!/usr/bin/env python3
"""python/gen_decls.py - the ctypes declarations of libvib, generated from include/vib.h.

    python3 python/gen_decls.py [HEADER [OUTPUT]]
        (defaults: include/vib.h and python/libvib/_decls.py next to this file;
         OUTPUT "-" writes to stdout)

The libvib package declares no C function by hand: every restype and argtypes it uses
comes from the file this writes, so the binding cannot drift from the header (a test
regenerates the file and compares it with the committed one).

The preprocessing, the same for ctypes and for cffi's cdef (cdef_source below):
  1. strip the comments (/* ... */ and // ...);
  2. drop the preprocessor lines, join the rest, so that each declaration becomes one
     line, then split the text at each ';' into statements, and cut off whatever a brace
     leaves in front of a statement that is not an enum (`extern "C" {`, a closing `}`);
  3. keep the statements of these forms, in the header's order, and nothing else
     (the rest is dropped):
       VIB_API <return type> <name>(<parameters>)     a function
       typedef struct <tag> <name>                     an opaque handle type
       typedef <ret> (*<name>)(<parameters>)           the trainer's callback type
       enum { NAME = value, ... }                      constants
     (the constants also take the preprocessor's #define VIB_<NAME> <integer> lines);
  4. drop VIB_API (the export attribute: nothing for a caller) and the parameter names.
Types map to ctypes as: void -> None, the fixed-width and size_t integers, int, float and
double to their c_* types, char pointers to c_char_p, a pointer to a handle (vib_model *)
to c_void_p, a pointer to a handle pointer (vib_model **) to POINTER(c_void_p), other
pointers to POINTER(<type>), and vib_train_callback to a CFUNCTYPE. An unknown type is an
error, so a new one in the header must be taught here first.

Python 3 standard library only.
"""

import os
import re
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_HEADER = os.path.join(HERE, "..", "include", "vib.h")
DEFAULT_OUTPUT = os.path.join(HERE, "libvib", "_decls.py")

SCALARS = {
    "void": "None",
    "int": "c_int",
    "float": "c_float",
    "double": "c_double",
    "size_t": "c_size_t",
    "int32_t": "c_int32",
    "uint8_t": "c_uint8",
    "uint32_t": "c_uint32",
    "uint64_t": "c_uint64",
    "char": "c_char",
}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments(text):
    """Step 1: the header without its comments (none of vib.h's strings hold a '/*')."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def statements(text):
    """Steps 1-2: the comment-free header as single-line statements split at ';'.
    Preprocessor lines are removed first (they end at a newline, not a ';')."""
    lines = [ln for ln in strip_comments(text).split("\n") if not ln.lstrip().startswith("#")]
    joined = " ".join(lines)
    return [re.sub(r"\s+", " ", s).strip() for s in joined.split(";")]


def defines(text):
    """The integer #define constants (VIB_VERSION_MAJOR 0, VIB_MAX_THREADS 1024)."""
    out = []
    for m in re.finditer(r"^\s*#\s*define\s+(VIB_[A-Z0-9_]+)\s+(-?[0-9]+)\s*$",
                         strip_comments(text), flags=re.M):
        out.append((m.group(1), int(m.group(2))))
    return out


class Param(object):
    def __init__(self, text):
        """One parameter (or a return type when text has no name): its base type, its
        pointer depth, whether the pointee is const, and its name (may be None)."""
        self.text = text
        t = text.replace("*", " * ")
        words = t.split()
        self.const = "const" in words
        words = [w for w in words if w != "const"]
        self.depth = words.count("*")
        words = [w for w in words if w != "*"]
        if not words:
            raise ValueError("cannot parse the C type %r: teach python/gen_decls.py" % text)
        self.name = None
        if len(words) == 2:
            self.name = words[1]
        elif len(words) != 1:
            raise ValueError("cannot parse the C type %r: teach python/gen_decls.py" % text)
        self.base = words[0]

    def c_type(self):
        return ("const " if self.const else "") + self.base + (" " if self.depth else "") \
            + "*" * self.depth


def split_params(args):
    args = args.strip()
    if args in ("", "void"):
        return []
    return [Param(a.strip()) for a in args.split(",")]


FN_RE = re.compile(r"^VIB_API (.+?)\b(" + IDENT + r") ?\((.*)\)$")
HANDLE_RE = re.compile(r"^typedef struct (" + IDENT + r") (" + IDENT + r")$")
CB_RE = re.compile(r"^typedef (.+?) ?\( ?\* ?(" + IDENT + r") ?\) ?\((.*)\)$")
ENUM_RE = re.compile(r"^enum \{(.*)\}$")


def kept(text):
    """Step 3: the statements kept, as (kind, match) in the header's order; kind is
    "function", "handle", "callback" or "enum"."""
    out = []
    for s in statements(text):
        # what a brace leaves in front of a statement (extern "C" {, the end of a block)
        # is not part of it
        if not s.startswith("enum"):
            s = re.sub(r"^.*[{}] ?", "", s)
        for kind, rx in (("function", FN_RE), ("handle", HANDLE_RE), ("callback", CB_RE),
                         ("enum", ENUM_RE)):
            m = rx.match(s)
            if m:
                out.append((kind, m))
                break
    return out


def parse(text):
    """The declarations of a header: (functions, handles, callbacks, constants), each a
    list in the header's order. functions: (name, ret Param, [Param]); handles: names;
    callbacks: (name, ret Param, [Param]); constants: (name, int)."""
    functions, handles, callbacks, constants = [], [], [], list(defines(text))
    for kind, m in kept(text):
        if kind == "function":
            functions.append((m.group(2), Param(m.group(1)), split_params(m.group(3))))
        elif kind == "handle":
            handles.append(m.group(2))
        elif kind == "callback":
            callbacks.append((m.group(2), Param(m.group(1)), split_params(m.group(3))))
        else:
            for item in m.group(1).split(","):
                item = item.strip()
                if item:
                    name, value = [x.strip() for x in item.split("=")]
                    constants.append((name, int(value)))
    return functions, handles, callbacks, constants


def ctype(p, handles, callbacks):
    """The ctypes expression for a parameter or return type."""
    if p.base in callbacks:
        if p.depth:
            raise ValueError("pointer to a callback: %r" % p.text)
        return p.base
    if p.base in handles:
        if p.depth == 1:
            return "c_void_p"
        if p.depth == 2:
            return "POINTER(c_void_p)"
        raise ValueError("a handle by value or a triple pointer: %r" % p.text)
    if p.base not in SCALARS:
        raise ValueError("unknown C type %r: teach python/gen_decls.py" % p.text)
    if p.base == "char" and p.depth == 1:
        return "c_char_p"
    if p.base == "void":
        if p.depth == 0:
            return "None"
        if p.depth == 1:
            return "c_void_p"
        return "POINTER(" * (p.depth - 1) + "c_void_p" + ")" * (p.depth - 1)
    return "POINTER(" * p.depth + SCALARS[p.base] + ")" * p.depth


def prototype(name, ret, params):
    return "%s %s(%s)" % (ret.c_type(), name, ", ".join(p.c_type() for p in params) or "void")


def generate(text):
    """The text of _decls.py for the header text `text`."""
    functions, handles, callbacks, constants = parse(text)
    cbnames = [c[0] for c in callbacks]
    out = [
        '"""ctypes declarations of libvib, GENERATED by python/gen_decls.py from include/vib.h.',
        "",
        "Do not edit: run `make python` (python3 python/gen_decls.py) after changing vib.h.",
        '"""',
        "",
        "IMPORTS",
        "",
        "# The integer constants: #define VIB_* <integer> and the enums, in the header's order.",
        "CONSTANTS = {",
    ]
    for name, value in constants:
        out.append("    %r: %d," % (name, value))
    out.append("}")
    out.append("")
    out.append("# The opaque handle types (passed as c_void_p).")
    out.append("HANDLES = (%s)" % "".join("%r, " % h for h in handles).rstrip())
    out.append("")
    for name, ret, params in callbacks:
        out.append("# typedef %s" % prototype("(*%s)" % name, ret, params))
        out.append("%s = CFUNCTYPE(%s)" % (
            name, ", ".join([ctype(ret, handles, cbnames)] +
                            [ctype(p, handles, cbnames) for p in params])))
        out.append("")
    out.append("# name: (restype, argtypes) for every VIB_API function, in the header's order.")
    out.append("FUNCTIONS = {")
    for name, ret, params in functions:
        out.append("    # " + prototype(name, ret, params))
        args = ", ".join(ctype(p, handles, cbnames) for p in params)
        out.append("    %r: (%s, [%s])," % (name, ctype(ret, handles, cbnames), args))
    out.append("}")
    text = "\n".join(out) + "\n"
    used = sorted(set(re.findall(r"\b(CFUNCTYPE|POINTER|c_[a-z0-9_]+)\b", text)))
    imports = textwrap.fill("from ctypes import (" + ", ".join(used) + ")", width=90,
                            subsequent_indent="    ", break_on_hyphens=False)
    return text.replace("IMPORTS", imports, 1)


def cdef_source(text):
    """The header for cffi's FFI.cdef after the same preprocessing: the integer #defines,
    then the statements kept by step 3 as the header writes them (parameter names
    included), VIB_API dropped (step 4)."""
    out = ["#define %s %d" % nv for nv in defines(text)]
    for kind, m in kept(text):
        stmt = m.group(0)
        if kind == "function":
            stmt = stmt[len("VIB_API "):]
        out.append(stmt + ";")
    return "\n".join(out) + "\n"


def main(argv):
    header = argv[1] if len(argv) > 1 else DEFAULT_HEADER
    output = argv[2] if len(argv) > 2 else DEFAULT_OUTPUT
    with open(header) as f:
        text = generate(f.read())
    if output == "-":
        sys.stdout.write(text)
        return 0
    with open(output, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

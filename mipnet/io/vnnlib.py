"""VNN-LIB property files (the VNN-COMP format) as an input domain and an output condition.

A VNN-LIB file declares inputs ``X_0 .. X_{n-1}`` and outputs ``Y_0 ..`` and asserts the
*unsafe* set: the property fails iff some input meets every input assertion and the outputs
meet every output assertion. Supported (VNN-LIB 1.0 as used by VNN-COMP)::

    (declare-const X_0 Real)                    ; inputs and outputs, Real
    (assert (<= X_0 0.5))                       ; <=, >=, <, >, = on linear terms:
    (assert (>= (+ X_0 (* 2 X_1)) -1))          ;   numbers, variables, +, -, (* number term)
    (assert (or (and (>= Y_0 Y_1) (>= Y_0 Y_2)) (<= Y_3 1)))   ; and / or over output atoms

Strict and non-strict comparisons are the same set up to a null boundary (the verifier's
``tol`` decides boundary cases); ``=`` is two inequalities. Input atoms must be top-level
conjunctions (a disjunction over inputs is rejected: split the file); each input needs a
finite lower and upper bound. Atoms on one variable become the box, others rows ``A x <= c``
(a :func:`~mipnet.core.domain.Polytope`). An atom may not mix X and Y.

Two networks (equivalence). By default the outputs of both networks are concatenated, the
convention of multi-network queries in Marabou (issue #598): ``Y_0 .. Y_{m-1}`` are the
outputs of network A and ``Y_m .. Y_{2m-1}`` those of network B. A comment header line
changes this::

    ; mipnet-outputs: ab      Y_0..Y_{m-1} = A, Y_m..Y_{2m-1} = B (the default)
    ; mipnet-outputs: diff    Y_j = A_j - B_j            (m outputs)
    ; mipnet-outputs: a       Y_j = A_j (B unconstrained) (m outputs)
    ; mipnet-outputs: b       Y_j = B_j                   (m outputs)

The output condition comes back in disjunctive normal form over ``y = [f_A; f_B]``
(:attr:`VnnlibSpec.terms`: a list of ``(C, b)``, unsafe iff ``C y <= b`` for some term), the
form of :class:`mipnet.analyses.properties.OutputDisjunction`.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mipnet.core.domain import Box, Domain, Polytope
from mipnet.core.errors import InvalidArgumentError

__all__ = ["VnnlibError", "VnnlibSpec", "parse_vnnlib", "load_vnnlib"]

_LAYOUTS = ("ab", "diff", "a", "b")
_MAX_TERMS = 100_000


class VnnlibError(InvalidArgumentError):
    """A VNN-LIB file that cannot be read, or uses a construct mipnet does not support."""


@dataclass(frozen=True, eq=False)
class VnnlibSpec:
    """A parsed VNN-LIB file: the input domain and the unsafe output set in DNF.

    ``terms``: list of ``(C, b)`` with ``C`` of shape (rows, 2m) over ``y = [f_A; f_B]``;
    ``m``: outputs per network; ``layout``: how the file's Y map to the two networks.
    """

    domain: Domain
    terms: tuple
    m: int
    num_inputs: int
    num_outputs: int
    layout: str
    notes: tuple = field(default_factory=tuple)


# ---------------------------------------------------------------------------- s-expressions
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _tokens(text: str):
    out = []
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        out.extend(_TOKEN.findall(line))
    return out


def _parse_sexprs(tokens):
    stack, top = [], []
    cur = top
    for t in tokens:
        if t == "(":
            stack.append(cur)
            cur = []
        elif t == ")":
            if not stack:
                raise VnnlibError("unbalanced ')' in the VNN-LIB file")
            done = cur
            cur = stack.pop()
            cur.append(done)
        else:
            cur.append(t)
    if stack:
        raise VnnlibError("unbalanced '(' in the VNN-LIB file: it ends inside an expression")
    return top


def _show(e) -> str:
    return e if isinstance(e, str) else "(" + " ".join(_show(x) for x in e) + ")"


# ---------------------------------------------------------------------------- linear terms
_VAR = re.compile(r"^([XY])_(\d+)$")


class _Lin:
    """A linear form ``sum coef[var] var + const`` (var = ("X", i) or ("Y", j))."""

    __slots__ = ("coef", "const")

    def __init__(self, coef=None, const=0.0):
        self.coef = dict(coef or {})
        self.const = float(const)

    def add(self, other, s=1.0):
        c = dict(self.coef)
        for k, v in other.coef.items():
            c[k] = c.get(k, 0.0) + s * v
        return _Lin(c, self.const + s * other.const)

    def scale(self, a):
        return _Lin({k: a * v for k, v in self.coef.items()}, a * self.const)

    @property
    def kinds(self):
        return {k[0] for k, v in self.coef.items() if v != 0}


def _number(tok: str) -> Optional[float]:
    try:
        return float(tok)
    except ValueError:
        return None


def _term(e, declared) -> _Lin:
    if isinstance(e, str):
        v = _number(e)
        if v is not None:
            if not np.isfinite(v):
                raise VnnlibError(f"non-finite number {e!r}")
            return _Lin(const=v)
        m = _VAR.match(e)
        if not m:
            raise VnnlibError(f"unknown symbol {e!r}: variables are X_i (inputs) and Y_j (outputs)")
        key = (m.group(1), int(m.group(2)))
        if key not in declared:
            raise VnnlibError(f"{e} is used but not declared with (declare-const {e} Real)")
        return _Lin({key: 1.0})
    if not e or not isinstance(e[0], str):
        raise VnnlibError(f"cannot read the term {_show(e)}")
    op, args = e[0], e[1:]
    if op == "+":
        out = _Lin()
        for a in args:
            out = out.add(_term(a, declared))
        return out
    if op == "-":
        if len(args) == 1:
            return _term(args[0], declared).scale(-1.0)
        out = _term(args[0], declared)
        for a in args[1:]:
            out = out.add(_term(a, declared), -1.0)
        return out
    if op == "*":
        parts = [_term(a, declared) for a in args]
        nonconst = [p for p in parts if p.coef]
        if len(nonconst) > 1:
            raise VnnlibError(f"non-linear term {_show(e)}: a product may have at most one variable factor")
        out = _Lin(const=1.0)
        scale = 1.0
        for p in parts:
            if not p.coef:
                scale *= p.const
        out = nonconst[0].scale(scale) if nonconst else _Lin(const=scale)
        return out
    raise VnnlibError(f"unsupported operator {op!r} in {_show(e)} (supported: + - * with numbers)")


# ---------------------------------------------------------------------------- formulas
_CMP = ("<=", ">=", "<", ">", "=")


def _atom(e, declared) -> list:
    """``[lin]`` meaning ``lin <= 0`` (two entries for ``=``)."""
    op, args = e[0], e[1:]
    if len(args) != 2:
        raise VnnlibError(f"{op} takes two arguments in {_show(e)}")
    lhs, rhs = _term(args[0], declared), _term(args[1], declared)
    d = lhs.add(rhs, -1.0)  # lhs - rhs
    if op in ("<=", "<"):
        return [d]
    if op in (">=", ">"):
        return [d.scale(-1.0)]
    return [d, d.scale(-1.0)]


def _dnf(e, declared) -> list:
    """A formula as a list of conjunctions, each a list of ``lin <= 0``."""
    if isinstance(e, str) or not e or not isinstance(e[0], str):
        raise VnnlibError(f"cannot read the formula {_show(e)}")
    op = e[0]
    if op in _CMP:
        return [_atom(e, declared)]
    if op == "and":
        parts = [_dnf(a, declared) for a in e[1:]]
        size = int(np.prod([len(p) for p in parts])) if parts else 1
        if size > _MAX_TERMS:
            raise VnnlibError(f"the formula expands to {size} conjunctions (more than {_MAX_TERMS}); simplify it")
        return [sum(combo, []) for combo in itertools.product(*parts)] if parts else [[]]
    if op == "or":
        out = []
        for a in e[1:]:
            out.extend(_dnf(a, declared))
        if len(out) > _MAX_TERMS:
            raise VnnlibError(f"the formula has more than {_MAX_TERMS} disjuncts")
        return out
    if op in ("not", "=>", "ite", "xor"):
        raise VnnlibError(f"unsupported connective {op!r} in {_show(e)[:80]}: write the unsafe set with and/or "
                          "of comparisons")
    raise VnnlibError(f"unknown formula {op!r} in {_show(e)[:80]}")


# ---------------------------------------------------------------------------- the file
def parse_vnnlib(text: str, *, m: Optional[int] = None, num_inputs: Optional[int] = None,
                 layout: Optional[str] = None) -> VnnlibSpec:
    """Parse VNN-LIB text into a :class:`VnnlibSpec` (see the module docstring).

    ``m``: outputs per network (checked against the declarations; inferred when None);
    ``num_inputs``: the networks' input size (checked); ``layout``: overrides the
    ``; mipnet-outputs:`` header.
    """
    hdr = re.search(r"^\s*;+\s*mipnet-outputs\s*:\s*(\S+)", text, flags=re.M | re.I)
    if layout is None:
        layout = hdr.group(1).lower() if hdr else "ab"
    if layout not in _LAYOUTS:
        raise VnnlibError(f"unknown output layout {layout!r}; use one of {', '.join(_LAYOUTS)}")
    exprs = _parse_sexprs(_tokens(text))
    declared: dict = {}
    asserts = []
    for e in exprs:
        if isinstance(e, str) or not e:
            raise VnnlibError(f"unexpected {_show(e)!r} at the top level: expected (declare-const ...) or (assert ...)")
        head = e[0]
        if head == "declare-const":
            if len(e) != 3:
                raise VnnlibError(f"malformed declaration {_show(e)}")
            name, sort = e[1], e[2]
            mt = _VAR.match(name) if isinstance(name, str) else None
            if not mt:
                raise VnnlibError(f"unsupported variable name {_show(name)}: VNN-LIB 1.0 uses X_i and Y_j")
            if sort != "Real":
                raise VnnlibError(f"{name} has sort {_show(sort)}; only Real is supported")
            declared[(mt.group(1), int(mt.group(2)))] = True
        elif head == "assert":
            if len(e) != 2:
                raise VnnlibError(f"assert takes one formula: {_show(e)[:80]}")
            asserts.append(e[1])
        elif head in ("declare-network", "declare-input", "declare-output"):
            raise VnnlibError(f"{head} (VNN-LIB 2.0 network declarations) is not supported; use X_i / Y_j "
                              "with the mipnet-outputs convention")
        elif head in ("check-sat", "get-model", "set-logic", "set-info", "exit"):
            continue
        else:
            raise VnnlibError(f"unsupported command {head!r}")
    n = 1 + max((i for k, i in declared if k == "X"), default=-1)
    ny = 1 + max((j for k, j in declared if k == "Y"), default=-1)
    missing = [f"{k}_{i}" for k, size in (("X", n), ("Y", ny)) for i in range(size) if (k, i) not in declared]
    if missing:
        raise VnnlibError(f"variables are not declared contiguously from 0: missing {', '.join(missing[:5])}")
    if n == 0:
        raise VnnlibError("no inputs declared: expected (declare-const X_0 Real) ...")
    if ny == 0:
        raise VnnlibError("no outputs declared: expected (declare-const Y_0 Real) ...")
    if num_inputs is not None and n != num_inputs:
        raise VnnlibError(f"the file declares {n} inputs X_i but the networks take {num_inputs}")
    if layout == "ab":
        if ny % 2:
            raise VnnlibError(f"the file declares {ny} outputs; for two networks give 2m outputs (Y_0..Y_(m-1) of A, "
                              "Y_m..Y_(2m-1) of B) or a header '; mipnet-outputs: diff' (or a, b) with m outputs")
        mm = ny // 2
    else:
        mm = ny
    if m is not None and mm != m:
        want = 2 * m if layout == "ab" else m
        raise VnnlibError(f"the file declares {ny} outputs Y_j; with layout {layout!r} and {m} outputs per network "
                          f"it should declare {want}")
    m = mm

    in_rows, out_dnfs = [], []
    for f in asserts:
        dnf = _dnf(f, declared)
        kinds = set()
        for conj in dnf:
            for lin in conj:
                k = lin.kinds
                if len(k) > 1:
                    raise VnnlibError(f"an atom mixes inputs and outputs in {_show(f)[:80]}; "
                                      "input and output constraints must be separate")
                kinds |= k
        if "X" in kinds and "Y" in kinds:
            raise VnnlibError(f"an assertion mixes input and output constraints in {_show(f)[:80]}; "
                              "disjunctions of input regions are not supported (split the file, one region each)")
        if not kinds:  # constants only
            if not any(all(lin.const <= 0 for lin in conj) for conj in dnf):
                raise VnnlibError(f"the assertion {_show(f)[:80]} is false: the unsafe set is empty")
            continue
        if "X" in kinds:
            if len(dnf) != 1:
                raise VnnlibError(f"disjunction over inputs in {_show(f)[:80]} is not supported; split the file "
                                  "into one file per input region")
            in_rows.extend(dnf[0])
        else:
            out_dnfs.append(dnf)
    domain = _domain(in_rows, n)
    terms, size = [], 1
    for d in out_dnfs:
        size *= len(d)
    if size > _MAX_TERMS:
        raise VnnlibError(f"the output assertions expand to {size} conjunctions (more than {_MAX_TERMS})")
    if not out_dnfs:
        raise VnnlibError("no output assertion: the file must state the unsafe output set")
    for combo in itertools.product(*out_dnfs):
        rows = sum(combo, [])
        C = np.zeros((len(rows), 2 * m))
        b = np.zeros(len(rows))
        for r, lin in enumerate(rows):
            for (_, j), v in lin.coef.items():
                if layout == "ab":
                    C[r, j] += v
                elif layout == "diff":
                    C[r, j] += v
                    C[r, m + j] -= v
                elif layout == "a":
                    C[r, j] += v
                else:
                    C[r, m + j] += v
            b[r] = -lin.const
        terms.append((C, b))
    notes = []
    if re.search(r"\(\s*[<>]\s", text):
        notes.append("strict comparisons < and > are read as <= and >= (they differ on a null set)")
    return VnnlibSpec(domain, tuple(terms), m, n, ny, layout, tuple(notes))


def _domain(rows, n: int) -> Domain:
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    A, c = [], []
    for lin in rows:
        items = [(i, v) for (_, i), v in lin.coef.items() if v != 0]
        if len(items) == 1:  # v x_i + const <= 0
            i, v = items[0]
            bound = -lin.const / v
            if v > 0:
                hi[i] = min(hi[i], bound)
            else:
                lo[i] = max(lo[i], bound)
        elif items:
            a = np.zeros(n)
            for i, v in items:
                a[i] = v
            A.append(a)
            c.append(-lin.const)
    unb = [i for i in range(n) if not (np.isfinite(lo[i]) and np.isfinite(hi[i]))]
    if unb:
        raise VnnlibError(f"inputs {', '.join(f'X_{i}' for i in unb[:5])} have no finite lower and upper bound; "
                          "every input needs (assert (>= X_i lo)) and (assert (<= X_i hi))")
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        raise VnnlibError(f"X_{i} has lower bound {lo[i]} > upper bound {hi[i]}: the input set is empty")
    if A:
        return Polytope(np.array(A), np.array(c), lo, hi)
    return Box(lo, hi)


def load_vnnlib(path, **kw) -> VnnlibSpec:
    """Read and parse a ``.vnnlib`` file (see :func:`parse_vnnlib`)."""
    path = os.fspath(path)
    try:
        # bytes that are not UTF-8 (a Latin-1 comment) become U+FFFD: harmless in comments, a parse
        # error with its line elsewhere
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise VnnlibError(f"cannot read the VNN-LIB file {path}: {exc.strerror or exc}") from None
    try:
        return parse_vnnlib(text, **kw)
    except VnnlibError as exc:
        raise VnnlibError(f"{path}: {exc}") from None

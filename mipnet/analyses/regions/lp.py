"""The LP method: depth-first branching with each cell held as rows of one HiGHS LP.

Rows are appended when descending and deleted when backtracking. Each cell keeps a
*certified* interior ball (centre, radius): a hyperplane whose distance from the centre
is below the radius by more than its error cuts the cell without an LP, and the ball of
each side follows in closed form. Otherwise the certified Chebyshev LP of the far side
(:mod:`.chebyshev`) decides: ``FULL`` (a certified ball: branch), ``EMPTY`` (certified: the
neuron's side becomes a row of the cell) or ``AMBIGUOUS`` (the far side is at the
resolution limit: treated as empty, and the count is reported as not exact). Neurons
stable on the whole domain by symbolic bounds never need an LP.
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.core.errors import InvalidDomainError

from .chebyshev import ChebyshevLP, Decision
from .problem import EPS, Problem, layer_maps
from .sink import Sink, layer_rho

__all__ = ["count_lp"]


def _side_row(au: np.ndarray, cu: float, side: bool):
    """Row ``-s a.u + t <= s c`` of ``s (a.u + c) >= t`` (unit a; s = +1 for the 'on' side)."""
    s = 1.0 if side else -1.0
    return -s * au, s * cu


def count_lp(prob: Problem, sink: Sink, *, deadline: float, stats: dict) -> str:
    net = prob.rnet
    L = net.num_hidden_layers
    noise = prob.tol.noise
    lp = ChebyshevLP(prob)
    stats["lp"] = lp
    # balls live in the normalised box: |x| <= Rb; the resolution floor is relative to the box
    Rb = float(np.linalg.norm(np.maximum(np.abs(prob.lower), np.abs(prob.upper))))
    fl = prob.geo * (1.0 + prob.radius)
    eps8 = 8 * EPS

    def cap_err(ea, eb, cu):
        """Bound on the error of any cap radius of the layer's hyperplanes (|x| <= Rb)."""
        if ea.size == 0:
            return 0.0
        return float(ea.max()) * Rb + float((eb + eps8 * np.abs(cu)).max()) + eps8 * Rb

    dec, x0, r0 = lp.decide(fl)
    if dec is not Decision.FULL:
        raise InvalidDomainError("the domain has no interior (its Chebyshev radius is ~0)")
    # neurons stable on the whole domain by (cheap, sound) symbolic bounds need no LP anywhere
    from mipnet.bounds import symbolic_bounds

    sb = symbolic_bounds(net, prob.rdomain())
    st_off = [lb.upper <= 0 for lb in sb.hidden]
    st_on = [lb.lower > 0 for lb in sb.hidden]
    n = prob.n
    W1, b1 = net.layers[0]
    A1, c1, M1, m1, Au1, cu1, ea1, eb1, const1 = layer_maps(W1, b1, np.ones(n), np.eye(n), np.zeros(n),
                                                           np.eye(n), np.zeros(n), noise, layer_rho(prob, 0))
    on1 = (const1 & (c1 > 0)) | (~const1 & st_on[0])
    dec1 = const1 | st_off[0] | st_on[0]
    # a node: (rows of its ancestors, its own rows, ball centre, radius, reference radius,
    #          layer, on, decided, layer maps, prefix)
    stack = [(lp.base, (), x0, r0, r0, 0, on1, dec1,
              (A1, c1, M1, m1, Au1, cu1, ea1, eb1, cap_err(ea1[~const1], eb1[~const1], cu1[~const1])), ())]
    nodes = 0
    layers = net.layers
    while stack:
        nbase, own, x, r, rref, l, on, decd, maps, prefix = stack.pop()
        nodes += 1
        if (nodes & 3) == 0:
            stats["nodes"] = nodes
            if time.perf_counter() > deadline:
                return "time_limit"
            if (nodes & 255) == 0:
                sink.tick()
        lp.truncate(nbase)
        for row in own:
            lp.push(*row)
        if r < 0.25 * rref:
            # the inherited ball became small: re-centre it (one LP) so that it settles more cuts
            d0, xr, tr = lp.decide(fl)
            if d0 is Decision.FULL and tr > r:
                x, r, rref = xr, tr, tr
        _, _, _, _, Au, cu, ea, eb, cerr = maps
        while True:
            und = np.flatnonzero(~decd)
            if und.size:
                d = Au[und] @ x + cu[und]
                ad = np.abs(d)
                # error of a cap's radius: the hyperplane's error at x plus rounding (a bound for the layer)
                err = cerr + eps8 * r
                free = ad < r - 2 * (fl + err)
                other = None
                if free.any():
                    pos = int(np.argmax(free))
                else:
                    pos = int(np.argmin(ad))
                    j = und[pos]
                    s0 = bool(d[pos] >= 0)
                    a_far, b_far = _side_row(Au[j], cu[j], not s0)
                    lp.push(a_far, b_far, ea[j], eb[j])
                    dfar, xo, to = lp.decide(fl)
                    lp.truncate(lp.nrows - 1)
                    if dfar is Decision.FULL:
                        other = (xo, to)
                    else:
                        if dfar is Decision.AMBIGUOUS:
                            stats["ambiguous"] = stats.get("ambiguous", 0) + 1
                        # neuron j is stable on this cell: its side becomes a row of the cell
                        lp.push(*_side_row(Au[j], cu[j], s0), ea[j], eb[j])
                        on = on.copy()
                        decd = decd.copy()
                        on[j] = s0
                        decd[j] = True
                        if ad[pos] < r:
                            sg = 1.0 if s0 else -1.0
                            x = x + sg * Au[j] * (r - ad[pos]) / 2
                            r = (r + ad[pos]) / 2 - err
                        continue
                j = und[pos]
                au, cj = Au[j], cu[j]
                s0 = bool(d[pos] >= 0)
                sg = 1.0 if s0 else -1.0
                dj = ad[pos]
                ej = err
                # the side holding the centre keeps a cap of the ball; the far side its cap or the LP ball
                if dj < r:
                    x_in, r_in = x + sg * au * (r - dj) / 2, (r + dj) / 2 - ej
                else:
                    x_in, r_in = x, r
                if other is None:
                    x_out, r_out = x - sg * au * (r + dj) / 2, (r - dj) / 2 - ej
                    ref_out = rref
                else:
                    (x_out, r_out), ref_out = other, other[1]
                dec2 = decd.copy()
                dec2[j] = True
                on_in = on.copy()
                on_in[j] = s0
                on_out = on.copy()
                on_out[j] = not s0
                base = lp.nrows
                stack.append((base, (_side_row(au, cj, not s0) + (ea[j], eb[j]),), x_out, r_out, ref_out,
                              l, on_out, dec2, maps, prefix))
                stack.append((base, (_side_row(au, cj, s0) + (ea[j], eb[j]),), x_in, r_in, rref,
                              l, on_in, dec2, maps, prefix))
                break
            prefix = prefix + (on,)
            if l == L - 1:
                sink.add(x.copy(), np.concatenate(prefix))
                if sink.full:
                    stats["nodes"] = nodes
                    return "max_regions" if stack else "complete"
                break
            W, b = layers[l + 1]
            A, c, M, m = maps[:4]
            A2, c2, M2, m2, Au, cu, ea, eb, const = layer_maps(W, b, on, A, c, M, m, noise, layer_rho(prob, l + 1))
            maps = (A2, c2, M2, m2, Au, cu, ea, eb, cap_err(ea[~const], eb[~const], cu[~const]))
            l += 1
            on = np.where(const, c2 > 0, st_on[l])
            decd = const | st_off[l] | st_on[l]
    stats["nodes"] = nodes
    return "complete"

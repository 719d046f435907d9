"""The spectral mixing of the row pairs ``f >= 1``: each complex product as Gauss's three real ones.

Rows ``2f-1, 2f`` of a real spectrum hold, per column pair, the coefficients ``cc, cs, sc,
ss`` of frequency ``(f, g)``; the mixing (:mod:`methods.fourier.spectral_mix`, whose module
docstring derives it) multiplies ``u - i v`` by ``W(+f, g)`` (side A) and ``p + i q`` by
``W(-f, g)`` (side B), ``u = cc - ss, v = cs + sc, p = cc + ss, q = sc - cs``, each times 1/2.

A complex product ``(a + i b)(c + i d)`` takes three real products instead of four:
``t1 = a c``, ``t2 = b d``, ``t3 = (a + b)(c + d)``, then ``Re = t1 - t2`` and
``Im = t3 - t1 - t2``. Here ``(a, b) = (u, -v)`` on side A -- stored as ``u, v, u - v``,
with ``-d`` as its second weight -- and ``(p, q)`` on side B; the weights
``[c, +-d, c + d]`` (``c = Re W (+ P)``, ``d = Im W``) carry the 1/2. So the stacked spectra ``x3`` are ``(f, side, g, 3, B, C_in)``, one batched
product gives ``t``, and backward takes three products for the input gradient and three for
the weight gradient: a quarter of the mixing's multiply-adds fewer than four real products
(the counted work says so), for one more sum per side on the inputs.
"""

from __future__ import annotations

import torch

__all__ = ["pairs_backward", "pairs_forward"]


def _weights3(w: torch.Tensor, pw: torch.Tensor | None) -> torch.Tensor:
    """``(f, side, g, 3, C_in, C_out)``: ``[c, +-d, c + d] / 2`` with ``c = Re W (+ P)``,
    ``d = Im W`` of a run of row pairs (rows ``+f, -f`` of ``w``; ``-d`` on side A)."""
    wr = torch.view_as_real(w)
    nf2, nk, ci, co = w.shape
    out = w.real.new_empty(nf2 // 2, 2, nk, 3, ci, co)
    re, im = wr[..., 0].view(nf2 // 2, 2, nk, ci, co), wr[..., 1].view(nf2 // 2, 2, nk, ci, co)
    if pw is not None:
        torch.add(re, pw, out=out[:, :, :, 0])
    else:
        out[:, :, :, 0] = re
    torch.neg(im[:, 0], out=out[:, 0, :, 1])
    out[:, 1, :, 1] = im[:, 1]
    torch.add(out[:, :, :, 0], im, out=out[:, :, :, 2])  # c + d, d = Im W on both sides
    return out.mul_(0.5)


def _stack3(spec: torch.Tensor, f0: int, f1: int, width: int) -> torch.Tensor:
    """``x3`` of row pairs ``f0 .. f1-1``: ``(f, side, g, 3, B, C)``: ``[u, v, u - v]`` (side A)
    and ``[p, q, p + q]`` (side B); column ``g = 0`` has ``u = p = c0``, ``v = q = s0``."""
    nf, nk = f1 - f0, (width + 1) // 2
    blk = spec[2 * f0 - 1:2 * f1 - 1, :width]
    rows = blk.view(nf, 2, width, *blk.shape[2:])
    c, s = rows[:, 0], rows[:, 1]
    x = spec.new_empty(nf, 2, nk, 3, *blk.shape[2:])
    cc, cs, sc, ss = c[:, 1::2], c[:, 2::2], s[:, 1::2], s[:, 2::2]
    torch.sub(cc, ss, out=x[:, 0, 1:, 0])
    torch.add(cs, sc, out=x[:, 0, 1:, 1])
    torch.add(cc, ss, out=x[:, 1, 1:, 0])
    torch.sub(sc, cs, out=x[:, 1, 1:, 1])
    x[:, :, 0, 0] = c[:, None, 0]
    x[:, :, 0, 1] = s[:, None, 0]
    torch.sub(x[:, 0, :, 0], x[:, 0, :, 1], out=x[:, 0, :, 2])
    torch.add(x[:, 1, :, 0], x[:, 1, :, 1], out=x[:, 1, :, 2])
    return x


def pairs_forward(spec, w, pw, out, f0: int, f1: int) -> None:
    """Rows ``2 f0 - 1 .. 2 f1 - 2`` of the mixing's output ``out``."""
    width, nf = w.shape[0], f1 - f0
    nk, bsz, ci, co = (width + 1) // 2, spec.shape[2], spec.shape[3], w.shape[-1]
    x3 = _stack3(spec, f0, f1, width).view(-1, bsz, ci)
    t = torch.bmm(x3, _weights3(w[2 * f0 - 1:2 * f1 - 1], pw).view(-1, ci, co))
    t = t.view(nf, 2, nk, 3, bsz, co)
    re = t[:, :, :, 0] - t[:, :, :, 1]  # [f, side, g]: Re A, Re B
    im = t[:, :, :, 2] - (t[:, :, :, 0] + t[:, :, :, 1])
    o = out[2 * f0 - 1:2 * f1 - 1, :width].view(nf, 2, width, bsz, co)
    oc, os_ = o[:, 0], o[:, 1]
    s_re, d_im = re[:, 0] + re[:, 1], im[:, 1] - im[:, 0]
    oc[:, 0], oc[:, 1::2] = s_re[:, 0], s_re[:, 1:]
    os_[:, 0], os_[:, 1::2] = d_im[:, 0], d_im[:, 1:]
    torch.add(im[:, 0, 1:], im[:, 1, 1:], out=oc[:, 2::2]).neg_()
    torch.sub(re[:, 1, 1:], re[:, 0, 1:], out=os_[:, 2::2])


def _output_grads(g_rows: torch.Tensor, nk: int) -> torch.Tensor:
    """The gradient at ``t``, ``(f * 2 * g * 3, B, C_out)``, from that at the rows' output
    ``g_rows`` ``(2 f, width, B, C_out)``: first at ``Re``, ``Im`` of each side (``g >= 1``
    from the four outputs, ``g = 0`` from ``c0'`` and ``s0'``), then ``g_t1 = g_Re - g_Im``,
    ``g_t2 = -g_Re - g_Im``, ``g_t3 = g_Im``."""
    nf, width, bsz, co = g_rows.shape[0] // 2, *g_rows.shape[1:]
    gr = g_rows.view(nf, 2, width, bsz, co)
    gc, gs = gr[:, 0], gr[:, 1]
    g_re = gc.new_empty(nf, 2, nk, bsz, co)
    g_im = torch.empty_like(g_re)
    g_re[:, 0, 0], g_re[:, 1, 0] = gc[:, 0], gc[:, 0]
    torch.neg(gs[:, 0], out=g_im[:, 0, 0])
    g_im[:, 1, 0] = gs[:, 0]
    torch.sub(gc[:, 1::2], gs[:, 2::2], out=g_re[:, 0, 1:])
    torch.add(gc[:, 1::2], gs[:, 2::2], out=g_re[:, 1, 1:])
    torch.add(gc[:, 2::2], gs[:, 1::2], out=g_im[:, 0, 1:]).neg_()
    torch.sub(gs[:, 1::2], gc[:, 2::2], out=g_im[:, 1, 1:])
    g_t = gc.new_empty(nf, 2, nk, 3, bsz, co)
    torch.sub(g_re, g_im, out=g_t[:, :, :, 0])
    torch.add(g_re, g_im, out=g_t[:, :, :, 1]).neg_()
    g_t[:, :, :, 2] = g_im
    return g_t.view(-1, bsz, co)


def _unstack3(g_x3: torch.Tensor, g_rows: torch.Tensor) -> None:
    """Transpose of :func:`_stack3`: from the gradient at ``x3`` into the rows' gradient
    ``g_rows`` ``(2 f, width, B, C_in)``."""
    nf, width, bsz, ci = g_rows.shape[0] // 2, *g_rows.shape[1:]
    gx = g_x3.view(nf, 2, (width + 1) // 2, 3, bsz, ci)
    g_u = gx[:, 0, :, 0] + gx[:, 0, :, 2]  # x3 holds u - v and p + q
    g_v = gx[:, 0, :, 1] - gx[:, 0, :, 2]
    g_p = gx[:, 1, :, 0] + gx[:, 1, :, 2]
    g_q = gx[:, 1, :, 1] + gx[:, 1, :, 2]
    o = g_rows.view(nf, 2, width, bsz, ci)
    oc, os_ = o[:, 0], o[:, 1]
    torch.add(g_u[:, 0], g_p[:, 0], out=oc[:, 0])
    torch.add(g_v[:, 0], g_q[:, 0], out=os_[:, 0])
    torch.add(g_u[:, 1:], g_p[:, 1:], out=oc[:, 1::2])  # u, p hold +cc
    torch.sub(g_v[:, 1:], g_q[:, 1:], out=oc[:, 2::2])  # v holds +cs, q -cs
    torch.add(g_v[:, 1:], g_q[:, 1:], out=os_[:, 1::2])  # v, q hold +sc
    torch.sub(g_p[:, 1:], g_u[:, 1:], out=os_[:, 2::2])  # p holds +ss, u -ss


def _weight_grads(x3, g_t, shape, g_wr, g_pw) -> None:
    """``g_wr`` (``(f2, g, C_in, C_out, 2)``, real view of the complex gradient) and ``g_pw +=``
    from ``g_W3 = x3^T g_t``, the transpose of :func:`_weights3`."""
    nf2, nk, ci, co = shape
    g3 = torch.bmm(x3.transpose(1, 2), g_t).view(nf2 // 2, 2, nk, 3, ci, co).mul_(0.5)
    g_re = g3[:, :, :, 0] + g3[:, :, :, 2]
    if g_wr is not None:
        g_wr[..., 0] = g_re.view(nf2, nk, ci, co)
        g_im = g3[:, :, :, 2] + g3[:, :, :, 1]
        g_im[:, 0] -= 2 * g3[:, 0, :, 1]  # side A holds -Im W
        g_wr[..., 1] = g_im.view(nf2, nk, ci, co)
    if g_pw is not None:
        g_pw += g_re.sum(dim=(0, 1, 2))


def pairs_backward(spec, w, pw, g_out, g_spec, g_wr, g_pw, f0: int, f1: int) -> None:
    """The transpose of :func:`pairs_forward` for rows ``2 f0 - 1 .. 2 f1 - 2``: ``g_spec``'s
    rows (written), ``g_wr``'s rows (written, real view) and ``g_pw +=``."""
    width = w.shape[0]
    nk, bsz, ci, co = (width + 1) // 2, spec.shape[2], spec.shape[3], w.shape[-1]
    rows = slice(2 * f0 - 1, 2 * f1 - 1)
    g_t = _output_grads(g_out[rows, :width], nk)
    if g_wr is not None or g_pw is not None:
        x3 = _stack3(spec, f0, f1, width).view(-1, bsz, ci)
        _weight_grads(x3, g_t, w[rows].shape, g_wr[rows] if g_wr is not None else None, g_pw)
    if g_spec is not None:
        w3 = _weights3(w[rows], pw).view(-1, ci, co)
        _unstack3(torch.bmm(g_t, w3.transpose(1, 2)), g_spec[rows, :width])

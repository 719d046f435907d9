"""The spectral convolution's per-frequency channel mixing on real spectra: one autograd function.

:class:`SpectralMix` computes, on a real spectrum ``(K, K, B, C_in)`` (see
:mod:`methods.fourier.basis`), what ``band_to_real(real_to_band(spec) @ W)`` gives
(the half spectrum mixed per frequency as ``rfft2``/``irfft2`` would), plus a real
``1 x 1`` mixing ``P`` where the kernel has no spectral term and a bias on the
constant. It works through the frequency rows in cache-sized chunks and converts
between the real basis and the half spectrum row pair by row pair, so that no
full-size complex band, stacked copy or intermediate gradient is ever
materialised: the only large tensors are the output and, in backward, the input
gradient, and both come from the model's :class:`~methods.fourier.workspace.Workspace`.
On the CPU the runs of row pairs are the tasks of :mod:`methods.fourier.parallel`.

Derivation. Rows ``2f-1, 2f`` of the real spectrum are the ``cos``/``sin`` rows of
``f_y = f``, columns likewise for ``f_x``. With ``cc, cs, sc, ss`` the coefficients of
one frequency ``(f, g)``, ``g >= 1``, the half spectrum holds
``(u - i v) / 4`` at ``(+f, g)`` and ``(p + i q) / 4`` at ``(-f, g)``, where
``u = cc - ss, v = cs + sc, p = cc + ss, q = sc - cs`` (:func:`basis.real_to_band`).
With ``A = (u - i v) W(+f, g)`` and ``B = (p + i q) W(-f, g)``, ``irfft2``
(:func:`basis.band_to_real`) gives back ``cc' = (Re A + Re B) / 2``,
``cs' = -(Im A + Im B) / 2``, ``sc' = (Im B - Im A) / 2``, ``ss' = (Re B - Re A) / 2``.
The column ``g = 0`` follows the same formulas with ``u = p = c0, v = q = s0`` (its
``cs``/``ss`` do not exist), and the row ``f = 0`` is ``A`` alone with ``u = r_c``,
``v = r_s`` (``v = 0`` at ``g = 0``): ``r_c' = Re A``, ``r_s' = -Im A``. Every complex
product of row 0 is two real batched GEMMs on ``[u; v]`` stacked along the batch axis; the
row pairs take three real products each (Gauss; :mod:`methods.fourier.mix_pairs`).

The multiplier's rows are in the real spectrum's row order: ``f_y = 0, +1, -1, +2,
-2, ...`` (:meth:`SpectralConv2d.multiplier`), so row ``r`` of ``W`` belongs to row
``r`` of the spectrum.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from scaleqbench.methods.fourier import mix_native
from scaleqbench.methods.fourier.chunking import CHUNK_ELEMENTS, chunk_slices
from scaleqbench.methods.fourier.mix_pairs import pairs_backward, pairs_forward
from scaleqbench.methods.fourier.parallel import run_tasks, workers
from scaleqbench.methods.fourier.workspace import Workspace, workspace_empty

__all__ = ["SpectralMix"]


def _row_chunks(kmax: int, per_row: int, budget: int) -> list[tuple[int, int]]:
    """Row pairs ``f = 1 .. kmax`` in runs ``[f0, f1)`` of about ``budget`` elements."""
    return [(sl.start + 1, sl.stop + 1) for sl in chunk_slices(kmax, per_row, budget)]


def _weights(w: torch.Tensor, pw: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Re W + P, Im W)`` of a block of multiplier rows, contiguous, batched over frequency."""
    wr = torch.view_as_real(w)
    ci, co = w.shape[-2:]
    re = (wr[..., 0] + pw) if pw is not None else wr[..., 0].contiguous()
    return re.reshape(-1, ci, co), wr[..., 1].contiguous().view(-1, ci, co)


def _stack_row0(spec: torch.Tensor, width: int) -> torch.Tensor:
    """``[u; v]`` of row 0: ``(g, part, B, C)``, ``v = 0`` at ``g = 0``."""
    r = spec[0, :width]
    x = spec.new_empty((width + 1) // 2, 2, *r.shape[1:])
    x[0, 0] = r[0]
    x[1:, 0] = r[1::2]
    x[0, 1] = 0
    x[1:, 1] = r[2::2]
    return x


def _row0_forward(spec, w, pw, out) -> None:
    """Row 0 of :func:`_inner_forward`: ``[Re A_0, Re A_g, -Im A_g]``."""
    width = w.shape[0]
    nk, bsz, co = (width + 1) // 2, spec.shape[2], w.shape[-1]
    x0 = _stack_row0(spec, width).view(nk, 2 * bsz, -1)
    wr, wi = _weights(w[0], pw)
    yr, yi = torch.bmm(x0, wr).view(nk, 2, bsz, co), torch.bmm(x0, wi).view(nk, 2, bsz, co)
    re_a, im_a = yr[:, 0] + yi[:, 1], yi[:, 0] - yr[:, 1]
    out[0, 0] = re_a[0]
    out[0, 1:width:2] = re_a[1:]
    torch.neg(im_a[1:], out=out[0, 2:width:2])


def _inner_forward(spec, w, pw, out, budget: int) -> None:
    """``out[:L, :L]`` (``L = 2 kmax + 1``): the mixing with ``W (+ P)``, row pair by row pair."""
    width = w.shape[0]
    kmax, nk = (width - 1) // 2, (width + 1) // 2
    bsz, co = spec.shape[2], w.shape[-1]
    chunks = _row_chunks(kmax, 4 * nk * bsz * max(spec.shape[3], co), budget)
    # row 0 and each run of row pairs write their own rows of out: one task each
    # (methods.fourier.parallel), row 0 among them so that no worker waits for it
    run_tasks(lambda t: pairs_forward(spec, w, pw, out, *chunks[t - 1]) if t else
              _row0_forward(spec, w, pw, out), len(chunks) + 1, workers(spec.device))


def _input_grad(gyr, gyi, rows, pw) -> torch.Tensor:
    """Gradient at the stacked input of ``yr = x Wr, yi = x Wi``: ``gyr Wr^T + gyi Wi^T``."""
    wr, wi = _weights(rows, pw)
    return torch.baddbmm(torch.bmm(gyr, wr.transpose(1, 2)), gyi, wi.transpose(1, 2))


def _row0_backward(spec, w, pw, g_out, g_spec, g_wr, g_pw) -> None:
    """Row 0 of :func:`_inner_backward`: its output is ``[Re A_0, Re A_g, -Im A_g]`` with
    ``Re A = u Wr + v Wi``, ``Im A = u Wi - v Wr``."""
    width = w.shape[0]
    nk = (width + 1) // 2
    bsz, ci, co = spec.shape[2], spec.shape[3], w.shape[-1]
    g = g_out[0, :width]
    g_re = torch.cat([g[0:1], g[1::2]])
    g_im = torch.cat([torch.zeros_like(g[0:1]), -g[2::2]])
    gyr = torch.stack([g_re, -g_im], 1).view(nk, 2 * bsz, co)
    gyi = torch.stack([g_im, g_re], 1).view(nk, 2 * bsz, co)
    _mix_backward(_stack_row0(spec, width).view(nk, 2 * bsz, ci), w[0], pw, gyr, gyi,
                  g_wr[0] if g_wr is not None else None, g_pw)
    if g_spec is not None:
        gx = _input_grad(gyr, gyi, w[0], pw).view(nk, 2, bsz, ci)
        g_spec[0, 0] = gx[0, 0]
        g_spec[0, 1:width:2] = gx[1:, 0]
        g_spec[0, 2:width:2] = gx[1:, 1]


def _inner_backward(spec, w, pw, g_out, g_spec, g_w, g_pw, budget: int) -> None:
    """The transpose of :func:`_inner_forward`: ``g_spec[:L, :L]``, ``g_w`` and ``g_pw +=``."""
    width = w.shape[0]
    kmax, nk = (width - 1) // 2, (width + 1) // 2
    bsz, ci, co = spec.shape[2], spec.shape[3], w.shape[-1]
    g_wr = torch.view_as_real(g_w) if g_w is not None else None
    chunks = _row_chunks(kmax, 4 * nk * bsz * max(ci, co), budget)
    # each task (row 0, then the runs of row pairs) writes its own rows of g_spec and g_w;
    # its share of g_pw is summed after
    parts = [torch.zeros_like(g_pw) if g_pw is not None else None for _ in range(len(chunks) + 1)]

    def task(t: int) -> None:
        if t == 0:
            _row0_backward(spec, w, pw, g_out, g_spec, g_wr, parts[0])
        else:
            pairs_backward(spec, w, pw, g_out, g_spec, g_wr, parts[t], *chunks[t - 1])

    run_tasks(task, len(chunks) + 1, workers(spec.device))
    for part in parts:
        if part is not None:
            g_pw += part


def _mix_backward(x, rows, pw, gyr, gyi, g_wr, g_pw) -> None:
    """Weight gradients of ``yr = x Wr, yi = x Wi``: ``g_wr[..., 0] = x^T gyr``, ``[..., 1] =
    x^T gyi``, and ``g_pw += sum x^T gyr`` where ``P`` was folded into ``Wr``."""
    if g_wr is None and g_pw is None:
        return
    ci, co = rows.shape[-2:]
    xt = x.transpose(1, 2)
    d_re = torch.bmm(xt, gyr)
    if g_wr is not None:
        g_wr[..., 0] = d_re.view(*rows.shape)
        g_wr[..., 1] = torch.bmm(xt, gyi).view(*rows.shape)
    if g_pw is not None:
        g_pw += d_re.view(-1, ci, co).sum(0)


def _outer(spec, pw, out, width: int, transpose: bool = False) -> None:
    """``out = spec @ P`` (``transpose``: ``@ P^T``) outside the leading ``width x width`` block,
    ``0`` there without ``P``."""
    k = spec.shape[0]
    if width >= k:
        return
    if pw is None:
        out[width:].zero_()
        out[:width, width:].zero_()
        return
    m = pw.T if transpose else pw
    ci, co = m.shape
    torch.mm(spec[width:].reshape(-1, ci), m, out=out[width:].view(-1, co))
    if spec.device.type != "cpu":  # one product, not one small kernel per row
        out[:width, width:] = torch.matmul(spec[:width, width:], m)
        return
    for r in range(width):  # row by row on the CPU: no copy of the strided block
        torch.mm(spec[r, width:].reshape(-1, ci), m, out=out[r, width:].view(-1, co))


def _outer_weight_grad(spec, g_out, g_pw, width: int) -> None:
    k, ci, co = spec.shape[0], spec.shape[3], g_out.shape[3]
    if width >= k:
        return
    g_pw.addmm_(spec[width:].reshape(-1, ci).T, g_out[width:].reshape(-1, co))
    if spec.device.type != "cpu":  # as in _outer
        g_pw.addmm_(spec[:width, width:].reshape(-1, ci).T, g_out[:width, width:].reshape(-1, co))
        return
    for r in range(width):
        g_pw.addmm_(spec[r, width:].reshape(-1, ci).T, g_out[r, width:].reshape(-1, co))


class SpectralMix(torch.autograd.Function):
    """``(spec, W, P, bias) -> out``, real spectra ``(K, K, B, C_in) -> (K, K, B, C_out)``.

    ``W`` (complex, ``(2 kmax + 1, kmax + 1, C_in, C_out)``, rows in the spectrum's row
    order) mixes the band ``|k| <= kmax``; ``P`` (real ``(C_in, C_out)``) is added to it
    there and alone mixes the rest; ``bias`` goes to the constant coefficient. ``W`` or
    ``P`` may be ``None``, not both. ``kernel``: the band's mixing by the CPU kernel
    (:mod:`methods.fourier.mix_native`, where :func:`~methods.fourier.mix_native.usable`),
    else by tensor operations; the same function.
    """

    @staticmethod
    def forward(ctx, spec, w, pw, bias, ws: Workspace | None, budget: int = CHUNK_ELEMENTS,
                kernel: bool = False):
        spec = spec.contiguous()
        k, _, bsz, _ = spec.shape
        co = (w if w is not None else pw).shape[-1]
        width = w.shape[0] if w is not None else 0
        out = workspace_empty(ws, (k, k, bsz, co), spec)
        _outer(spec, pw, out, width)
        if w is not None and kernel:
            mix_native.inner_forward(spec, w, pw, out)
        elif w is not None:
            _inner_forward(spec, w, pw, out, budget)
        if bias is not None:
            out[0, 0] += bias
        ctx.save_for_backward(spec, w, pw)
        ctx.ws, ctx.budget, ctx.has_bias, ctx.kernel = ws, budget, bias is not None, kernel
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):
        spec, w, pw = ctx.saved_tensors
        g_out = g_out.contiguous()
        need_spec, need_w, need_pw, need_bias = ctx.needs_input_grad[:4]
        width = w.shape[0] if w is not None else 0
        g_spec = workspace_empty(ctx.ws, spec.shape, spec) if need_spec else None
        g_w = torch.empty_like(w) if need_w else None
        g_pw = torch.zeros_like(pw) if need_pw else None
        if g_spec is not None:
            _outer(g_out, pw, g_spec, width, transpose=True)
        if g_pw is not None:
            _outer_weight_grad(spec, g_out, g_pw, width)
        if w is not None and ctx.kernel:
            mix_native.inner_backward(spec, w, pw, g_out, g_spec, g_w, g_pw)
        elif w is not None:
            _inner_backward(spec, w, pw, g_out, g_spec, g_w, g_pw, ctx.budget)
        g_bias = g_out[0, 0].sum(0) if need_bias and ctx.has_bias else None
        return g_spec, g_w, g_pw, g_bias, None, None, None

"""The Fourier layers' workspace (blocks lent again only once nothing uses them, bypassed when
disabled, small or not on the CPU, freed when dropped) and the Fourier modules importing
without cycles.
"""

from __future__ import annotations

import ast
import gc
import weakref
from pathlib import Path

import torch

from scaleqbench.methods.fourier.workspace import Workspace


# --- workspace ------------------------------------------------------------------------------
def test_workspace_lends_a_block_again_only_once_nothing_uses_it():
    ws = Workspace(min_bytes=0)
    a = ws.empty((256, 1024), torch.float32)
    ptr = a.data_ptr()
    view = a[3:7]
    x = torch.ones(4, 1024, requires_grad=True)
    y = (x * view).sum()  # autograd saves the view for backward
    del a, view
    b = ws.empty((256, 1024), torch.float32)
    assert b.data_ptr() != ptr and ws.blocks_created == 2  # still saved: a new block
    del y
    c = ws.empty((200, 1024), torch.float32)
    assert c.data_ptr() == ptr and ws.blocks_created == 2  # the graph died: reused
    assert c.shape == (200, 1024) and ws.lent_bytes > 0
    del b, c
    assert ws.lent_bytes == 0 and ws.idle_bytes > 0
    ws.release()
    assert ws.idle_bytes == 0


def test_workspace_is_bypassed_when_disabled_small_or_not_on_the_cpu():
    ws = Workspace(enabled=False, min_bytes=0)
    ws.empty((1 << 20,), torch.float32)
    assert ws.blocks_created == 0
    ws = Workspace(min_bytes=1 << 20)
    ws.empty((1000,), torch.float32)
    assert ws.blocks_created == 0
    ws.empty((1 << 20,), torch.float64)
    assert ws.blocks_created == 1
    assert ws.empty((1 << 20,), torch.float32, "meta").device.type == "meta"  # not the CPU
    assert ws.blocks_created == 1


def test_a_dropped_workspace_frees_its_blocks_while_lent_tensors_stay_valid():
    ws = Workspace(min_bytes=0)
    t = ws.empty((1024, 1024), torch.float32).fill_(3.0)
    ws.empty((1024, 1024), torch.float32)  # returned at once: idle
    ref = weakref.ref(ws)
    del ws
    gc.collect()
    assert ref() is None  # no reference cycle keeps the pool (and its idle blocks) alive
    assert t.sum().item() == 3.0 * 1024 * 1024


def test_fourier_modules_import_without_cycles():
    """No module of methods.fourier imports (at any level) one that imports it back."""
    root = Path(__file__).resolve().parents[1] / "methods" / "fourier"
    graph = {}
    for path in root.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        graph[path.stem] = {n.rsplit(".", 1)[-1] for n in names
                            if n.startswith("scaleqbench.methods.fourier.")}

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n}))
                   for n in graph.get(a, ()))

    assert "basis" in graph and "nonlinearity" in graph
    assert [m for m in graph if reaches(m, m, {m})] == []

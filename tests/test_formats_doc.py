"""docs/formats.md and the README's loading snippets, executed on every library certificate's export.

Each python block whose first line is ``# FORMAT ...`` runs with ``X`` (N, n_inputs): the
certificate's witness, every corner of its domain and 10 000 seeded random points (1 000 by
default for certificates with more than 100 tokens, 10 000 in the slow suite), its file
names replaced by a real export, and its ``y`` must be within 1e-9 of the float64 reference
forward pass and within eps + 1e-9 of the target.  A snippet that computes another function
fails here.  The README's snippets run at 500 points per certificate.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from export_nets import LIBRARY, ROOT, check_outputs, library_case, library_params, run_snippet, snippets

DOC = ROOT / "docs" / "formats.md"
README = ROOT / "README.md"
FILES = {"model.safetensors": "safetensors", "model.npz": "npz", "model.pt": "torch", "model.onnx": "onnx",
         "model.msgpack": "flax"}
DOC_BLOCKS = [b for b in snippets(DOC) if b[1] != "numpy"]
README_BLOCKS = snippets(README)
GAPS: dict = {}


def _forward_namespace() -> dict:
    (code,) = [c for _, fmt, c in snippets(DOC) if fmt == "numpy"]
    ns: dict = {}
    exec(compile(code, "<formats.md forward>", "exec"), ns)  # noqa: S102 (our own documentation)
    return ns


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("formats")


@pytest.fixture(scope="module", params=library_params())
def case(request):
    path, n = request.param
    return library_case(path, n)


def _run(block, case, folder):
    label, fmt, code = block
    pytest.importorskip({"torch": "torch", "onnx": "onnxruntime", "flax": "flax"}.get(fmt, "numpy"))
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    files = {name: case.export(f, folder) for name, f in FILES.items() if f'"{name}"' in code}
    assert files, f"{label}: the snippet loads no model file"
    y, _ = run_snippet(code, files, case.X, _forward_namespace())
    return y


# ---------------------------------------------------------------- the reference itself

def test_the_forward_pass_is_short_plain_numpy_and_is_numpy_model_forward():
    from certificates.export import numpy_model
    (code,) = [c for _, fmt, c in snippets(DOC) if fmt == "numpy"]
    assert len(code.strip().splitlines()) <= 25
    imports = {m for line in code.splitlines() for m in re.findall(r"^\s*(?:import|from) (\w+)", line)}
    assert imports == {"numpy"}
    assert inspect.getsource(numpy_model.forward).strip() in code


def test_the_reference_has_a_block_for_every_loader():
    labels = [label for label, _, _ in DOC_BLOCKS]
    assert {fmt for _, fmt, _ in DOC_BLOCKS} == set(FILES.values())
    for must in ("nn.MultiheadAttention", "scaled_dot_product_attention", "module file"):
        assert any(must in label for label in labels), must
    text = DOC.read_text()
    for needed in ("attn_mask", "(N·H, L, S)", "repeat(N, 1, 1)", "Heads are summed", "A readout pair (r, c)",
                   "metadata_props", "__metadata__", "weights_only=True", "allow_pickle=False", "jax_enable_x64"):
        assert needed in text, needed
    assert len(LIBRARY) >= 11


# ---------------------------------------------------------------- every block on every library export

@pytest.mark.parametrize("block", DOC_BLOCKS, ids=[re.sub(r"\W+", "-", b[0]).strip("-")[:48] for b in DOC_BLOCKS])
def test_formats_doc_snippet_computes_the_certified_network(case, block, folder):
    y = _run(block, case, folder)
    GAPS[(case.name, block[0])] = check_outputs(y, case, f"docs/formats.md [{block[0]}]")
    if block[1] == "onnx":  # and with every graph optimisation off
        label, fmt, code = block
        assert "ORT_ENABLE_ALL" in code
        y, _ = run_snippet(code.replace("ORT_ENABLE_ALL", "ORT_DISABLE_ALL"),
                           {"model.onnx": case.export("onnx", folder)}, case.X)
        check_outputs(y, case, f"docs/formats.md [{label}, ORT_DISABLE_ALL]")


# ---------------------------------------------------------------- the README's loading snippets

def test_readme_has_the_five_loading_snippets_and_the_table():
    assert {fmt for _, fmt, _ in README_BLOCKS} == set(FILES.values())
    text = README.read_text()
    assert "docs/formats.md" in text
    import constructions
    table = text[text.index("| construction | exports"):]
    table = table[:table.index("\n\n")]
    for name in constructions.REGISTRY:
        assert f"`{name}`" in table, name


@pytest.fixture(scope="module", params=library_params(heavy_slow=False))
def small_case(request):
    return library_case(request.param[0], 500)


@pytest.mark.parametrize("block", README_BLOCKS, ids=[b[1] for b in README_BLOCKS])
def test_readme_snippet_computes_the_certified_network(small_case, block, folder):
    y = _run(block, small_case, folder)
    check_outputs(y, small_case, f"README [{block[0]}]")


def test_a_wrong_snippet_fails(folder):
    """The harness catches a snippet that computes another function: the README's old torch lines."""
    case = library_case(ROOT / "certificates" / "library" / "ramp-multihead-H4-n9.json", 500)
    (label, fmt, code), = [b for b in DOC_BLOCKS if "plain nn.MultiheadAttention" in b[0]]
    wrong = code.replace('mask = None if L["attn_mask"] is None else', 'mask = None if True else')
    assert wrong != code
    y, _ = run_snippet(wrong, {"model.pt": case.export("torch", folder)}, case.X)
    with pytest.raises(AssertionError, match="differs from the float64 reference"):
        check_outputs(y, case, "MHA without its attn_mask")
    assert np.abs(y.numpy() - case.target).max() > 0.5  # the 0.98 against eps = 0.02

"""Read an ONNX graph of an attention network into the network model.

The file's bytes are parsed as a protobuf (``onnx.load_model_from_string``): nothing is
executed.  Tensors stored outside the file are read only from regular files inside the model's
own folder.  Every initializer must be finite.  Graph inputs: every entry is one input x_i,
in graph order and row-major order; a dynamic axis 0 is the batch and is fixed to 1, any other
dynamic axis must be fixed with ``--dim NAME=VALUE``.  Graph outputs: every entry is one
network output, row-major.  Then the nodes run in order on symbolic tensors (onnx_ops.py).
"""
from __future__ import annotations

import os
import stat

import numpy as np

from .base import MAX_ELEMENTS, ImportFailure, check_finite_array, exact
from .engine import Engine
from .onnx_ops import OPS
from .symbolic import Lin, Logits, input_tensor

_FLOAT_TYPES = {1, 10, 11, 16}   # FLOAT, FLOAT16, DOUBLE, BFLOAT16


class Context:
    """What the op classes see: the engine, the opset, and exact views of constants."""

    def __init__(self, engine: Engine, opset: int):
        self.engine, self.opset = engine, opset

    def array(self, a, name):
        return a   # NaN or inf is refused where a constant meets the input (exact())

    def exact(self, a, node):
        return exact(np.asarray(a), f"a constant input of node {node.name!r} ({node.op_type})")

    def need_const(self, v, node, what):
        if not isinstance(v, np.ndarray):
            raise ImportFailure(f"its {what} depends on the input", node.op_type, node.name)
        return v

    def softmax_axis(self, node, nd):
        from .onnx_ops import attr
        ax = attr(node, "axis", -1 if self.opset >= 13 else 1)
        ax = ax + nd if ax < 0 else ax
        if self.opset < 13 and ax != nd - 1:
            raise ImportFailure(f"Softmax (opset {self.opset}) over the flattened axes {ax}..{nd - 1}, not one axis",
                                node.op_type, node.name)
        return ax

    def maybe_cut_for_reshape(self, x: Lin, target, node):
        """A reshape that changes the last axis of a layer's output keeps that output whole as a token space."""
        if (not x.space.affine and target[-1:] != x.shape[-1:] and not x.is_selection()
                and self.engine.matrix_form(x) is not None):
            return self.engine.cut(x, node.op_type, node.name)
        return x

    def logit_bias(self, a: Logits, c, node):
        return self.engine.logit_bias(a, c, node.op_type, node.name)

    def logit_scale(self, a: Logits, c, node):
        return self.engine.logit_scale(a, c, node.op_type, node.name)


def _external(tensor, folder):
    """Load a tensor's external data, from a regular file inside ``folder`` only."""
    from onnx import TensorProto
    info = {e.key: e.value for e in tensor.external_data}
    loc = info.get("location", "")
    if folder is None:
        raise ImportFailure(f"initializer {tensor.name!r} is stored in an external file, and the model was not read "
                            "from a folder")
    if not loc or os.path.isabs(loc) or ".." in loc.replace("\\", "/").split("/"):
        raise ImportFailure(f"initializer {tensor.name!r}: external data location {loc!r} is not a file name inside "
                            "the model's folder")
    path = os.path.realpath(os.path.join(folder, loc))
    if os.path.dirname(path) != os.path.realpath(folder) and not path.startswith(os.path.realpath(folder) + os.sep):
        raise ImportFailure(f"initializer {tensor.name!r}: external data {loc!r} lies outside the model's folder")
    offset, length = int(info.get("offset", 0) or 0), info.get("length")
    fd = None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImportFailure(f"initializer {tensor.name!r}: external data {loc!r} is not a regular file")
        n = st.st_size - offset if length is None else int(length)
        if offset < 0 or n < 0 or offset + n > st.st_size:
            raise ImportFailure(f"initializer {tensor.name!r}: external data {loc!r} is shorter than declared")
        os.lseek(fd, offset, os.SEEK_SET)
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise ImportFailure(f"initializer {tensor.name!r}: cannot read external data {loc!r}: {e.strerror}") from None
    finally:
        if fd is not None:
            os.close(fd)
    tensor.raw_data = data
    tensor.data_location = TensorProto.DEFAULT
    del tensor.external_data[:]


def _input_shape(vi, dims, notes):
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise ImportFailure(f"graph input {vi.name!r} is not a tensor")
    if t.elem_type not in _FLOAT_TYPES:
        raise ImportFailure(f"graph input {vi.name!r} has an integer or non-float type (token ids?): only real-valued "
                            "inputs can be certified")
    if not t.HasField("shape"):
        raise ImportFailure(f"graph input {vi.name!r} has no shape; export with a fixed example input")
    shape = []
    for ax, d in enumerate(t.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param in dims:
            shape.append(int(dims[d.dim_param]))
        elif ax == 0:
            shape.append(1)
            notes.append(f"input {vi.name!r}: the dynamic batch axis {d.dim_param or 0!r} is fixed to 1")
        else:
            name = d.dim_param or f"axis {ax}"
            raise ImportFailure(f"graph input {vi.name!r} has a dynamic dimension {name!r} at axis {ax}; the importer "
                                f"fixes only the batch axis (0) to 1: give its size with --dim {d.dim_param or 'NAME'}=N "
                                "or export with a fixed shape")
    return tuple(shape)


def read_onnx(data: bytes, path=None, dims=None):
    """(Network, notes, source info) of an ONNX model's bytes."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ImportFailure(f"reading ONNX needs {e.name}: pip install 'attncert[onnx]'") from None
    dims = dict(dims or {})
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and others: a damaged file
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ImportFailure(f"not a readable ONNX model ({msg})") from None
    g = model.graph
    if not g.node and not g.output:
        raise ImportFailure("not a readable ONNX model (no graph)")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ImportFailure("the model imports no standard ONNX opset")
    if len(g.sparse_initializer):
        raise ImportFailure("sparse initializers are not read")
    folder = os.path.dirname(os.path.abspath(os.fspath(path))) if path is not None else None
    env, notes, total = {}, [], 0
    for t in g.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            _external(t, folder)
        try:
            arr = numpy_helper.to_array(t)
        except Exception as e:
            raise ImportFailure(f"initializer {t.name!r} cannot be read ({str(e).splitlines()[0][:80]})") from None
        total += arr.size
        if total > MAX_ELEMENTS:
            raise ImportFailure(f"the model holds more than {MAX_ELEMENTS} weights (the import limit)")
        check_finite_array(arr, f"weight {t.name!r}")
        env[t.name] = arr
    real = [vi for vi in g.input if vi.name not in env]
    if not real:
        raise ImportFailure("the graph has no input")
    shapes = [_input_shape(vi, dims, notes) for vi in real]
    n = int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes))
    if n < 1:
        raise ImportFailure("the graph's inputs have no entries")
    engine = Engine(n)
    start = 0
    for vi, shp in zip(real, shapes):
        env[vi.name] = input_tensor(engine.inp, shp, start)
        start += int(np.prod(shp, dtype=np.int64))
    ctx = Context(engine, opset)
    for node in g.node:
        name = node.name or (node.output[0] if node.output else "")
        if node.domain not in ("", "ai.onnx"):
            raise ImportFailure(f"an operator of domain {node.domain!r} is not a standard ONNX operator",
                                node.op_type, name)
        impl = OPS.get(node.op_type)
        if impl is None:
            raise ImportFailure("not an operation of the network model (affine maps, softmax attention, post maps, "
                                "a final softmax and a linear readout)", node.op_type, name)
        args = []
        for i in node.input:
            if i == "":
                args.append(None)
            elif i not in env:
                raise ImportFailure(f"uses the value {i!r}, which no earlier node computes", node.op_type, name)
            else:
                args.append(env[i])
        try:
            outs = impl.run(ctx, _Named(node, name), args)
        except ImportFailure as e:
            if e.op is None:
                raise ImportFailure(e.why, node.op_type, name) from None
            raise
        except (ValueError, IndexError, TypeError) as e:
            raise ImportFailure(f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}",
                                node.op_type, name) from None
        for oname, v in zip(node.output, outs):
            if oname:
                env[oname] = v if isinstance(v, (Lin, Logits)) else np.asarray(v)
    outputs = []
    for vo in g.output:
        if vo.name not in env:
            raise ImportFailure(f"graph output {vo.name!r} is never computed")
        outputs.append(env[vo.name])
    from .assemble import assemble
    net = assemble(engine, outputs, notes)
    info = {"format": "onnx", "opset": int(opset), "producer": model.producer_name or "",
            "inputs": [{"name": vi.name, "shape": list(s)} for vi, s in zip(real, shapes)],
            "outputs": [{"name": vo.name, "shape": list(_shape(env[vo.name]))} for vo in g.output]}
    return net, notes, info


def _shape(v):
    return v.shape


class _Named:
    """A node with a name (the first output's when the node has none)."""

    def __init__(self, node, name):
        self._node, self.name = node, name

    def __getattr__(self, k):
        return getattr(self._node, k)

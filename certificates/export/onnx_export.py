"""ONNX export: one MatMul/Softmax graph (opset 17) with beta folded into DOUBLE initializers.

Input ``x`` (N, n_inputs) double, output ``y`` (N, n_outputs) double.  No attribute carries
a float: only Softmax's axis, Transpose's perm and Gather's axis, all integers.  With
``attention_op=True`` each head is instead an opset-23 ``Attention`` node whose only float
attribute is ``scale=1.0`` (exact in float32), softmax in DOUBLE.  Logit biases, post maps,
a final softmax and a linear readout are plain Add/MatMul/Softmax nodes.  The claim rides in
``metadata_props["attncert"]``.  Initializer names: docs/formats.md.
"""
from __future__ import annotations

import numpy as np

from .certdata import metadata_text, read, write_atomic

OPSET = 17
IR_VERSION = 8
ATTENTION_OPSET, ATTENTION_IR_VERSION = 23, 11


def model(doc, attention_op: bool = False):
    """The ``onnx.ModelProto`` of certificate ``doc``, checked with ``full_check``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    net = read(doc)
    inits, nodes = [], []

    def init(name, arr, dtype=np.float64):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=dtype), name))
        return name

    def node(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    n_in, T, d = net.linear.shape
    lin = init("embed.linear", net.linear.reshape(n_in, T * d))
    flat = node("MatMul", ["x", lin], "embed.flat")
    shaped = node("Reshape", [flat, init("embed.shape", [-1, T, d], np.int64)], "embed.shaped")
    Z = node("Add", [shaped, init("embed.const", net.const)], "Z0")
    for li, layer in enumerate(net.layers):
        p = f"layer{li}"
        Zq = node("Gather", [Z, init(p + ".query_rows", layer.query_rows, np.int64)], p + ".Zq", axis=1)
        Zk = node("Gather", [Z, init(p + ".key_rows", layer.key_rows, np.int64)], p + ".Zk", axis=1)
        outs = []
        for hi, h in enumerate(layer.heads):
            ph = f"{p}.head{hi}"
            Q = node("MatMul", [Zq, init(ph + ".wq_beta", h.wq)], ph + ".Q")
            K = node("MatMul", [Zk, init(ph + ".wk", h.wk)], ph + ".K")
            if attention_op:  # (N, 1 head, length, dim) in, softmax(Q K^T * 1.0 + bias) V out
                axis = init(ph + ".axis1", [1], np.int64)
                ins = [node("Unsqueeze", [t, axis], f"{t}4") for t in (Q, K, node("MatMul", [Zk, init(
                    ph + ".wv", h.wv)], ph + ".V"))]
                if h.bias is not None:
                    ins.append(init(ph + ".bias", h.bias))
                att = node("Attention", ins, ph + ".att", scale=1.0, softmax_precision=TensorProto.DOUBLE)
                AV = node("Squeeze", [att, axis], ph + ".AV")
                outs.append(node("MatMul", [AV, init(ph + ".wo", h.wo)], ph + ".out"))
                continue
            S = node("MatMul", [Q, node("Transpose", [K], ph + ".Kt", perm=[0, 2, 1])], ph + ".S")
            if h.bias is not None:
                S = node("Add", [S, init(ph + ".bias", h.bias)], ph + ".S_bias")
            A = node("Softmax", [S], ph + ".A", axis=-1)
            V = node("MatMul", [Zk, init(ph + ".wv", h.wv)], ph + ".V")
            outs.append(node("MatMul", [node("MatMul", [A, V], ph + ".AV"), init(ph + ".wo", h.wo)], ph + ".out"))
        Y, Zn = (f"{p}.Y", f"Z{li + 1}") if layer.post_w is not None else (f"Z{li + 1}", None)
        Z = node("Sum", outs, Y) if len(outs) > 1 else node("Identity", outs, Y)
        if layer.post_w is not None:  # Z = Y W + B
            Z = node("Add", [node("MatMul", [Z, init(p + ".post.W", layer.post_w)], p + ".YW"),
                             init(p + ".post.B", layer.post_b)], Zn)
    if net.final_softmax:
        Z = node("Softmax", [Z], "Z.softmax", axis=-1)
    rows, cols = len(net.layers[-1].query_rows), net.layers[-1].d_out
    Zf = node("Reshape", [Z, init("readout.shape", [-1, rows * cols], np.int64)], "readout.flat")
    idx = init("readout.index", [r * cols + c for r, c in net.readout], np.int64)
    if net.readout_linear is None:
        node("Gather", [Zf, idx], "y", axis=1)
    else:  # y = bias + entries @ W^T
        entries = node("Gather", [Zf, idx], "readout.entries", axis=1)
        lin = net.readout_linear
        node("Add", [node("MatMul", [entries, init("readout.linear.weights_t", lin[:, 1:].T)], "readout.yw"),
                     init("readout.linear.bias", lin[:, 0])], "y")
    graph = helper.make_graph(
        nodes, "attncert_" + (net.name or "network"),
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", net.n_outputs])], inits)
    opset, ir = (ATTENTION_OPSET, ATTENTION_IR_VERSION) if attention_op else (OPSET, IR_VERSION)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir,
                          producer_name="attncert", producer_version="1")
    helper.set_model_props(m, {"attncert": metadata_text(net, "onnx")})
    onnx.checker.check_model(m, full_check=True)
    return m


def to_bytes(doc, attention_op: bool = False) -> bytes:
    return model(doc, attention_op).SerializeToString()


def export(doc, path, attention_op: bool = False) -> dict:
    data = to_bytes(doc, attention_op)
    write_atomic(path, data)
    return {"format": "onnx", "path": str(path), "bytes": len(data)}

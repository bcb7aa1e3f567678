"""ONNX operators, one small class each, in the manner of onnx's reference evaluator.

Each class has ``const`` (every input is a constant: evaluate it with NumPy in the graph's
own float type, as ONNX Runtime would, so a folded constant is the float the model computes)
and ``sym`` (some input depends on x: propagate the symbolic tensor, see symbolic.py and
engine.py).  An operator without ``sym`` accepts constants only; fed an input-dependent
tensor it is refused with its name, the node's name and why.
"""
from __future__ import annotations

import numpy as np

from .base import ImportFailure
from .symbolic import Lin, Logits, add, add_const, lift_const, scale

OPS: dict = {}


def op(*names):
    def deco(cls):
        for n in names:
            OPS[n] = cls()
        return cls
    return deco


def is_sym(v) -> bool:
    return isinstance(v, (Lin, Logits))


class Op:
    """Base: constants are evaluated, symbolic inputs are refused."""

    def const(self, ctx, node, args):
        raise ImportFailure("this operator is not supported even on constants", node.op_type, node.name)

    def sym(self, ctx, node, args):
        raise ImportFailure(_WHY.get(node.op_type, "not an operation of the network model (affine maps, "
                                     "softmax attention, post maps, a final softmax and a linear readout)"),
                            node.op_type, node.name)

    def run(self, ctx, node, args):
        if any(is_sym(a) for a in args):
            return self.sym(ctx, node, args)
        return self.const(ctx, node, args)


_WHY = {
    "Relu": "a ReLU of an input-dependent tensor: the network model has no ReLU (only softmax attention)",
    "LayerNormalization": "layer normalisation divides by an input-dependent norm: not an operation of the "
                          "network model",
    "Gelu": "GELU is not an operation of the network model",
    "Erf": "erf (GELU) is not an operation of the network model",
    "Tanh": "tanh is not an operation of the network model",
    "Sigmoid": "a sigmoid is not an operation of the network model",
    "Exp": "exp outside a softmax is not an operation of the network model",
    "Pow": "a power of an input-dependent tensor is not an operation of the network model",
    "Sqrt": "a square root of an input-dependent tensor is not an operation of the network model",
    "Attention": "the fused Attention operator is not read yet; export with plain MatMul/Softmax nodes",
    "Where": "a Where on an input-dependent tensor (a mask?) is not an operation of the network model",
    "LogSoftmax": "log-softmax is not an operation of the network model",
    "ReduceMax": "a maximum of input-dependent entries is not an operation of the network model",
}


def attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _ints(v):
    return [int(x) for x in np.asarray(v).reshape(-1).tolist()]


def _axis(axis, ndim):
    a = int(axis)
    if not -ndim <= a < max(ndim, 1):
        raise ImportFailure(f"axis {axis} out of range for a tensor of rank {ndim}")
    return a + ndim if a < 0 else a


def _shape_of(v):
    return tuple(v.shape)


def _restructure(v, fn_lin, fn_lead=None, what="reshape"):
    """Apply an indexing function to a constant, a symbolic tensor or (lead axes only) logits."""
    if not isinstance(v, (Lin, Logits)):
        return np.asarray(fn_lin(np.asarray(v)))
    if isinstance(v, Lin):
        return v.restructure(fn_lin)
    if fn_lead is None:
        raise ImportFailure(f"a {what} that moves the query or key axis of attention logits")
    return v.restructure_lead(fn_lead)


# ------------------------------------------------------------------------------------------ structure


@op("Identity", "Dropout")
class Identity(Op):
    def run(self, ctx, node, args):
        if node.op_type == "Dropout" and len(args) > 2 and isinstance(args[2], np.ndarray) and bool(args[2]):
            raise ImportFailure("Dropout in training mode is random", node.op_type, node.name)
        return [args[0]] + ([np.ones(_shape_of(args[0]), dtype=bool)] if len(node.output) > 1 else [])


@op("Constant")
class Constant(Op):
    def run(self, ctx, node, args):
        from onnx import numpy_helper
        for a in node.attribute:
            if a.name == "value":
                return [ctx.array(numpy_helper.to_array(a.t), node.output[0])]
            if a.name == "value_float":
                return [np.array(a.f, dtype=np.float32)]
            if a.name == "value_floats":
                return [np.array(list(a.floats), dtype=np.float32)]
            if a.name == "value_int":
                return [np.array(a.i, dtype=np.int64)]
            if a.name == "value_ints":
                return [np.array(list(a.ints), dtype=np.int64)]
        raise ImportFailure("a Constant without a numeric value", node.op_type, node.name)


@op("Shape")
class Shape(Op):
    def run(self, ctx, node, args):
        shp = np.array(_shape_of(args[0]), dtype=np.int64)
        start, end = attr(node, "start", 0), attr(node, "end", None)
        return [shp[start:end]]


@op("Size")
class Size(Op):
    def run(self, ctx, node, args):
        return [np.array(int(np.prod(_shape_of(args[0]), dtype=np.int64)), dtype=np.int64)]


@op("Cast", "CastLike")
class Cast(Op):
    def const(self, ctx, node, args):
        from onnx import helper
        if node.op_type == "CastLike":
            return [args[0].astype(args[1].dtype)]
        return [args[0].astype(helper.tensor_dtype_to_np_dtype(attr(node, "to")))]

    def sym(self, ctx, node, args):
        from onnx import helper
        dt = args[1].dtype if node.op_type == "CastLike" else helper.tensor_dtype_to_np_dtype(attr(node, "to"))
        if np.dtype(dt).kind != "f":
            raise ImportFailure(f"a cast of an input-dependent tensor to {np.dtype(dt)}", node.op_type, node.name)
        return [args[0]]   # the network model computes in exact real arithmetic


def _reshape_target(shape_in, spec, allowzero):
    spec = _ints(spec)
    out = []
    for i, s in enumerate(spec):
        if s == 0 and not allowzero:
            out.append(shape_in[i])
        else:
            out.append(s)
    if out.count(-1) > 1:
        raise ImportFailure("Reshape with two -1 dimensions")
    total = int(np.prod(shape_in, dtype=np.int64))
    if -1 in out:
        rest = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        out[out.index(-1)] = total // rest if rest else 0
    if int(np.prod(out, dtype=np.int64)) != total:
        raise ImportFailure(f"Reshape of {tuple(shape_in)} to {tuple(spec)}: sizes differ")
    return tuple(out)


@op("Reshape")
class Reshape(Op):
    def run(self, ctx, node, args):
        x = args[0]
        if len(args) > 1:
            spec = ctx.need_const(args[1], node, "shape")
        else:
            spec = np.array(attr(node, "shape"), dtype=np.int64)
        target = _reshape_target(_shape_of(x), spec, attr(node, "allowzero", 0))
        if isinstance(x, Logits):
            if target[-2:] != x.shape[-2:]:
                raise ImportFailure("a Reshape that changes the query or key axis of attention logits",
                                    node.op_type, node.name)
            return [x.restructure_lead(lambda h: h.reshape(target[:-2]))]
        if isinstance(x, Lin):
            x = ctx.maybe_cut_for_reshape(x, target, node)
        return [_restructure(x, lambda a: a.reshape(target))]


@op("Flatten")
class Flatten(Op):
    def run(self, ctx, node, args):
        x = args[0]
        shp = _shape_of(x)
        ax = _axis(attr(node, "axis", 1), len(shp)) if shp else 0
        target = (int(np.prod(shp[:ax], dtype=np.int64)), int(np.prod(shp[ax:], dtype=np.int64)))
        if isinstance(x, Logits):
            raise ImportFailure("Flatten of attention logits", node.op_type, node.name)
        if isinstance(x, Lin):
            x = ctx.maybe_cut_for_reshape(x, target, node)
        return [_restructure(x, lambda a: a.reshape(target))]


def _axes_arg(ctx, node, args, i=1):
    if len(args) > i and args[i] is not None:
        return _ints(ctx.need_const(args[i], node, "axes"))
    a = attr(node, "axes", None)
    return None if a is None else [int(v) for v in a]


@op("Squeeze")
class Squeeze(Op):
    def run(self, ctx, node, args):
        x = args[0]
        shp = _shape_of(x)
        axes = _axes_arg(ctx, node, args)
        axes = [i for i, s in enumerate(shp) if s == 1] if axes is None else [_axis(a, len(shp)) for a in axes]
        if isinstance(x, Logits) and any(a >= len(shp) - 2 for a in axes):
            raise ImportFailure("Squeeze of the query or key axis of attention logits", node.op_type, node.name)
        ax = tuple(axes)
        return [_restructure(x, lambda a: np.squeeze(a, axis=ax), lambda h: np.squeeze(h, axis=ax))]


@op("Unsqueeze")
class Unsqueeze(Op):
    def run(self, ctx, node, args):
        x = args[0]
        shp = _shape_of(x)
        axes = _axes_arg(ctx, node, args)
        n = len(shp) + len(axes)
        axes = sorted(_axis(a, n) for a in axes)
        if isinstance(x, Logits):
            if any(a >= n - 2 for a in axes):
                raise ImportFailure("Unsqueeze after the query axis of attention logits", node.op_type, node.name)

        def fn(a):
            for ax in axes:
                a = np.expand_dims(a, ax)
            return a
        return [_restructure(x, fn, fn)]


@op("Transpose")
class Transpose(Op):
    def run(self, ctx, node, args):
        x = args[0]
        nd = len(_shape_of(x))
        perm = attr(node, "perm", None)
        perm = list(range(nd))[::-1] if perm is None else [int(p) for p in perm]
        if isinstance(x, Logits):
            if perm[-2:] != [nd - 2, nd - 1]:
                raise ImportFailure("a Transpose that swaps the query and key axes of attention logits",
                                    node.op_type, node.name)
            lead = perm[:-2]
            return [x.restructure_lead(lambda h: np.transpose(h, lead))]
        return [_restructure(x, lambda a: np.transpose(a, perm))]


@op("Expand")
class Expand(Op):
    def run(self, ctx, node, args):
        x = args[0]
        shape = tuple(_ints(ctx.need_const(args[1], node, "shape")))
        target = np.broadcast_shapes(_shape_of(x), shape)
        if isinstance(x, Logits):
            if target[-2:] != x.shape[-2:]:
                raise ImportFailure("an Expand of the query or key axis of attention logits", node.op_type, node.name)
            return [x.restructure_lead(lambda h: np.broadcast_to(h, target[:-2]).copy())]
        return [_restructure(x, lambda a: np.broadcast_to(a, target).copy())]


@op("Tile")
class Tile(Op):
    def run(self, ctx, node, args):
        reps = tuple(_ints(ctx.need_const(args[1], node, "repeats")))
        if isinstance(args[0], Logits):
            raise ImportFailure("Tile of attention logits", node.op_type, node.name)
        return [_restructure(args[0], lambda a: np.tile(a, reps))]


@op("Concat")
class Concat(Op):
    def const(self, ctx, node, args):
        return [np.concatenate([np.asarray(a) for a in args], axis=attr(node, "axis"))]

    def sym(self, ctx, node, args):
        nd = len(_shape_of(args[0]))
        ax = _axis(attr(node, "axis"), nd)
        if any(isinstance(a, Logits) for a in args):
            if not all(isinstance(a, Logits) for a in args) or ax >= nd - 2:
                raise ImportFailure("a Concat of attention logits along the query or key axis", node.op_type, node.name)
            L = {(a.L, a.S, a.softmaxed) for a in args}
            if len(L) != 1:
                raise ImportFailure("a Concat of attention logits of different shapes", node.op_type, node.name)
            return [Logits(np.concatenate([a.heads for a in args], axis=ax), args[0].L, args[0].S, args[0].softmaxed)]
        return [ctx.engine.concat([a if isinstance(a, Lin) else ctx.exact(a, node) for a in args], ax)]


@op("Slice")
class Slice(Op):
    def run(self, ctx, node, args):
        x = args[0]
        shp = _shape_of(x)
        if len(args) > 1:
            starts = _ints(ctx.need_const(args[1], node, "starts"))
            ends = _ints(ctx.need_const(args[2], node, "ends"))
            axes = _ints(ctx.need_const(args[3], node, "axes")) if len(args) > 3 and args[3] is not None \
                else list(range(len(starts)))
            steps = _ints(ctx.need_const(args[4], node, "steps")) if len(args) > 4 and args[4] is not None \
                else [1] * len(starts)
        else:
            starts, ends = list(attr(node, "starts")), list(attr(node, "ends"))
            axes = list(attr(node, "axes", list(range(len(starts)))))
            steps = [1] * len(starts)
        idx = [slice(None)] * len(shp)
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            ax = _axis(ax, len(shp))
            if sp == 0:
                raise ImportFailure("Slice with step 0", node.op_type, node.name)
            big = 1 << 62
            en = None if (sp > 0 and en >= big) or (sp < 0 and en <= -big) else en
            idx[ax] = slice(st, en, sp)
        idx = tuple(idx)
        if isinstance(x, Logits):
            if any(s != slice(None) for s in idx[-2:]):
                raise ImportFailure("a Slice of the query or key axis of attention logits (a mask?)",
                                    node.op_type, node.name)
            return [x.restructure_lead(lambda h: h[idx[:-2]].copy())]
        return [_restructure(x, lambda a: a[idx])]


@op("Gather")
class Gather(Op):
    def run(self, ctx, node, args):
        x, ind = args[0], ctx.need_const(args[1], node, "indices")
        shp = _shape_of(x)
        ax = _axis(attr(node, "axis", 0), len(shp))
        ind = np.asarray(ind, dtype=np.int64)
        if np.any(ind < -shp[ax]) or np.any(ind >= shp[ax]):
            raise ImportFailure(f"Gather index out of range (axis {ax} has {shp[ax]} entries)", node.op_type, node.name)
        ind = np.where(ind < 0, ind + shp[ax], ind)
        if isinstance(x, Logits):
            if ax >= len(shp) - 2:
                raise ImportFailure("a Gather on the query or key axis of attention logits", node.op_type, node.name)
            return [x.restructure_lead(lambda h: np.take(h, ind, axis=ax))]
        return [_restructure(x, lambda a: np.take(a, ind, axis=ax))]


@op("Split")
class Split(Op):
    def run(self, ctx, node, args):
        x = args[0]
        shp = _shape_of(x)
        ax = _axis(attr(node, "axis", 0), len(shp))
        n_out = len(node.output)
        if len(args) > 1 and args[1] is not None:
            sizes = _ints(ctx.need_const(args[1], node, "split"))
        elif attr(node, "split", None) is not None:
            sizes = [int(v) for v in attr(node, "split")]
        else:
            k = -(-shp[ax] // n_out)
            sizes = [min(k, shp[ax] - i * k) for i in range(n_out)]
        if isinstance(x, Logits) and ax >= len(shp) - 2:
            raise ImportFailure("a Split of the query or key axis of attention logits", node.op_type, node.name)
        outs, start = [], 0
        for s in sizes:
            sl = [slice(None)] * len(shp)
            sl[ax] = slice(start, start + s)
            sl = tuple(sl)
            outs.append(_restructure(x, lambda a, sl=sl: a[sl], lambda h, sl=sl: h[sl[:-2]].copy()))
            start += s
        return outs


# ------------------------------------------------------------------------------------------ arithmetic


def _sym_add(ctx, node, a, b):
    if isinstance(a, np.ndarray):
        a, b = b, a
    if isinstance(a, Logits):
        if isinstance(b, np.ndarray):
            return ctx.logit_bias(a, ctx.exact(b, node), node)
        raise ImportFailure("adds an input-dependent tensor to attention logits", node.op_type, node.name)
    if isinstance(b, Logits):
        raise ImportFailure("adds an input-dependent tensor to attention logits", node.op_type, node.name)
    if isinstance(b, np.ndarray):
        return add_const(ctx.engine.canon(a), ctx.exact(b, node))
    return ctx.engine.settle(add(a, b, ctx.engine))


def _neg(ctx, v):
    if isinstance(v, np.ndarray):
        return -v
    if isinstance(v, Logits):
        raise ImportFailure("negated attention logits")
    return scale(ctx.engine.canon(v), np.array(-1, dtype=object))


@op("Add")
class Add(Op):
    def const(self, ctx, node, args):
        return [args[0] + args[1]]

    def sym(self, ctx, node, args):
        return [_sym_add(ctx, node, args[0], args[1])]


@op("Sub")
class Sub(Op):
    def const(self, ctx, node, args):
        return [args[0] - args[1]]

    def sym(self, ctx, node, args):
        return [_sym_add(ctx, node, args[0], _neg(ctx, args[1]))]


@op("Sum")
class Sum(Op):
    def const(self, ctx, node, args):
        out = args[0]
        for a in args[1:]:
            out = out + a
        return [out]

    def sym(self, ctx, node, args):
        out = args[0]
        for a in args[1:]:
            if isinstance(out, np.ndarray) and isinstance(a, np.ndarray):
                out = out + a
            else:
                out = _sym_add(ctx, node, out, a)
        return [out]


@op("Neg")
class Neg(Op):
    def const(self, ctx, node, args):
        return [-args[0]]

    def sym(self, ctx, node, args):
        return [_neg(ctx, args[0])]


def _sym_mul(ctx, node, a, c):
    """a (symbolic) times a constant c (exact object array)."""
    if isinstance(a, Logits):
        return ctx.logit_scale(a, c, node)
    return scale(ctx.engine.canon(a), c)


@op("Mul")
class Mul(Op):
    def const(self, ctx, node, args):
        return [args[0] * args[1]]

    def sym(self, ctx, node, args):
        a, b = args
        if is_sym(a) and is_sym(b):
            raise ImportFailure("a product of two input-dependent tensors outside an attention logit Q K^T",
                                node.op_type, node.name)
        if isinstance(a, np.ndarray):
            a, b = b, a
        return [_sym_mul(ctx, node, a, ctx.exact(b, node))]


@op("Div")
class Div(Op):
    def const(self, ctx, node, args):
        a, b = args
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            return [np.floor_divide(a, b)]
        return [a / b]

    def sym(self, ctx, node, args):
        a, b = args
        if is_sym(b):
            raise ImportFailure("a division by an input-dependent tensor", node.op_type, node.name)
        c = ctx.exact(b, node)
        if np.any(c == 0):
            raise ImportFailure("a division by zero", node.op_type, node.name)
        inv = np.vectorize(lambda v: 1 / _F(v), otypes=[object])(c) if c.size else c
        return [_sym_mul(ctx, node, a, inv)]


def _F(v):
    from fractions import Fraction
    return Fraction(v)


@op("MatMul")
class MatMul(Op):
    def const(self, ctx, node, args):
        return [np.matmul(args[0], args[1])]

    def sym(self, ctx, node, args):
        a, b = args
        eng = ctx.engine
        if isinstance(a, Logits):
            if not a.softmaxed:
                raise ImportFailure("attention logits multiplied by values without a softmax", node.op_type, node.name)
            if isinstance(b, np.ndarray):
                b = lift_const(ctx.exact(b, node), eng.inp)
            if not isinstance(b, Lin):
                raise ImportFailure("attention weights times attention weights", node.op_type, node.name)
            return [eng.attend(a, b)]
        if isinstance(b, Logits):
            raise ImportFailure("a tensor multiplied by attention weights from the left (weights must come first)",
                                node.op_type, node.name)
        if isinstance(a, Lin) and isinstance(b, Lin):
            return [eng.logits(a, b)]
        if isinstance(a, Lin):
            return [eng.matmul(a, ctx.exact(b, node), node.op_type, node.name)]
        return [eng.matmul_left(ctx.exact(a, node), b, node.op_type, node.name)]


@op("Gemm")
class Gemm(Op):
    def run(self, ctx, node, args):
        a, b = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        if attr(node, "transA", 0):
            a = OPS["Transpose"].run(ctx, _Fake("Transpose", node.name, perm=[1, 0]), [a])[0]
        if attr(node, "transB", 0):
            b = OPS["Transpose"].run(ctx, _Fake("Transpose", node.name, perm=[1, 0]), [b])[0]
        y = OPS["MatMul"].run(ctx, _Fake("MatMul", node.name), [a, b])[0]
        alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
        if alpha != 1.0:
            y = OPS["Mul"].run(ctx, _Fake("Mul", node.name), [y, np.array(alpha, dtype=np.float32)])[0]
        if c is not None:
            if beta != 1.0:
                c = OPS["Mul"].run(ctx, _Fake("Mul", node.name), [c, np.array(beta, dtype=np.float32)])[0]
            y = OPS["Add"].run(ctx, _Fake("Add", node.name), [y, c])[0]
        return [y]


class _Fake:
    """A node made inside another (Gemm): the real node's name, an op type, attributes."""

    def __init__(self, op_type, name, **attrs):
        from onnx import helper
        self.op_type, self.name = op_type, name
        self.attribute = [helper.make_attribute(k, v) for k, v in attrs.items()]
        self.output = [""]


@op("Softmax")
class Softmax(Op):
    def const(self, ctx, node, args):
        x = args[0].astype(np.float64)
        ax = ctx.softmax_axis(node, x.ndim)
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return [(e / e.sum(axis=ax, keepdims=True)).astype(args[0].dtype)]

    def sym(self, ctx, node, args):
        nd = len(_shape_of(args[0]))
        return [ctx.engine.softmax(args[0], ctx.softmax_axis(node, nd), node.op_type, node.name)]


@op("ReduceSum", "ReduceMean")
class ReduceSum(Op):
    def _axes(self, ctx, node, args, nd):
        axes = _axes_arg(ctx, node, args) if node.op_type == "ReduceSum" or ctx.opset >= 18 else \
            (list(attr(node, "axes")) if attr(node, "axes") is not None else None)
        if axes is None or len(axes) == 0:
            if attr(node, "noop_with_empty_axes", 0):
                return []
            return list(range(nd))
        return sorted(_axis(a, nd) for a in axes)

    def const(self, ctx, node, args):
        x = args[0]
        axes = tuple(self._axes(ctx, node, args, x.ndim))
        keep = bool(attr(node, "keepdims", 1))
        f = np.sum if node.op_type == "ReduceSum" else np.mean
        return [np.asarray(f(x, axis=axes, keepdims=keep)).astype(x.dtype)]

    def sym(self, ctx, node, args):
        x = args[0]
        if isinstance(x, Logits):
            raise ImportFailure("a sum over attention logits", node.op_type, node.name)
        shp = _shape_of(x)
        axes = self._axes(ctx, node, args, len(shp))
        keep = bool(attr(node, "keepdims", 1))
        out, n = x, 1
        for ax in sorted(axes, reverse=True):
            parts = [out.restructure(lambda a, i=i, ax=ax: np.take(a, [i], axis=ax)) for i in range(shp[ax])]
            acc = parts[0]
            for p in parts[1:]:
                acc = add(acc, p, ctx.engine)
            out = acc if keep else acc.restructure(lambda a, ax=ax: np.squeeze(a, axis=ax))
            n *= shp[ax]
        if node.op_type == "ReduceMean" and n != 1:
            from fractions import Fraction
            out = scale(out, np.array(Fraction(1, n), dtype=object))
        return [out]


# ------------------------------------------------------------------------------------------ constants only


def _const_only(name, fn):
    cls = type(name, (Op,), {"const": lambda self, ctx, node, args: [fn(node, *args)]})
    OPS[name] = cls()


_const_only("Relu", lambda node, x: np.maximum(x, 0).astype(x.dtype))
_const_only("Sqrt", lambda node, x: np.sqrt(x))
_const_only("Exp", lambda node, x: np.exp(x))
_const_only("Abs", lambda node, x: np.abs(x))
_const_only("Floor", lambda node, x: np.floor(x))
_const_only("Ceil", lambda node, x: np.ceil(x))
_const_only("Reciprocal", lambda node, x: (1 / x).astype(x.dtype))
_const_only("Pow", lambda node, x, y: np.power(x, y).astype(x.dtype))
_const_only("Equal", lambda node, x, y: np.equal(x, y))
_const_only("Less", lambda node, x, y: np.less(x, y))
_const_only("LessOrEqual", lambda node, x, y: np.less_equal(x, y))
_const_only("Greater", lambda node, x, y: np.greater(x, y))
_const_only("GreaterOrEqual", lambda node, x, y: np.greater_equal(x, y))
_const_only("Not", lambda node, x: np.logical_not(x))
_const_only("And", lambda node, x, y: np.logical_and(x, y))
_const_only("Or", lambda node, x, y: np.logical_or(x, y))
_const_only("Where", lambda node, c, x, y: np.where(c, x, y))
_const_only("Min", lambda node, *xs: np.minimum.reduce(np.broadcast_arrays(*xs)))
_const_only("Max", lambda node, *xs: np.maximum.reduce(np.broadcast_arrays(*xs)))
_const_only("Mod", lambda node, x, y: np.mod(x, y))
_const_only("Range", lambda node, s, l, d: np.arange(s, l, d, dtype=np.asarray(s).dtype))


def _constant_of_shape(node, shape):
    from onnx import numpy_helper
    value = attr(node, "value", None)
    v = np.zeros(1, dtype=np.float32) if value is None else numpy_helper.to_array(value)
    return np.full(tuple(_ints(shape)), v.reshape(-1)[0], dtype=v.dtype)


_const_only("ConstantOfShape", _constant_of_shape)
for _name in ("Erf", "Tanh", "Sigmoid", "Gelu", "LayerNormalization", "LogSoftmax", "ReduceMax", "Attention"):
    OPS.setdefault(_name, Op())

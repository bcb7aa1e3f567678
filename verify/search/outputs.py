"""One paving per group of outputs: outputs that share no input are certified separately.

sup_x max_o |N_o(x) - f_o(x)| is the largest of the per-group sups, so each group may tile
the whole domain on its own.  When output o depends on input x_o only (ramp-seq), one joint
paving needs the product of the per-input refinements, while separate pavings need their
sum.  Groups are the connected components of "output o and output o' depend on a common
input" (the bounder's exact dependence matrix); every group's paving still covers the whole
domain, so the evidence is sound whatever the dependence really is.
"""
from __future__ import annotations

import dataclasses

import numpy as np


def output_groups(depends) -> list:
    """Connected components of the outputs, linked when they depend on a common input.

    ``depends`` is the (R, D) boolean dependence matrix; returns sorted lists of outputs,
    ordered by their smallest output."""
    dep = np.asarray(depends, dtype=bool)
    R = dep.shape[0]
    parent = list(range(R))

    def root(o):
        while parent[o] != o:
            parent[o] = parent[parent[o]]
            o = parent[o]
        return o
    for d in range(dep.shape[1]):
        outs = np.flatnonzero(dep[:, d]).tolist()
        for o in outs[1:]:
            parent[root(o)] = root(outs[0])
    groups: dict = {}
    for o in range(R):
        groups.setdefault(root(o), []).append(o)
    return sorted(groups.values())


def separable(construction) -> bool:
    """Whether the network's outputs can be bounded one group at a time: one attention layer read
    out entry by entry (no post map, final softmax, linear readout or chain of intermediate targets)."""
    net = construction.network
    return (len(net.layers) == 1 and net.layers[0].post is None and not net.final_softmax
            and net.readout_linear is None and not getattr(construction, "chain", ()))


def restrict(construction, outputs):
    """The construction whose network and target keep only ``outputs`` (readout entries)."""
    net = construction.network
    sub = dataclasses.replace(net, readout=tuple(net.readout[o] for o in outputs))
    meta = tuple((k, v) for k, v in construction.meta if k not in ("grid", "map"))  # whole-network hints
    return dataclasses.replace(construction, network=sub, target=tuple(construction.target[o] for o in outputs),
                               meta=meta)


def group_checkpoint(checkpoint, n: int):
    """The checkpoint file of group n of a run whose checkpoint is ``checkpoint`` (None stays None)."""
    return None if checkpoint is None else f"{checkpoint}.group{n}"


def checkpoint_files(checkpoint) -> list:
    """The files of a run's checkpoint that exist: the joint one and those of its groups."""
    import glob
    import os
    if checkpoint is None:
        return []
    found = [checkpoint] if os.path.exists(checkpoint) else []
    return found + sorted(glob.glob(glob.escape(checkpoint) + ".group*"))

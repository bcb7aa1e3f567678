"""The branch and bound: certify, the dyadic paving, work units, executors, checkpoints, sampling."""

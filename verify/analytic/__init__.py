"""The analytic route: cells, z3 gap and partition lemmas, closed-form and sub-mesh piece bounds."""

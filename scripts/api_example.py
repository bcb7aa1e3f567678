"""The README's API example: build a ramp, prove its error bound, save and re-check the certificate."""
import constructions, verify, certificates

ramp = constructions.build("ramp", a="-1", b="1", p=41, kappa=8, lo="-2", hi="2")
result = verify.certify(ramp, "0.014")                  # exact eps: 7/500
print(result.status, f"sup error <= {result.max_bound:.5g}, observed {result.observed:.5g}")
certificates.save(certificates.certificate(ramp, result), "ramp41.cert.json")
check = certificates.check("ramp41.cert.json")          # independent Arb re-derivation
print(check.status, check.boxes, "boxes, checked bound", f"{check.checked_max_bound:.5g}")
assert check.ok and check.checked_max_bound < check.eps

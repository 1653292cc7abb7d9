"""Conformance: trajgym's graders and engines checked against vectors computed with the published reference code.

`trajgym conformance DIR` runs every vector file it finds in DIR (formats in shared/conformance/README.md);
one checker module per file kind turns its lines into agreeing / disagreeing cases (`conformance.report`).
"""

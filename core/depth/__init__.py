"""Depth sources of refocus: depth stored inside photos, depth models, and the offline default.

(Placeholder docstring in this branch; the depth-package branch provides the real module.)
"""

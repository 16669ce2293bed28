"""The GIMP 3 plug-in: not implemented yet (issue: the GIMP 3 plug-in)."""

"""The GIMP 3 plug-in (Filters > Blur > Refocus (Depth of Field)... and Depth Map (refocus)...).

* ``refocus-gimp.py`` - the script GIMP runs (standard library + gi only; copied on install)
* :mod:`.bridge` - the worker protocol's GIMP side (standard library only; copied on install)
* :mod:`.worker` - ``python -m refocus.plugin_gimp.worker REQUEST_DIR``: runs the core for GIMP
* :mod:`.install` - ``refocus gimp install|uninstall|status``

See docs/gimp.md.
"""

"""The controller-manager: built-in controllers on shared informers, one leader at a time.

Layout: base.py (Controller, ControllerContext, ControllerManagerOptions, @register),
manager.py (CONTROLLER_MODULES, --controllers selection, ControllerSet), __main__.py (flags,
health server, leader election), launch.py (command line for `minictl cluster up`), and one
module per controller. How to add a controller: see base.py's docstring.
"""

"""Reproducible benchmark runners, run as ``autometa bench ...`` or ``autometa hpo bench ...``.

They import the library; no module of the library imports them (only the
``autometa`` command, an application, dispatches to them). Their figures live
in ``docs/figures/``.
"""

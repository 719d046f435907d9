"""The ``bench`` command line: the entry point (:mod:`.main`), the parser (:mod:`.parser`),
one ``cmd_<name>`` module per sub-command, the checks that run before anything is written
(:mod:`.validate`, :mod:`.method_options`), and signal handling.

Importing this package imports no launcher backend: ``bench --help`` and ``bench list``
stay free of submitit.
"""

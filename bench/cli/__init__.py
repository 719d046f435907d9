"""The ``bench`` command line: the parser (:mod:`.main`), one ``cmd_<name>`` module per
sub-command, the option checks that run before anything is written, and signal handling.

Importing this package imports no launcher backend: ``bench --help`` and ``bench list``
stay free of submitit.
"""

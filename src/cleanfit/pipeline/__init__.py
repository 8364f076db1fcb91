"""The pipeline: what ``cleanfit train`` does, from a TOML config to a trained, tracked run.

``config`` validates the TOML; ``prepare`` reads the table, checks the target and builds the
fit-on-train preprocessing; ``model`` builds the network, loss, optimizer and scores; ``run`` holds
:func:`prepare` (split, audit, preprocess) and :func:`train_config`; ``fit`` trains a prepared table;
``repro`` compares two runs; ``demo`` is ``cleanfit demo``.

May import every stage below it: ``report``, ``tracking``, ``training``, ``auditing``, ``data``.
"""

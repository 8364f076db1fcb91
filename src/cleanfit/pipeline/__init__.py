"""The pipeline: what ``cleanfit train`` does, from a TOML config to a trained, tracked run.

``config`` validates the TOML; ``prepare`` is steps 1-4 (read and check the table, split, audit,
fit-on-train preprocessing: :func:`~cleanfit.pipeline.prepare.prepare`), with the column checks, the
target encoding, the feature frame and the preprocessor in ``features``; ``model`` builds the network,
loss, optimizer and scores; ``fit`` is steps 5-6 (train, score, track, report); ``run`` ties them
together (:func:`~cleanfit.pipeline.run.train_config`); ``repro`` compares two runs; ``demo`` is
``cleanfit demo``. Imports go run -> fit -> prepare, never back.

May import every stage below it: ``report``, ``tracking``, ``training``, ``auditing``, ``data``.
"""

"""Data: everything between a user's rows and a batch on the device.

``tables`` reads CSV/Parquet and owns the task rule and time parsing; ``sources`` adapts any data to
"take rows by index"; ``orders`` and ``batches`` make the seeded epoch orders and the batches;
``outofcore`` streams Parquet/.npy larger than memory; ``devices`` moves batches; ``splits`` (with
``split_args`` and ``splitters``) splits before anything touches the data.

May import: ``cleanfit._util`` and the top-level ``errors``/``findings``/``seeding`` only.
"""

"""The small shared rules, each written once: argument validation (``args``), column lookup with
"did you mean" (``columns``), atomic file and JSON writes and the writable-path probe (``files``),
fingerprints (``fingerprint``), the process's rank (``ranks``) and the HTML look (``html``).

May import: nothing from cleanfit but ``errors``.
"""

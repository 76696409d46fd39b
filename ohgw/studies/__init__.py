"""The study harness: paired multi-seed (method, seed) studies on equal budgets, exported to Parquet.

- :mod:`ohgw.studies.methods`: methods by name (a scheduler factory plus a warm-start variant);
- :mod:`ohgw.studies.study`: one study, one ``tune.Tuner``; the trainable is an argument;
- :mod:`ohgw.studies.ledger`: trial numbering and seeds, the budget, the per-epoch recorder;
- :mod:`ohgw.studies.tables`: a finished study's three tables plus provenance;
- :mod:`ohgw.studies.runner`: admission over GPU groups, resume, atomic export;
- :mod:`ohgw.studies.cluster`: labelled GPU groups; :mod:`ohgw.studies.cli`: the experiments' command line.

``ohgw`` never imports ``trainables``: the scripts in ``experiments/`` pass the trainable in.
"""

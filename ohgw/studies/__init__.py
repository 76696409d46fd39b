"""The study harness: paired multi-seed (method, seed) studies on equal budgets, exported to Parquet.

- :mod:`ohgw.studies.workload`: what a family of trainables hands the harness (trainable, space, presets);
- :mod:`ohgw.studies.methods`: methods by name (a scheduler factory plus a warm-start variant);
- :mod:`ohgw.studies.study`: the experiment's run settings; one study, one ``tune.Tuner``;
- :mod:`ohgw.studies.ledger`: trial numbering and init seeds, the budget, the per-epoch recorder
  (reports are read through :mod:`ohgw.protocol` only);
- :mod:`ohgw.studies.tables`: a finished study's three tables (:mod:`ohgw.results`) plus provenance;
- :mod:`ohgw.studies.runner`: the scheduling loop (admission over GPU groups, resume, atomic export), with
  :mod:`~ohgw.studies.progress` (the console), :mod:`~ohgw.studies.manifest` (one experiment per directory),
  :mod:`~ohgw.studies.dashboard` (dashboard safety) and :mod:`~ohgw.studies.ray_session` (Ray start-up, log file);
  :mod:`ohgw.studies.looks`: the looks of a sequential study (``--seeds auto``);
- :mod:`ohgw.studies.cluster`: labelled GPU groups; :mod:`ohgw.studies.cli`: the experiments' command line.

``ohgw`` never imports ``trainables``: the scripts in ``experiments/`` pass the trainable in.
"""

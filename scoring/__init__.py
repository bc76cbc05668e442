"""How health is judged: the pure scoring core (no Kafka, Faust, Redis, network or clock).

- :mod:`scoring.config` — the validated scoring configuration (``default.toml``).
- :mod:`scoring.apply` — events into aggregates (:mod:`state.aggregates`), the hot path.
- :mod:`scoring.scores` — metrics, account and user scores, bands with hysteresis.
- :mod:`scoring.signals` — named conditions with episodes, one unit per family
  (types, settings, detector, due rule, text key, routing tags), listed in its registry.
- :mod:`scoring.stages` — lifecycle and forecast stages.
- :mod:`scoring.explain` — every sentence Telltale writes, from the catalogues.
- :mod:`scoring.i18n` — catalogues, plural rules and locale formats (English, French).
- :mod:`scoring.changes` — health-change decisions and their wire record.
- :mod:`scoring.engine` — :func:`~scoring.engine.step`, the one entry point.
- :mod:`scoring.replay` — many accounts in event time (replays, backtests, tests).
"""

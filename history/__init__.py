"""History: prove the score predicts churn.

- ``simulate``: a seeded B2B SaaS portfolio in Segment-spec JSON with known outcomes
  (``telltale simulate``; ``simulate_recent`` for live demos);
- ``importers``: Segment JSON lines, mapped CSV and outcomes CSV → canonical events;
- ``backtest``: replay through the scoring core and assess each account before its
  renewal or churn, beside activity baselines (``telltale backtest``);
- ``worklist_eval``: each owner's daily top five by attention priority against score
  alone and an activity baseline (recall before churn, precision, alerts per month);
- ``evaluation``: AUC, tie-fair lift, ARR recall, profit; ``plots`` and ``report``: the
  SVG charts, the HTML page and the terminal summary;
- ``calibrate``: learn weights and bands from earlier outcomes, test on later ones
  (``telltale calibrate``);
- ``business``: churn rate, GRR/NRR, cohorts, NPS, engagement, CLV (``telltale metrics``);
- ``cdnow``: the real CDNOW purchase history as a Telltale history.
"""

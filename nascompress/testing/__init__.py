"""Test helpers shipped for plug-in authors; pure Python, importable without torch or ray.

* :mod:`nascompress.testing.toy`: a small search space and a two-objective problem with a
  known optimum;
* :mod:`nascompress.testing.strategy_conformance`: checks that a
  :class:`~nascompress.strategies.Strategy` honours its contract (``check_strategy`` or
  the ``StrategyConformance`` pytest base class);
* :mod:`nascompress.testing.evaluator_conformance`: checks that an
  :class:`~nascompress.evaluators.Evaluator` honours its contract (``check_evaluator``;
  it runs the evaluator, so it needs whatever the evaluator imports).
"""

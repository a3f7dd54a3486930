"""Evaluation of Turkish visual instruction models, as in the Cosmos-LLaVA paper.

- `metrics`: yes/no answer normalisation (`yes_no`), binary classification reports overall and per
  category (`binary_metrics`, `by_category`, `BinaryReport`), bootstrap confidence intervals
  (`mean_and_ci`);
- `judge`: LLM-judge prompts and reply parsers, a 0-100 score (`judge100_messages`, `parse_score100`,
  `parse_reason`) and LLaVA-Bench relative scores (`relative_messages`, `parse_pair_scores`,
  `relative_score`, `relative_summary`).

Standard library and numpy only; no model calls.
"""

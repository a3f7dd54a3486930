"""Offline demo data: a procedurally drawn "shape world" and a rule-based Turkish teacher.

- `world`: scenes of coloured shapes (`make_scene`, `make_scenes`, `draw`, `boxes`, `captions`,
  `record`, `write_world`), each with its symbolic ground truth;
- `turkish`: the small piece of Turkish morphology the sentences need (vowel harmony, case suffixes,
  the question particle, number words);
- `teacher`: LLaVA rows from scene records (stage-1 captions, stage-2 instructions, a balanced test set,
  a plain-text corpus for a tiny language model).

Standard library + Pillow + numpy; no model, no network.
"""

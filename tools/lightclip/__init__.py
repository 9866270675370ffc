"""A lighting-aware test CLIP, made here from synthetic scenes (issue 20).

* :mod:`.scenes` draws procedural scenes (textured background, a textured subject and
  its mask) in even light;
* :mod:`.lighting` renders a scene under a lighting condition (well-lit, backlit,
  under- and over-exposed), the backlit one by a physical model that the train-quality
  benchmark also uses for its (backlit, truth) pairs;
* :mod:`.captions` words each condition, with the zero-shot prompts of
  ``cliplit_core.clip.prompts`` among the captions;
* :mod:`.dataset` makes the image and label tensors of a split (train / held-out
  scenes never overlap);
* :mod:`.contrastive` trains a small open_clip model (both towers) on them;
* :mod:`.build` writes the model config JSON and the weights file, deterministically
  from a seed; :mod:`.evaluate` measures the zero-shot separation;
* :mod:`.pairs` makes (backlit, truth) pairs and photos of held-out scenes, and
  :mod:`.quality` scores results against their truth (PSNR, SSIM), for the tests and the
  benchmarks that judge scores, heatmaps and training with this CLIP.

``python -m tools.make_light_clip`` is the command; tests get the model from a cache
(tests/support/light_clip.py).
"""

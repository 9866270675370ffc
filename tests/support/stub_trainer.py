"""A Trainer with counters for models, for replaying the authors' control flow through the real
trainer: the schedule, the data loaders, the hand-off, the result sets, checkpoints and the log
are the real code; the networks are two counters (the network's and the prompt pair's version)
and each step's loss comes from a scripted trace.

The images are 1 x 1 pixels whose value is the image's index in its folder, so every batch
says which images it holds (and how refinement paired them).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from tests.support.authors_replay import Step


class IndexImages:
    """An ImageSet stand-in: ``n`` images of 1 x 1 pixels valued 0, 1, ... n-1 (float16 keeps them exact)."""

    def __init__(self, n: int, sizes):
        self.names = [f"{i}.png" for i in range(n)]
        self.skipped = []
        pixels = torch.arange(n, dtype=torch.float16).view(n, 1, 1, 1).expand(n, 3, 1, 1).contiguous()
        self.images = {int(s): pixels for s in sizes}

    def __len__(self):
        return len(self.names)


def trainer_config(tmp_path, kw, **over):
    """A resolved ``--recipe authors`` configuration from the replay's keywords (``kw``)."""
    from trainer.config import TrainConfig
    from trainer.recipe import resolve

    cfg = TrainConfig(backlit="b", welllit="w", out=str(tmp_path / "run"), epochs=kw["num_epochs"],
                      prompt_init_iters=kw.get("num_clip_pretrained_iters", 0),
                      reconstruction_iters=kw.get("num_reconstruction_iters", 0), log_every=10 ** 6,
                      save_every=10 ** 6, workers=0, progress="off", allow_untrained=True, **over)
    return resolve(cfg, set(over) | {"epochs", "prompt_init_iters", "reconstruction_iters"})


def stub_trainer(cfg, trace, monkeypatch, n_backlit=380, n_welllit=384):
    """``(trainer, steps, batches)``: ``trainer.run()`` fills ``steps`` with the replay's
    :class:`Step` records and ``batches`` with ``(step, batch)`` of every step."""
    from trainer import distributed as distmod
    from trainer import stages

    monkeypatch.setattr(stages, "init_enhancer_weights", lambda net, seed, scheme: net.weight.data.zero_())
    steps, batches = [], []
    sizes = (cfg.image_size, cfg.prompt_image_size)

    class Stub(stages.Trainer):
        def load_data(self):
            self.backlit, self.welllit = IndexImages(n_backlit, sizes), IndexImages(n_welllit, sizes)

        def load_models(self):
            self.net = torch.nn.Linear(1, 1, bias=False)
            self.net.weight.data.zero_()
            self.prompt = SimpleNamespace(embeddings=torch.zeros(1), prompt_length=1)
            self.opt_net = self._new_net_optimizer()
            self.opt_prompt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
            self.scaler = torch.amp.GradScaler("cuda", enabled=False)

        def _set_trainable(self, kind):
            pass

        def step(self, step, batch):
            total = int(self.pos["global_step"])
            loss, psnr = trace(step.kind, total, batch.global_size)
            net = step.kind in ("reconstruction", "enhance")
            version = int(self.net.weight.item()) if net else int(self.prompt.embeddings.item())
            terms = None
            if step.kind == "prompt":
                name = {n: f"v{int(self.results[r].flatten()[0])}" for n, r in self.ranking.sets}
                terms = tuple((name.get(hi, hi), name.get(lo, lo), m) for hi, lo, m in self.ranking.terms)
            build = step.slot.build if step.kind == "prompt" else 0
            steps.append(Step(step.kind, version, terms, batch.epoch, batch.iteration, batch.global_size, build))
            batches.append((step, batch))
            with torch.no_grad():
                (self.net.weight if net else self.prompt.embeddings).add_(1.0)
            t = torch.tensor(float(psnr))
            summed = t * batch.global_size  # per-image values summed over the batch
            extra = {"psnr_sum": summed, "psnr_y_sum": summed, "light_mean_sum": summed, "clip": t, "identity": t,
                     "correct": summed, "S_backlit_sum": summed}
            return torch.tensor(float(loss)), extra

        def enhance_backlit_set(self):
            return self.net.weight.detach().reshape(1, 1, 1, 1).expand(n_backlit, 3, 1, 1).clone()

        def round_outputs(self, round_):
            pass

        def write_output(self, rounds_done):
            return self.out / stages.OUTPUT_NAME

    return Stub(cfg, distmod.DistInfo()), steps, batches

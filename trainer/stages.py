"""One training run: data, models, the step of each phase, checkpoints and outputs.

Which phase each iteration belongs to, when phases grow or end and what the
refinement ranks is decided by the schedule (:mod:`trainer.schedule`, chosen by
``--recipe``); this module runs the steps it asks for:

* prompt initialisation (cross-entropy), reconstruction (identity loss), enhancement
  (CLIP + identity loss) and prompt refinement (margin ranking of backlit, well-lit
  and enhancement result sets);
* at the end of an enhancement phase the training backlit images are enhanced with
  the phase's best state (a result set ``I_t``); what the next phase starts from is
  the phase's final state (``--handoff final``) or its best state (``best``);
* every batch is a pure function of (seed, phase, round, iteration) (see
  :mod:`trainer.data`) and the checkpoint holds everything else (models, optimisers,
  the schedule's state, RNG states), so a resumed run reproduces the losses of an
  uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch

from cliplit_core.files.atomic import remove_stale_temps
from cliplit_core.weights.checkpoint import read_weights
from cliplit_core.light.network import CLIPLITNet

from . import distributed as distmod
from . import state as statemod
from . import recipe as recipemod
from .config import TrainConfig, TrainerError
from .data import ENHANCE_ZOOM, PHASE_CODES, PROMPT_ZOOM, ImageSet, PhaseBatches, augment, batch_loader, \
    scan_folder, seed_for
from .budget import untrained_note
from .schedule import Step, phase_title, plan_phases
from .logging_utils import LOG_NAME, JsonlLog, Progress, plot_losses, read_log, sample_grid, truncate_log

TRAINER_VERSION = "3"  # 3: --recipe authors reads epoch loaders (partial batches, pairs fixed per build)
OUTPUT_NAME = "cliplit.safetensors"
DIVISION_EPS = 1e-9  # the authors' I / (L + 1e-9) in training
PSNR_WINDOW = 30  # the authors' re-initialisation window
SAMPLE_COUNT = 4
PLAN_LOG_LIMIT = 300_000  # iterations: longer schedules are not listed in the start record
# the statistics a step sums over processes (refinement: S_<name>_sum per image set of the batch)
STAT_NAMES = {"reconstruction": ("psnr_sum", "psnr_y_sum", "light_mean_sum"),
              "enhance": ("psnr_sum", "psnr_y_sum", "light_mean_sum", "clip", "identity"),
              "prompt_init": ("correct",)}


def _step_place(step: Step) -> tuple:
    """Which batch ``step`` reads: (epoch, index) of the authors' loaders, or (None, iteration index)."""
    return (step.slot.epoch, step.slot.index) if step.slot is not None else (None, step.iteration - 1)


def _batch_place(batch) -> tuple:
    return batch.epoch, batch.iteration


def init_enhancer_weights(net: CLIPLITNet, seed: int, scheme: str = "authors") -> None:
    """The authors' ``weights_init``: conv weights ~ N(0, 0.02); biases and PReLUs keep
    PyTorch's defaults -- all drawn from a generator seeded by ``seed``. ``scheme='identity'``
    then sets the last bias to 1: the light map starts near 1, the output near the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                if m.bias is not None:
                    bound = 1.0 / math.sqrt(m.weight[0].numel())
                    m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) * bound)
            elif isinstance(m, torch.nn.PReLU):
                m.weight.fill_(0.25)
        if scheme == "identity":
            net.cond_add1.bias.fill_(1.0)


_RANDOM_BACKBONES: dict = {}
RANDOM_BACKBONE_SEED = 20230


def load_clip_backbone(model: str, pretrained: str, device):
    """The frozen backbone (cached per process). Random backbones (``pretrained='none'``,
    tests and timing) are built from a fixed seed, so every process -- a resumed run,
    each torchrun rank, a test scoring the result -- gets the same weights."""
    from cliplit_core.clip.backbone import build_backbone, load_backbone

    if str(pretrained).lower() != "none":
        return load_backbone(model, pretrained, device=device)
    key = (str(Path(model).resolve()) if Path(model).is_file() else str(model), str(torch.device(device)))
    bb = _RANDOM_BACKBONES.get(key)
    if bb is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_BACKBONE_SEED)
            bb = build_backbone(model, "none", device=device)
        _RANDOM_BACKBONES[key] = bb
    return bb


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in 0..1: ``[B]``."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def psnr_y(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of the BT.601 luma (Y of YCbCr, 16..235 scaled to 0..1) of
    RGB images in 0..1: ``[B]`` (the measure of the authors' re-initialisation rule)."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float32, device=a.device).view(1, 3, 1, 1) / 255.0
    ya = (a.float() * w).sum(1) + 16.0 / 255.0
    yb = (b.float() * w).sum(1) + 16.0 / 255.0
    mse = (ya - yb).square().flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / (mse + 1e-8))


def enhancer_forward(net: CLIPLITNet, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for training: the pyramid pooling's branches upsampled by matrix products
    (``CLIPLITNet.forward(separable_upsampling=True)``), whose backward is fast on GPUs."""
    return net(x, separable_upsampling=True)


def apply_training_light(x: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """The authors' training output ``clamp(I / (L + 1e-9), 0, 1)`` (in float32)."""
    return torch.clamp(x.float() / (light.float() + DIVISION_EPS), 0.0, 1.0)


class Trainer:
    """One training run (one process of it under torchrun)."""

    def __init__(self, cfg: TrainConfig, info: distmod.DistInfo, *, checkpoint: dict | None = None,
                 warn=None):
        self.cfg = cfg
        self.info = info
        self.dev = info.device
        self.out = Path(cfg.out)
        self.ck = checkpoint
        self.main = info.is_main
        self._warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
        progress = cfg.progress == "on" or (cfg.progress == "auto" and sys.stderr.isatty())
        self.progress = Progress(progress and self.main)
        amp = cfg.amp if self.dev.type == "cuda" else "off"
        if cfg.amp != "off" and self.dev.type != "cuda":
            self.warn(f"--amp {cfg.amp} is for GPUs; training in float32 on {self.dev}")
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        cl = cfg.channels_last
        self.channels_last = self.dev.type == "cuda" and (cl == "on" or (cl == "auto" and self.amp_dtype is not None))
        if self.dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    # ------------------------------------------------------------------ messages
    def warn(self, msg: str) -> None:
        if self.main:
            self.progress.write(f"warning: {msg}") if self.progress.bar else self._warn(msg)

    def say(self, msg: str) -> None:
        if self.main:
            self.progress.write(msg)

    # ------------------------------------------------------------------ setup
    def load_data(self) -> None:
        cfg = self.cfg
        warn = self.warn if self.main else (lambda m: None)
        self.backlit: ImageSet = scan_folder(cfg.backlit, "backlit", (cfg.image_size, cfg.prompt_image_size),
                                             workers=max(1, cfg.workers), warn=warn)
        self.welllit: ImageSet = scan_folder(cfg.welllit, "well-lit", (cfg.prompt_image_size,),
                                             workers=max(1, cfg.workers), warn=warn)
        self.say(f"data: {len(self.backlit)} backlit images ({len(self.backlit.skipped)} skipped), "
                 f"{len(self.welllit)} well-lit images ({len(self.welllit.skipped)} skipped)")
        if self.ck is not None:
            old = self.ck.get("data", {})
            if old.get("backlit") != self.backlit.names or old.get("welllit") != self.welllit.names:
                self.warn("the image folders changed since the checkpoint was written; the resumed run "
                          "will not reproduce the uninterrupted one")

    def load_models(self) -> None:
        from cliplit_core.clip.prompts import PromptPair

        cfg = self.cfg
        self.clip = load_clip_backbone(cfg.clip_model, cfg.clip_pretrained, self.dev)
        self.ident = load_clip_backbone(cfg.identity_model, cfg.identity_pretrained, self.dev)
        if not self.ident.is_resnet:
            raise TrainerError(f"--identity-model {cfg.identity_model}: the identity loss needs a ResNet CLIP "
                               f"image tower (e.g. RN101, RN50)")
        if self.channels_last:
            self.ident.model.visual.to(memory_format=torch.channels_last)
        # enhancement network
        self.net = CLIPLITNet(cfg.padding)
        if cfg.init_enhancer == "none":
            init_enhancer_weights(self.net, seed_for(cfg.seed, PHASE_CODES["reinit"], 0), cfg.init_scheme)
        else:
            from cliplit_core.weights.sources import resolve_weights

            path = resolve_weights(cfg.init_enhancer)
            w = read_weights(path)
            if w.enhancer is None:
                raise TrainerError(f"--init-enhancer {path}: holds no enhancement network")
            from cliplit_core.weights.checkpoint import check_enhancer_state

            check_enhancer_state(w.enhancer, str(path))
            self.net.load_state_dict({k: v.float() for k, v in w.enhancer.items()})
        self.net.to(self.dev).train()
        # prompt pair
        if cfg.init_prompt == "none":
            self.prompt = PromptPair.from_text(self.clip, cfg.prompt_length)
        else:
            self.prompt = PromptPair.load(cfg.init_prompt)
            if self.prompt.prompt_length != cfg.prompt_length:
                self.warn(f"--init-prompt {cfg.init_prompt} has prompt length {self.prompt.prompt_length}; "
                          f"using it instead of --prompt-length {cfg.prompt_length}")
            self.prompt.clip_model, self.prompt.clip_pretrained = self.clip.metadata_name, self.clip.pretrained
        self.prompt.check_fits(self.clip)
        self.prompt.to(self.dev)
        distmod.broadcast_tensors(self.info, list(self.net.parameters()) + [self.prompt.embeddings])
        self.opt_net = self._new_net_optimizer()
        self.opt_prompt = torch.optim.Adam([self.prompt.embeddings], lr=cfg.prompt_lr,
                                           weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self._build_losses()

    def _new_net_optimizer(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def _build_losses(self) -> None:
        from cliplit_core.clip import losses as L

        channels_last = self.channels_last

        class _Identity(L.IdentityLoss):
            def features(self, images):
                px = self.backbone.preprocess(images, antialias=self.antialias)
                if channels_last:
                    px = px.contiguous(memory_format=torch.channels_last)
                return L.resnet_feature_maps(self.backbone, px)

        self.losses = L
        self.recon_loss = _Identity(self.ident, L.RECONSTRUCTION_ALPHAS, scale=L.IDENTITY_LOSS_SCALE)
        self.identity_loss = _Identity(self.ident, L.ENHANCEMENT_ALPHAS, scale=L.IDENTITY_LOSS_SCALE)
        self.clip_loss = L.CLIPLoss(self.clip, self.prompt, scale=L.CLIP_LOSS_SCALE)

    # ------------------------------------------------------------------ state
    def _fresh_phase_state(self) -> None:
        self.best_iter = 0
        self.best_state = None

    def _model_state(self, kind: str):
        if kind in ("prompt_init", "prompt"):
            return self.prompt.embeddings.detach().clone()
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def _load_model_state(self, kind: str, st) -> None:
        with torch.no_grad():
            if kind in ("prompt_init", "prompt"):
                self.prompt.embeddings.copy_(st.to(self.prompt.embeddings.device))  # bumps the version: cache off
            else:
                self.net.load_state_dict(st)

    def checkpoint_payload(self) -> dict:
        def cpu(x):
            if isinstance(x, torch.Tensor):
                return x.detach().cpu()
            if isinstance(x, dict):
                return {k: cpu(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return type(x)(cpu(v) for v in x)
            return x

        return {
            "trainer_version": TRAINER_VERSION,
            "config": self.cfg.to_dict(),
            "position": dict(self.pos),
            "enhancer": cpu(self.net.state_dict()),
            "prompt": self.prompt.embeddings.detach().cpu(),
            "prompt_length": int(self.prompt.prompt_length),
            "opt_enhancer": cpu(self.opt_net.state_dict()),
            "opt_prompt": cpu(self.opt_prompt.state_dict()),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "schedule": self.sched.state,
            "phase_state": {"best_iter": int(self.best_iter), "best_state": cpu(self.best_state)},
            "results_rounds": sorted(self.results),
            "data": {"backlit": self.backlit.names, "welllit": self.welllit.names,
                     "backlit_skipped": len(self.backlit.skipped), "welllit_skipped": len(self.welllit.skipped)},
            "rng": statemod.rng_state(),
        }

    def save(self) -> None:
        if self.main:
            self.log.flush()
            statemod.save_checkpoint(self.out, self.checkpoint_payload())
        distmod.barrier(self.info)

    def restore(self, ck: dict) -> None:
        self.pos = dict(ck["position"])
        self.net.load_state_dict(ck["enhancer"])
        with torch.no_grad():
            emb = ck["prompt"]
            if tuple(emb.shape) != tuple(self.prompt.embeddings.shape):
                raise TrainerError("checkpoint prompt pair does not fit the CLIP model")
            self.prompt.embeddings.copy_(emb.to(self.dev))
        self.prompt.prompt_length = int(ck.get("prompt_length", self.prompt.prompt_length))
        self.opt_net.load_state_dict(ck["opt_enhancer"])
        self.opt_prompt.load_state_dict(ck["opt_prompt"])
        if ck.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ck["scaler"])
        ps = ck["phase_state"]
        self.best_iter = int(ps["best_iter"])
        bs = ps["best_state"]
        if isinstance(bs, dict):
            bs = {k: v.to(self.dev) for k, v in bs.items()}
        elif isinstance(bs, torch.Tensor):
            bs = bs.to(self.dev)
        self.best_state = bs
        self.results = {int(r): statemod.load_results(self.out, int(r)) for r in ck.get("results_rounds", [])}
        statemod.set_rng_state(ck["rng"])

    # ------------------------------------------------------------------ helpers
    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _to_dev(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.dev, non_blocking=True)

    def loader(self, step: Step):
        """Batches from ``step``'s on: to the end of its epoch (authors: ``step.slot``), or of its
        phase as planned now (paper)."""
        cfg = self.cfg
        restarts = self.sched.reinits if cfg.recipe == "paper" else 0  # a restarted phase draws new batches
        common = dict(seed=cfg.seed, phase_code=PHASE_CODES[step.kind] * 16 + min(restarts, 15),
                      round_=step.round, rank=self.info.rank, world=self.info.world, start=step.iteration - 1,
                      stop=step.length, slot=step.slot)
        if step.kind in ("reconstruction", "enhance"):
            ds = PhaseBatches("enhance", batch_size=cfg.batch_size, backlit=self.backlit.images[cfg.image_size],
                              zoom_range=ENHANCE_ZOOM, **common)
        elif step.kind == "prompt_init":
            ds = PhaseBatches("prompt_init", batch_size=cfg.prompt_batch_size,
                              backlit=self.backlit.images[cfg.prompt_image_size],
                              welllit=self.welllit.images[cfg.prompt_image_size], zoom_range=PROMPT_ZOOM, **common)
        else:
            results = {name: self.results[r] for name, r in self.ranking.sets}
            ds = PhaseBatches("prompt", batch_size=cfg.prompt_batch_size,
                              backlit=self.backlit.images[cfg.prompt_image_size],
                              welllit=self.welllit.images[cfg.prompt_image_size], results=results,
                              zoom_range=PROMPT_ZOOM, **common)
        return batch_loader(ds, cfg.workers)

    def step(self, step: Step, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward + backward of this process's share; returns (loss contribution, extra stats)
        -- all to be summed over processes."""
        share = batch.local_size / batch.global_size
        aug = batch.aug
        kind = step.kind
        L = self.losses
        extra: dict[str, torch.Tensor] = {}
        if batch.local_size == 0:  # an epoch's last batch with fewer images than processes: none for this one
            params, opt = self._trained_by(kind)
            loss = sum(p.sum() for p in params) * 0.0  # zero gradients, to be summed with the others'
            names = ([f"S_{n}_sum" for n in batch.tensors] if kind == "prompt" else STAT_NAMES[kind])
            extra = {n: torch.zeros((), device=self.dev) for n in names}
        elif kind in ("reconstruction", "enhance"):
            x = augment(self._to_dev(batch.tensors["backlit"]), aug)
            with self.autocast():
                light = enhancer_forward(self.net, x)
            y = apply_training_light(x, light)
            with self.autocast():
                if kind == "reconstruction":
                    loss = self.recon_loss(y, x)
                else:
                    lc = self.clip_loss(y) * share
                    li = self.identity_loss(y, x)
                    loss = lc + L.ENHANCEMENT_IDENTITY_WEIGHT * li
                    extra["clip"], extra["identity"] = lc.detach().float(), li.detach().float()
            extra["psnr_sum"] = psnr(y.detach(), x).sum()
            extra["psnr_y_sum"] = psnr_y(y.detach(), x).sum()
            extra["light_mean_sum"] = light.detach().float().flatten(1).mean(1).sum()
            params, opt = self._trained_by(kind)
        elif kind == "prompt_init":
            x = augment(self._to_dev(batch.tensors["images"]), aug)
            with torch.no_grad(), self.autocast():
                feats = self.clip.image_features(x)
            with self.autocast():
                tf = self.prompt.text_features(self.clip)
            loss = L.prompt_init_loss(feats.float(), tf.float(), batch.labels.to(self.dev)) * share
            with torch.no_grad():
                pred = L.clip_logits(feats.float(), tf.float()).argmax(-1).cpu()
            extra["correct"] = (pred == batch.labels).sum().float().to(self.dev)
            params, opt = self._trained_by(kind)
        else:
            names = list(batch.tensors)
            xs = [augment(self._to_dev(batch.tensors[n]), aug) for n in names]
            b = xs[0].shape[0]
            with torch.no_grad(), self.autocast():
                feats = self.clip.image_features(torch.cat(xs)).float()
            with self.autocast():
                tf = self.prompt.text_features(self.clip).float()
            s = {n: L.backlit_probability_from_features(feats[i * b:(i + 1) * b], tf) for i, n in enumerate(names)}
            raw = L.ranking_loss(s, self.ranking.terms)
            loss = raw * (L.PROMPT_LOSS_SCALE * share)
            for n, v in s.items():
                extra[f"S_{n}_sum"] = v.detach().sum()
            params, opt = self._trained_by(kind)
        opt.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        distmod.all_reduce_grads(self.info, params)
        if self.scaler.is_enabled():
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        return loss.detach().float(), extra

    def _trained_by(self, kind: str):
        """(the parameters a step of ``kind`` trains, their optimiser)."""
        if kind in ("reconstruction", "enhance"):
            return list(self.net.parameters()), self.opt_net
        return [self.prompt.embeddings], self.opt_prompt

    # ------------------------------------------------------------------ phases
    def _set_trainable(self, kind: str) -> None:
        net_on = kind in ("reconstruction", "enhance")
        self.net.requires_grad_(net_on)
        self.net.train(net_on)
        self.prompt.embeddings.requires_grad_(not net_on)

    def train(self) -> None:
        """Run the schedule's steps until its budget is spent."""
        cfg = self.cfg
        sched = self.sched
        key = None
        batches = None
        while (step := sched.next_step()) is not None:
            if (step.kind, step.round) != key:
                key = (step.kind, step.round)
                batches = None
                self.begin_phase(step)
                self.progress.start(phase_title(step.kind, step.round), step.length, step.iteration - 1)
                t_last, n_since = time.perf_counter(), 0
            batch = next(batches, None) if batches is not None else None
            if batch is None or _batch_place(batch) != _step_place(step):  # a new epoch, or a restarted phase
                batches = iter(self.loader(step))
                batch = next(batches)
            loss_c, extra = self.step(step, batch)
            keys = sorted(extra)
            vec = torch.stack([loss_c] + [extra[k].float().reshape(()) for k in keys])
            vals = distmod.all_reduce_sum(self.info, vec).tolist()
            loss = vals[0]
            stats = dict(zip(keys, vals[1:]))
            self.pos["global_step"] += 1
            n_since += batch.global_size
            title = phase_title(step.kind, step.round)
            if not math.isfinite(loss):
                raise TrainerError(f"{title}: the loss became {loss} at iteration {step.iteration}; "
                                   f"lower the learning rate or check the images")
            record = self._record(step, loss, stats, batch.global_size)
            rule_psnr = record.get("psnr_y" if cfg.psnr_channel == "y" else "psnr")
            ev = sched.record(loss, rule_psnr)
            now = time.perf_counter()
            ips = n_since / max(now - t_last, 1e-9)
            if step.iteration % cfg.log_every == 0 or ev.phase_end:
                record["img_s"] = round(ips, 3)
                self.log.write(record)
                t_last, n_since = now, 0
            if ev.snapshot:
                self.best_iter = step.iteration
                self.best_state = self._model_state(step.kind)
            self.progress.update(loss, ips, f"best at {self.best_iter}" if self.best_iter else "")
            if ev.extended:
                self._extended(step, loss, ev.extended)
            if ev.reinit:
                self._reinit(step, ev, rule_psnr)
                if ev.restart:
                    self._fresh_phase_state()
                    self.progress.start(title, step.length, 0)
                    continue
            if (ev.extended or ev.reinit) and not ev.phase_end:
                self.progress.grow(self._length_now(step) - step.length)
            if ev.phase_end:
                self.progress.close()
                self.end_phase(step, ev)
                key = None
            elif step.iteration % cfg.save_every == 0:
                self.save()

    def begin_phase(self, step: Step) -> None:
        self._set_trainable(step.kind)
        if step.kind == "prompt":
            self.ranking = self.sched.ranking
        if step.iteration == 1:
            what = ""
            if step.kind == "prompt":
                what = " (" + ", ".join(self.ranking.describe(step.round)) + ")"
            self.say(f"== {phase_title(step.kind, step.round)}: {step.length} iterations{what}")

    def _record(self, step: Step, loss: float, stats: dict, gsize: int) -> dict:
        rec = {"step": int(self.pos["global_step"]), "phase": step.kind, "round": step.round,
               "iter": step.iteration, "images": gsize, "loss": loss}
        if step.kind in ("reconstruction", "enhance"):
            rec["psnr"] = stats["psnr_sum"] / gsize
            rec["psnr_y"] = stats["psnr_y_sum"] / gsize
            rec["light_mean"] = stats["light_mean_sum"] / gsize
            if step.kind == "enhance":
                rec["clip"], rec["identity"] = stats["clip"], stats["identity"]
        elif step.kind == "prompt_init":
            rec["accuracy"] = stats["correct"] / gsize
        else:
            for k, v in stats.items():
                rec[k[:-4]] = v / gsize  # S_backlit, S_welllit, S_current, S_previous (batch means)
        rec["lr"] = self.cfg.prompt_lr if step.kind in ("prompt_init", "prompt") else self.cfg.lr
        return rec

    def _length_now(self, step: Step) -> int:
        """The phase's length as planned after an extension or a re-initialisation of ``step``."""
        nxt = self.sched.next_step()
        same = nxt is not None and (nxt.kind, nxt.round) == (step.kind, step.round)
        return nxt.length if same else step.iteration

    def _extended(self, step: Step, loss: float, by: int) -> None:
        cfg = self.cfg
        thre = cfg.thre_train if step.kind in ("reconstruction", "enhance") else cfg.thre_prompt
        n = self.sched.state.get("extensions", 0)
        self.log.write({"step": int(self.pos["global_step"]), "event": "extend", "phase": step.kind,
                        "round": step.round, "by": by, "length": self._length_now(step), "last_loss": loss,
                        "extension": n})
        self.say(f"   {phase_title(step.kind, step.round)}: loss {loss:.4g} > {thre:g} at iteration "
                 f"{step.iteration}; {by} more iterations (extension {n})")

    def _reinit(self, step: Step, ev, rule_psnr: float) -> None:
        n = self.sched.reinits
        self.log.write({"step": int(self.pos["global_step"]), "phase": step.kind, "round": 0,
                        "event": "reinit", "reinits": n, "psnr": rule_psnr})
        if ev.error:
            raise TrainerError(ev.error)
        for note in ev.notes:
            self.warn(f"reconstruction: {note}")
        init_enhancer_weights(self.net, seed_for(self.cfg.seed, PHASE_CODES["reinit"], n), self.cfg.init_scheme)
        distmod.broadcast_tensors(self.info, self.net.parameters())
        self.opt_net = self._new_net_optimizer()

    def end_phase(self, step: Step, ev) -> None:
        """Result set, hand-off, per-round outputs and a checkpoint at the end of a phase."""
        best = self.best_state
        handoff_best = self.cfg.handoff == "best" and best is not None
        if step.kind == "enhance" and ev.results_into is not None:
            final = None
            if best is not None:
                if not handoff_best:
                    final = self._model_state(step.kind)
                self._load_model_state(step.kind, best)
            self.results[ev.results_into] = self.enhance_backlit_set()
            if final is not None:
                self._load_model_state(step.kind, final)
            keep = set(self.sched.kept_sets())
            for r in list(self.results):
                if r not in keep:
                    del self.results[r]
            if self.main:
                statemod.save_results(self.out, ev.results_into, self.results[ev.results_into])
                statemod.prune_results(self.out, keep)
        elif handoff_best:
            self._load_model_state(step.kind, best)
        if handoff_best:
            self.say(f"   {phase_title(step.kind, step.round)}: carrying the best state (iteration "
                     f"{self.best_iter}) into the next phase")
        self._fresh_phase_state()
        if step.kind == "prompt" and ev.completed:
            self.pos["rounds_completed"] = max(int(self.pos.get("rounds_completed", 0)), step.round)
        nxt = self.sched.next_step()
        if (nxt is None or nxt.round != step.round) and self.main:
            self.round_outputs(step.round)
        self.save()

    # ------------------------------------------------------------------ results and outputs
    @torch.no_grad()
    def enhance_images(self, x: torch.Tensor, batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(results, light maps) of float images [N, 3, S, S] (CPU), enhanced batch by batch."""
        was = self.net.training
        self.net.eval()
        batch = batch or max(1, self.cfg.prompt_batch_size)
        outs, lights = [], []
        for i in range(0, len(x), batch):
            xb = self._to_dev(x[i:i + batch].float())
            with self.autocast():
                light = enhancer_forward(self.net, xb)
            outs.append(apply_training_light(xb, light).cpu())
            lights.append(light.float().cpu())
        self.net.train(was)
        return torch.cat(outs), torch.cat(lights)

    def enhance_backlit_set(self) -> torch.Tensor:
        """I_t: every training backlit image enhanced at --prompt-image-size, rounded to uint8
        like the authors' saved PNGs."""
        res, _ = self.enhance_images(self.backlit.images[self.cfg.prompt_image_size])
        return torch.floor(res * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)

    def round_outputs(self, round_: int) -> None:
        k = min(SAMPLE_COUNT, len(self.backlit))
        x = self.backlit.images[self.cfg.prompt_image_size][:k].float()
        res, light = self.enhance_images(x)
        tag = f"round_{round_:02d}" if round_ else "initial"
        sample_grid(x, res, light, self.out / "samples" / f"{tag}.png")
        plot_losses(read_log(self.out / LOG_NAME), self.out / "plots" / f"loss_{tag}.png")
        self.write_output(round_)

    def output_metadata(self, rounds_done: int) -> dict:
        cfg = self.cfg
        return {
            "trainer": "cliplit trainer", "trainer_version": TRAINER_VERSION,
            "identity_model": self.ident.metadata_name, "identity_pretrained": self.ident.pretrained,
            "backlit_images": len(self.backlit), "welllit_images": len(self.welllit),
            "backlit_skipped": len(self.backlit.skipped), "welllit_skipped": len(self.welllit.skipped),
            "recipe": cfg.recipe, "recipe_overrides": json.dumps(recipemod.overrides(cfg), sort_keys=True),
            "epochs": cfg.epochs, "prompt_init_iters": cfg.prompt_init_iters,
            "reconstruction_iters": cfg.reconstruction_iters,
            "enhance_iters": cfg.enhance_iters, "prompt_iters": cfg.prompt_iters,
            "rounds": cfg.rounds, "rounds_completed": rounds_done, "reinitialisations": self.sched.reinits,
            "total_iterations": int(self.pos["global_step"]),
            "image_size": cfg.image_size, "prompt_image_size": cfg.prompt_image_size,
            "batch_size": cfg.batch_size, "prompt_batch_size": cfg.prompt_batch_size,
            "lr": cfg.lr, "prompt_lr": cfg.prompt_lr, "weight_decay": cfg.weight_decay,
            "margins": " ".join(str(m) for m in cfg.margins), "ranking": cfg.ranking, "handoff": cfg.handoff,
            "seed": cfg.seed,
            "init_enhancer": cfg.init_enhancer, "init_prompt": cfg.init_prompt,
        }

    def write_output(self, rounds_done: int) -> Path:
        path = self.out / OUTPUT_NAME
        self.prompt.save(path, enhancer=self.net.state_dict(), padding=self.cfg.padding,
                         metadata=self.output_metadata(rounds_done))
        return path

    # ------------------------------------------------------------------ main loop
    def check_plan(self) -> tuple[list[dict], dict]:
        """The plan from the start (one record per phase, a summary); refused when it trains no
        enhancement network, unless --allow-untrained (then said as a warning)."""
        nb, nw = len(self.backlit), len(self.welllit)
        plan, summary = plan_phases(recipemod.make_schedule(self.cfg, nb, nw), limit=PLAN_LOG_LIMIT)
        untrained = untrained_note(self.cfg, plan, summary, nb, nw)
        if untrained is not None:
            if not self.cfg.allow_untrained:
                raise TrainerError(f"{untrained[0]}; --allow-untrained runs it and writes that network anyway")
            self.warn(f"{untrained[0]}; running it as --allow-untrained asks")
        return plan, summary

    def run(self) -> Path:
        self.load_data()  # errors about the data and the budget come before any model loads
        plan, summary = self.check_plan()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.out)  # what a killed run was writing (only files it provably made)
        self.load_models()
        self.results: dict[int, torch.Tensor] = {}
        self._fresh_phase_state()
        if self.ck is not None and "schedule" not in self.ck:
            raise TrainerError(f"{self.ck.get('_path')}: written by an older trainer (version "
                               f"{self.ck.get('trainer_version')}); start a new run in another --out")
        if self.ck is not None and self.cfg.recipe == "authors" and self.ck.get("trainer_version") == "2":
            self.warn("the checkpoint was written by trainer version 2, whose --recipe authors read full batches "
                      "from a stream: from here on the batches come from epoch loaders, so the resumed run will "
                      "not reproduce an uninterrupted one")
        state = self.ck.get("schedule") if self.ck is not None else None
        self.sched = recipemod.make_schedule(self.cfg, len(self.backlit), len(self.welllit), state)
        self.ranking = None
        if self.ck is not None:
            self.restore(self.ck)
            if self.main:
                dropped = truncate_log(self.out / LOG_NAME, int(self.pos["global_step"]))
                self.say(f"resuming from {self.ck.get('_path')} at step {self.pos['global_step']}"
                         + (f"; dropped {dropped} log records written after it" if dropped else ""))
        else:
            self.pos = {"global_step": 0, "rounds_completed": 0}
            if self.main:
                (self.out / LOG_NAME).unlink(missing_ok=True)
        distmod.barrier(self.info)
        self.log = JsonlLog(self.out / LOG_NAME if self.main else None)
        cfg = self.cfg
        if self.ck is not None:
            self.log.write({"step": int(self.pos["global_step"]), "event": "resume", "device": str(self.dev),
                            "world_size": self.info.world})
        else:
            self.log.write({"step": 0, "event": "start", "config": cfg.to_dict(),
                            "backlit_images": len(self.backlit), "welllit_images": len(self.welllit),
                            "backlit_skipped": len(self.backlit.skipped),
                            "welllit_skipped": len(self.welllit.skipped), "world_size": self.info.world,
                            "device": str(self.dev), "plan": [phase_title(p["phase"], p["round"]) for p in plan],
                            "planned_iters": None if summary.get("truncated") else summary["total_iters"]})
        try:
            if self.sched.next_step() is None and self.ck is not None:
                self.say("nothing left to train")
            self.train()
            out = self.out / OUTPUT_NAME
            if self.main:
                rounds_done = int(self.pos.get("rounds_completed", 0))
                if not out.exists():
                    self.round_outputs(rounds_done)
                else:
                    out = self.write_output(rounds_done)
                self.log.write({"step": int(self.pos["global_step"]), "event": "done", "output": str(out)})
                self.say(f"done: {out}")
            distmod.barrier(self.info)
            return out
        finally:
            self.progress.close()
            self.log.close()

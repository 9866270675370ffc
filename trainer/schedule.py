"""The training schedule: which phase every iteration belongs to, when a phase grows or
ends, when the network is re-initialised, and what the prompt refinement ranks.

Two recipes (see docs/training.md for the full comparison):

* :class:`AuthorsSchedule` -- the control flow of the authors' ``train.py``, kept as a
  resumable state machine. The budget is counted in their epochs (one pass of the
  current phase's loader); phases grow while their loss stays above a threshold; the
  reconstruction re-initialises the network and grows by 100 iterations while its
  Y-channel PSNR stays low; the refinement ranks backlit > I_t > I_{t-1} > well-lit.
* :class:`PaperSchedule` -- the paper's description: a fixed number of rounds of fixed
  length, the best state of each phase carried on, the paper's ranking order.

Both expose the same small interface to the trainer:

``next_step()``
    the :class:`Step` to run next (its phase, round, iteration, length), or ``None``
    when the budget is spent. Idempotent until ``record`` is called.
``record(loss, psnr)``
    the outcome of that step; returns the :class:`Events` it caused.
``ranking``
    the :class:`Ranking` of the current refinement phase.
``state`` / ``from_state``
    a JSON-able dict, stored in the checkpoint, that resumes the schedule exactly.

The schedule holds no tensors and never touches a model: the trainer runs the
steps, and the replay test drives the same machine with a scripted loss trace.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

KINDS = ("prompt_init", "reconstruction", "enhance", "prompt")
BACKLIT, WELLLIT = "backlit", "welllit"
PHASE_TITLES = {"prompt_init": "prompt init", "reconstruction": "reconstruction", "enhance": "enhance",
                "prompt": "prompt refine"}


def phase_title(kind: str, round_: int) -> str:
    """How logs, headers and messages name a phase: ``prompt init``, ``enhance r3`` ..."""
    t = PHASE_TITLES[kind]
    return f"{t} r{round_}" if round_ else t


LOADERS = ("train", "init", "refine")  # the authors' three loaders: backlit (reconstruction and enhancement),
# both folders mixed (prompt initialisation), backlit paired with well-lit (refinement)


@dataclass(frozen=True)
class BatchSlot:
    """Where a step's batch lies in the authors' epoch loaders (``DataLoader(shuffle=True)``, last
    batch partial): a new shuffle every epoch, and for refinement a new pairing of backlit and
    well-lit images every time their loader is built."""

    loader: str  # one of LOADERS
    epoch: int  # their epoch counter (the outer loop's): the shuffle
    index: int  # the batch within the epoch, 0-based
    build: int = 0  # refinement: how many times their loader was rebuilt before (the pairing)


@dataclass(frozen=True)
class Step:
    kind: str  # one of KINDS
    round: int  # 0 for prompt initialisation and reconstruction
    iteration: int  # 1-based within the phase
    length: int  # iterations the phase runs as planned now (no further extension or re-initialisation)
    slot: BatchSlot | None = None  # authors: the batch's place in their loaders; paper: None (a stream)


@dataclass(frozen=True)
class Ranking:
    """Hinge terms of a refinement loss: ``S(higher) >= S(lower) + margin`` for each
    ``(higher, lower, margin)``; names are ``backlit``, ``welllit`` or a result set's name
    in ``sets`` (name -> the round whose enhancement made it)."""

    terms: tuple[tuple[str, str, float], ...]
    sets: tuple[tuple[str, int], ...] = ()

    def order(self) -> list[str]:
        """The names from most to least backlit (the chain the terms describe)."""
        names = [BACKLIT] + [n for n, _ in self.sets] + [WELLLIT]
        depth = dict.fromkeys(names, 0)
        for _ in names:  # longest chain above each name
            for hi, lo, _m in self.terms:
                depth[lo] = max(depth[lo], depth[hi] + 1)
        return sorted(names, key=lambda n: depth[n])

    def describe(self, round_: int) -> list[str]:
        label = {n: ("I_t" if r == round_ else "I_t-1" if r == round_ - 1 else f"I_r{r}") for n, r in self.sets}
        return [f"{label.get(hi, hi)} > {label.get(lo, lo)} + {m:g}" for hi, lo, m in self.terms]


@dataclass
class Events:
    snapshot: bool = False  # the model now is the phase's new best (keep a copy)
    extended: int = 0  # the phase just grew by this many iterations
    reinit: bool = False  # start a new random network (and a new optimiser)
    restart: bool = False  # ... and run the phase again from its first iteration
    phase_end: bool = False  # this was the phase's last iteration
    completed: bool = False  # ... and the phase ran to its own end (not cut short by the budget)
    results_into: int | None = None  # at an enhancement phase's end: make result set I_<round> from the snapshot
    error: str | None = None  # the run cannot go on (the re-initialisation limit was reached)
    notes: list[str] = field(default_factory=list)


def _ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


@dataclass(frozen=True)
class LoaderSizes:
    """Batches per epoch of each of the authors' loaders (``drop_last`` is off)."""

    enhance: int  # backlit images / batch size
    prompt_init: int  # 2 * max(backlit, well-lit) / prompt batch size
    refine: int  # max(backlit, well-lit) / prompt batch size

    @classmethod
    def of(cls, n_backlit: int, n_welllit: int, batch: int, prompt_batch: int) -> "LoaderSizes":
        longer = max(n_backlit, n_welllit)
        return cls(_ceil_div(n_backlit, batch), _ceil_div(2 * longer, prompt_batch), _ceil_div(longer, prompt_batch))


@dataclass(frozen=True)
class AuthorsParams:
    """The constants of the authors' schedule (each one an option of the trainer)."""

    epochs: int  # budget in epochs: their loop always ends there
    rounds: int | None  # also a budget in complete rounds (whichever ends first); None: epochs only
    prompt_init_iters: int
    reconstruction_iters: int
    enhance_iters: int
    prompt_iters: int
    thre_train: float = 90.0
    thre_prompt: float = 60.0
    enhance_extension: int = 60
    prompt_extension: int = 100
    max_extensions: int | None = None  # per phase (prompt init shares its count with its round-0 spill); None: no limit
    reinit_psnr: float = 8.0
    reinit_after: int = 100
    reinit_extension: int = 100
    max_reinits: int | None = None
    best_window: int = 30
    best_every: int = 20
    margin_no_results: float = 1.0  # their four_margin_loss(1.0, 0.2) before any result set exists
    margins: tuple[float, float, float] = (0.9, 0.2, 0.1)  # large; small with one result set; small with two
    ranking: str = "authors"

    def __post_init__(self):
        if self.epochs is None:  # phases grow without a cap while the loss stays high: only epochs end them
            raise ValueError("the authors' schedule needs an epoch budget (their loop always ends at num_epochs)")


class AuthorsSchedule:
    """The authors' ``train.py`` control flow. Variable names follow theirs: ``cur`` is the
    iteration within the current round (or initial stage), ``total`` the global iteration,
    ``train_thre`` / ``total_thre`` where the network phase and the prompt phase end."""

    recipe = "authors"
    measure_lengths = True  # Step.length; off in the copies that measure it, and in plan_phases

    def __init__(self, p: AuthorsParams, sizes: LoaderSizes, state: dict | None = None):
        self.p = p
        self.sizes = sizes
        self.s = copy.deepcopy(state) if state is not None else {
            "epoch": 0, "loop": None, "pos": 0, "cur": 0, "total": 0, "train_thre": 0, "total_thre": 0,
            "recon": int(p.reconstruction_iters), "recon_iter": 0, "ring": [0.0] * p.best_window, "ptr": 0,
            "max_score": -10000.0, "slots": [None, None], "pr": 0, "round": 0,
            "ranking": [[BACKLIT, WELLLIT, p.margins[0]]], "ranking_sets": [],
            "phase": None, "phase_iter": 0, "extensions": 0, "reinits": 0, "snapshot": False,
        }

    # ------------------------------------------------------------------ helpers
    @property
    def state(self) -> dict:
        return copy.deepcopy(self.s)

    @property
    def ranking(self) -> Ranking:
        return Ranking(tuple((hi, lo, float(m)) for hi, lo, m in self.s["ranking"]),
                       tuple((n, int(r)) for n, r in self.s["ranking_sets"]))

    @property
    def reinits(self) -> int:
        return int(self.s["reinits"])

    def _kind(self) -> str:
        s, P = self.s, self.p.prompt_init_iters
        if s["loop"] == "init":
            return "prompt_init"
        if s["loop"] == "refine":
            return "prompt"
        return "reconstruction" if s["total"] < s["recon"] + P else "enhance"

    def _start_epoch(self) -> str:
        """Their epoch head: "loop" (a loop starts), "reset" (this epoch closed a round and ran
        no step) or "done" (a budget in rounds is spent)."""
        s, p = self.s, self.p
        P, R = p.prompt_init_iters, s["recon"]
        if s["total"] < P:
            s["train_thre"], s["total_thre"] = 0, P
        elif s["total"] < R + P:
            s["train_thre"], s["total_thre"] = R, R
        elif s["cur"] == 0:
            if p.rounds is not None and s["round"] >= p.rounds:
                return "done"
            s["train_thre"], s["total_thre"] = p.enhance_iters, p.enhance_iters + p.prompt_iters
            s["round"] += 1
        if s["cur"] + 1 <= s["train_thre"]:
            s["loop"] = "train"
        elif s["cur"] + 1 >= s["total_thre"]:
            stalled = s["cur"] == 0  # a reset with nothing to reset: every later epoch is the same
            s.update(cur=0, train_thre=0, total_thre=0, max_score=-10000.0, ring=[0.0] * p.best_window)
            s["epoch"] += 1
            s["resets"] = s.get("resets", 0) + 1
            return "stalled" if stalled else "reset"
        elif s["total"] < P:
            s["loop"] = "init"
        else:
            if s["cur"] + 1 == s["train_thre"] + 1:
                self._set_up_refinement()
            s["loop"] = "refine"
        s["pos"] = 0
        return "loop"

    def _set_up_refinement(self) -> None:
        s, p = self.s, self.p
        if s["total"] + 1 > p.prompt_init_iters:
            s["pr"] = 1 - s["pr"]
        slots, pr = s["slots"], s["pr"]
        if slots[0] is None:
            sets = []  # their loader is not rebuilt then: it has no result sets in any reachable case
        elif slots[1] is None:
            sets = [slots[0]]
        else:
            sets = [slots[1 - pr], slots[pr]]
        if sets:  # their loader is rebuilt: backlit and well-lit images are paired anew
            s["build"] = s.get("build", 0) + 1
        rk = build_ranking(p.ranking, sets, p.margins, p.margin_no_results)
        s["ranking"] = [list(t) for t in rk.terms]
        s["ranking_sets"] = [list(t) for t in rk.sets]

    # ------------------------------------------------------------------ interface
    def next_step(self) -> Step | None:
        s = self.s
        while s["loop"] is None:
            if s["epoch"] >= self.p.epochs:
                return None
            head = self._start_epoch()
            if head == "done":  # changes nothing: a larger --rounds can resume from here
                return None
            if head == "stalled":  # their loop would spend the rest of its epochs on empty resets
                s["epoch"] = self.p.epochs
                return None
        kind = self._kind()
        rnd = s["round"] if kind in ("enhance", "prompt") else 0
        if s["phase"] != [kind, rnd]:
            # --max-extensions counts per phase; the round-0 refinement steps are the rest of a prompt
            # initialisation's extension (their loop moves on to its refinement loader): the same count
            spill = s["phase"] == ["prompt_init", 0] and [kind, rnd] == ["prompt", 0]
            s.update(phase=[kind, rnd], phase_iter=0, snapshot=False, length=None)
            if not spill:
                s["extensions"] = 0
        if s.get("length") is None:  # at the phase's start, and after an extension or a re-initialisation
            s["length"] = s["phase_iter"] + self._iterations_left() if self.measure_lengths else 0
        slot = BatchSlot(s["loop"], s["epoch"], s["pos"], s.get("build", 0))
        return Step(kind, rnd, s["phase_iter"] + 1, s["length"], slot)

    def kept_sets(self) -> list[int]:
        return [r for r in self.s["slots"] if r is not None]

    def _iterations_left(self) -> int:
        """Iterations the current phase runs from here when no step extends it or re-initialises the
        network: a copy of the machine runs them. (Their corners make any formula wrong: a reset
        epoch that comes one iteration early, a prompt initialisation restarted by one, a
        reconstruction split by a reset.)"""
        probe = AuthorsSchedule(self.p, self.sizes, self.s)
        probe.measure_lengths = False
        n = 0
        while (step := probe.next_step()) is not None and [step.kind, step.round] == self.s["phase"]:
            probe.record(-math.inf, math.inf)
            n += 1
        return n

    def record(self, loss: float, psnr: float | None = None) -> Events:
        s, p = self.s, self.p
        ev = Events()
        kind = self._kind()
        s["phase_iter"] += 1
        broke = False
        if s["loop"] == "train":
            P = p.prompt_init_iters
            if s["total"] < s["recon"] + P:
                s["ring"][s["ptr"]] = float(psnr if psnr is not None else 0.0)
                s["recon_iter"] += 1
                reinit = sum(s["ring"]) / len(s["ring"]) < p.reinit_psnr and s["recon_iter"] > p.reinit_after
            else:
                s["ring"][s["ptr"]] = -float(loss)
                reinit = False
            s["ptr"] = (s["ptr"] + 1) % len(s["ring"])
            mean = sum(s["ring"]) / len(s["ring"])
            if mean > s["max_score"] and (s["total"] + 1) % p.best_every == 0:
                s["max_score"] = mean
                if s["total"] > s["recon"] + P:
                    s["slots"][s["pr"]] = s["round"]
                    s["snapshot"] = True
                    ev.snapshot = True
            if reinit:
                s["reinits"] += 1
                if p.max_reinits is not None and s["reinits"] > p.max_reinits:
                    ev.error = (f"reconstruction failed: the Y-channel PSNR stayed below {p.reinit_psnr:g} dB "
                                f"({mean:.2f} dB) after {p.max_reinits} re-initialisations; try another --seed, "
                                f"a different --lr, or --init-enhancer authors-init")
                s["recon_iter"] = 0
                s["recon"] += p.reinit_extension
                ev.reinit = True
                ev.notes.append(f"mean Y-PSNR {mean:.2f} dB < {p.reinit_psnr:g} dB: new random network, "
                                f"+{p.reinit_extension} reconstruction iterations")
            if s["cur"] + 1 == s["train_thre"] and s["total"] > s["recon"] + P and loss > p.thre_train \
                    and self._may_extend():
                s["train_thre"] += p.enhance_extension
                s["total_thre"] += p.enhance_extension
                ev.extended = p.enhance_extension
            elif s["cur"] + 1 == s["train_thre"]:
                broke = True
        else:
            if s["cur"] + 1 == s["total_thre"] and loss > p.thre_prompt and self._may_extend():
                s["total_thre"] += p.prompt_extension
                ev.extended = p.prompt_extension
            elif s["cur"] + 1 == s["total_thre"]:
                broke = True
        if ev.extended:
            s["extensions"] += 1
        if ev.extended or ev.reinit:
            s["length"] = None  # measured again at the next step
        s["cur"] += 1
        s["total"] += 1
        s["pos"] += 1
        loop_size = {"train": self.sizes.enhance, "init": self.sizes.prompt_init, "refine": self.sizes.refine}[s["loop"]]
        if broke or s["pos"] >= loop_size:
            s["loop"] = None
            s["epoch"] += 1
        # does the phase end here? (the next step is of another phase, or there is none)
        if s["loop"] is None or self._kind() != kind:
            ev.phase_end, closed = self._phase_ends_after(kind)
            ev.completed = ev.phase_end and (broke or closed)
        if ev.phase_end and kind == "enhance" and s["snapshot"]:
            ev.results_into = s["round"]
        return ev

    def _may_extend(self) -> bool:
        return self.p.max_extensions is None or self.s["extensions"] < self.p.max_extensions

    def _phase_ends_after(self, kind: str) -> tuple[bool, bool]:
        """(the phase ends after this step, a reset epoch closes it before the next step)."""
        probe = object.__new__(AuthorsSchedule)  # next_step only rebinds keys: a shallow copy is enough
        probe.p, probe.sizes, probe.s, probe.measure_lengths = self.p, self.sizes, dict(self.s), False
        nxt = probe.next_step()
        closed = probe.s.get("resets", 0) > self.s.get("resets", 0)
        if nxt is None:
            return True, closed
        return (nxt.kind, nxt.round) != (kind, self.s["phase"][1]), closed


@dataclass(frozen=True)
class PaperParams:
    rounds: int | None
    prompt_init_iters: int
    reconstruction_iters: int
    enhance_iters: int
    prompt_iters: int
    margins: tuple[float, float, float] = (0.9, 0.2, 0.2)
    margin_no_results: float = 0.9
    ranking: str = "paper"
    reinit_psnr: float = 8.0
    reinit_after: int = 100
    max_reinits: int | None = 5
    best_window: int = 30
    psnr_window: int = 30


def build_ranking(style: str, sets: list[int], margins, margin_no_results: float) -> Ranking:
    """The refinement loss for the result sets at hand (rounds that made them; for two sets,
    in the authors' loader order: their ``semi1`` then ``semi2``, the newer one first in
    every normal run). ``style``: ``authors`` ranks backlit > I_t > I_t-1 > well-lit with
    margins M0, M2, M2; ``paper`` ranks backlit > I_t-1 > I_t > well-lit with margins M0,
    M2, M1. With one set both rank backlit > I_t > well-lit (M0, M1)."""
    m0, m1, m2 = (float(m) for m in margins)
    if not sets:
        return Ranking(((BACKLIT, WELLLIT, float(margin_no_results)),))
    if len(sets) == 1:
        return Ranking(((BACKLIT, WELLLIT, m0), (BACKLIT, "current", m0), ("current", WELLLIT, m1)),
                       (("current", int(sets[0])),))
    first, second = int(sets[0]), int(sets[1])
    a, b = ("current", "previous") if first >= second else ("previous", "current")
    named = ((a, first), (b, second))
    if style == "authors":
        return Ranking(((BACKLIT, WELLLIT, m0), (BACKLIT, a, m0), (a, b, m2), (b, WELLLIT, m2)), named)
    return Ranking(((BACKLIT, WELLLIT, m0), (BACKLIT, "previous", m0), ("current", WELLLIT, m1),
                    ("previous", "current", m2)), named)


class PaperSchedule:
    """Fixed phases: prompt initialisation, reconstruction, then ``rounds`` x (enhancement,
    refinement). Each phase's best state (lowest mean loss over the last ``best_window``
    iterations) is carried on. Reconstruction restarts from a new network while its RGB PSNR
    stays low, at most ``max_reinits`` times."""

    recipe = "paper"

    def __init__(self, p: PaperParams, sizes: LoaderSizes, state: dict | None = None):
        self.p = p
        self.sizes = sizes
        self.plan = self.build_plan(p)
        self.s = copy.deepcopy(state) if state is not None else {
            "index": 0, "iteration": 0, "reinits": 0, "window": [], "psnr_window": [], "best": math.inf,
            "sets": []}

    @staticmethod
    def build_plan(p: PaperParams) -> list[tuple[str, int, int]]:
        plan = []
        if p.prompt_init_iters > 0:
            plan.append(("prompt_init", 0, p.prompt_init_iters))
        if p.reconstruction_iters > 0:
            plan.append(("reconstruction", 0, p.reconstruction_iters))
        for r in range(1, (p.rounds or 0) + 1):
            if p.enhance_iters > 0:
                plan.append(("enhance", r, p.enhance_iters))
            if p.prompt_iters > 0:
                plan.append(("prompt", r, p.prompt_iters))
        return plan

    @property
    def state(self) -> dict:
        return copy.deepcopy(self.s)

    @property
    def reinits(self) -> int:
        return int(self.s["reinits"])

    def kept_sets(self) -> list[int]:
        return list(self.s["sets"])

    @property
    def ranking(self) -> Ranking:
        kind, rnd, _ = self.plan[self.s["index"]]
        sets = [r for r in self.s["sets"] if r <= rnd][-2:][::-1]
        return build_ranking(self.p.ranking, sets, self.p.margins, self.p.margin_no_results)

    def next_step(self) -> Step | None:
        s = self.s
        if s["index"] >= len(self.plan):
            return None
        kind, rnd, n = self.plan[s["index"]]
        return Step(kind, rnd, s["iteration"] + 1, n)

    def record(self, loss: float, psnr: float | None = None) -> Events:
        s, p = self.s, self.p
        kind, rnd, n = self.plan[s["index"]]
        ev = Events()
        s["iteration"] += 1
        it = s["iteration"]
        s["window"] = (s["window"] + [float(loss)])[-p.best_window:]
        win = min(p.best_window, n)
        if len(s["window"]) >= win:
            avg = sum(s["window"][-win:]) / win
            if avg < s["best"]:
                s["best"] = avg
                ev.snapshot = True
        if kind == "reconstruction":
            s["psnr_window"] = (s["psnr_window"] + [float(psnr if psnr is not None else 0.0)])[-p.psnr_window:]
            if it >= max(1, p.reinit_after) and sum(s["psnr_window"]) / len(s["psnr_window"]) < p.reinit_psnr:
                mean = sum(s["psnr_window"]) / len(s["psnr_window"])
                s["reinits"] += 1
                if p.max_reinits is not None and s["reinits"] > p.max_reinits:
                    ev.error = (
                        f"reconstruction failed: the output PSNR stayed below {p.reinit_psnr:g} dB ({mean:.2f} dB) "
                        f"after {p.max_reinits} re-initialisations; try another --seed, more "
                        f"--reconstruction-iters, a different --lr, or --init-enhancer official")
                ev.reinit = ev.restart = True
                ev.notes.append(f"mean PSNR {mean:.2f} dB < {p.reinit_psnr:g} dB after {it} iterations; "
                                f"re-initialising the network ({s['reinits']} of at most {p.max_reinits})")
                s.update(iteration=0, window=[], psnr_window=[], best=math.inf)
                return ev
        if it >= n:
            ev.phase_end = ev.completed = True
            if kind == "enhance":
                ev.results_into = rnd
                s["sets"] = (s["sets"] + [rnd])[-2:]
            s.update(index=s["index"] + 1, iteration=0, window=[], psnr_window=[], best=math.inf)
        return ev


def plan_phases(schedule, limit: int | None = None) -> tuple[list[dict], dict]:
    """Run ``schedule`` with a loss trace that never extends a phase or re-initialises the
    network; return one record per phase and a summary (``limit``: stop after that many
    iterations, with ``"truncated": true`` in the summary). Needs no model and no image."""
    phases: list[dict] = []
    total = 0
    completed_rounds = set()
    schedule.measure_lengths = False  # it counts them
    while (step := schedule.next_step()) is not None:
        if limit is not None and total >= limit:
            return phases, {"total_iters": total, "truncated": True}
        if not phases or (phases[-1]["phase"], phases[-1]["round"]) != (step.kind, step.round):
            rec = {"phase": step.kind, "round": step.round, "iters": 0, "first_step": total + 1}
            if step.kind == "prompt":
                rk = schedule.ranking
                rec["ranking"] = rk.describe(step.round)
                rec["margins"] = [m for _, _, m in rk.terms]
                rec["ranks"] = [dict(rk.sets).get(n, n) for n in rk.order()]
            phases.append(rec)
        phases[-1]["iters"] += 1
        total += 1
        ev = schedule.record(-math.inf, math.inf)
        if step.kind == "prompt" and step.round >= 1 and ev.completed:
            completed_rounds.add(step.round)
    enhanced = {p["round"] for p in phases if p["phase"] == "enhance"}
    summary = {"total_iters": total, "rounds": len(enhanced & completed_rounds)}
    if hasattr(schedule.s, "get") and "epoch" in schedule.s:
        summary["epochs_used"] = int(schedule.s["epoch"])
    return phases, summary

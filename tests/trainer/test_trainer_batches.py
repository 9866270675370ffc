"""``--recipe authors`` reads the authors' epoch loaders: ``DataLoader(shuffle=True)`` with
``drop_last`` off, so every epoch is a new shuffle of every item and its last batch holds what is
left; their refinement loader pairs backlit and well-lit images once per build of the loader.
Checked on the data module, and through the trainer (stubbed models, real loaders)."""
from __future__ import annotations

import collections

import pytest
import torch

from tests.support.authors_replay import replay
from tests.support.stub_trainer import stub_trainer, trainer_config


def _slot(loader, epoch, index=0, build=0):
    from trainer.schedule import BatchSlot

    return BatchSlot(loader, epoch, index, build)


def _indexed(n):
    """n images of 1 x 1 pixels valued 0 .. n-1."""
    return torch.arange(n, dtype=torch.float16).view(n, 1, 1, 1).expand(n, 3, 1, 1).contiguous()


def _ids(t):
    return [int(v) for v in t[:, 0, 0, 0]]


def _epoch(kind, slot, **kw):
    """Every batch of the slot's epoch, from the data module."""
    from trainer.data import PhaseBatches

    ds = PhaseBatches(kind, seed=3, phase_code=0, round_=0, slot=slot, **kw)
    return [ds[i] for i in range(len(ds))]


# --------------------------------------------------------------------------- one epoch
def test_an_epoch_is_every_image_once_and_its_last_batch_holds_the_rest():
    batches = _epoch("enhance", _slot("train", 5), batch_size=8, backlit=_indexed(380))
    assert [b.global_size for b in batches] == [8] * 47 + [4]
    ids = [i for b in batches for i in _ids(b.tensors["backlit"])]
    assert sorted(ids) == list(range(380))
    assert [(b.epoch, b.iteration) for b in batches[:2]] == [(5, 0), (5, 1)]
    again = _epoch("enhance", _slot("train", 5), batch_size=8, backlit=_indexed(380))
    assert ids == [i for b in again for i in _ids(b.tensors["backlit"])]  # a function of the seed and epoch
    other = _epoch("enhance", _slot("train", 6), batch_size=8, backlit=_indexed(380))
    assert ids != [i for b in other for i in _ids(b.tensors["backlit"])]  # each epoch a new shuffle


def test_fewer_images_than_a_batch_make_one_batch_of_each_image():
    """Their loader gives a batch of the images there are; ours made a full batch of copies."""
    (enh,) = _epoch("enhance", _slot("train", 0), batch_size=8, backlit=_indexed(3))
    assert sorted(_ids(enh.tensors["backlit"])) == [0, 1, 2] and enh.global_size == 3 == enh.aug.hflip.shape[0]
    (init,) = _epoch("prompt_init", _slot("init", 0), batch_size=16, backlit=_indexed(2), welllit=_indexed(5))
    labels = init.labels.tolist()
    imgs = _ids(init.tensors["images"])
    assert init.global_size == 10 and labels.count(0) == labels.count(1) == 5
    assert sorted(i for i, lab in zip(imgs, labels) if lab == 0) == [0, 0, 0, 1, 1]  # the shorter list repeated
    assert sorted(i for i, lab in zip(imgs, labels) if lab == 1) == [0, 1, 2, 3, 4]


def test_a_partial_batch_is_shared_between_processes_and_may_leave_one_empty():
    from trainer.data import PhaseBatches

    kw = dict(seed=3, phase_code=0, round_=0, batch_size=2, backlit=_indexed(5), slot=_slot("train", 1, 2))
    (whole,) = [PhaseBatches("enhance", **kw)[0]]
    parts = [PhaseBatches("enhance", rank=r, world=2, **kw)[0] for r in range(2)]
    assert whole.global_size == 1 and [p.local_size for p in parts] == [1, 0]
    assert torch.equal(torch.cat([p.tensors["backlit"] for p in parts]), whole.tensors["backlit"])
    assert all(p.global_size == 1 for p in parts)


# --------------------------------------------------------------------------- refinement pairs
def _pairs(batches):
    return collections.Counter((b, w) for batch in batches for b, w in
                               zip(_ids(batch.tensors["backlit"]), _ids(batch.tensors["welllit"])))


def test_refinement_pairs_are_fixed_per_loader_build():
    """5 backlit, 7 well-lit: their lists are both 7 long (backlit 0 and 1 twice), shuffled once when
    the loader is built; each epoch reshuffles the order, never the pairs."""
    res = {"current": (torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 1, 1) * 10)}
    kw = dict(batch_size=3, backlit=_indexed(5), welllit=_indexed(7), results=res)
    first = _epoch("prompt", _slot("refine", 10, build=2), **kw)
    assert [b.global_size for b in first] == [3, 3, 1]
    pairs = _pairs(first)
    assert sorted(w for _, w in pairs.elements()) == list(range(7))  # every well-lit image once
    assert sorted(b for b, _ in pairs.elements()) == [0, 0, 1, 1, 2, 3, 4]
    for batch in first:  # the result sets follow their backlit image
        assert _ids(batch.tensors["current"]) == [10 * i for i in _ids(batch.tensors["backlit"])]
    later = _epoch("prompt", _slot("refine", 11, build=2), **kw)
    assert [b for batch in later for b in _ids(batch.tensors["backlit"])] != \
        [b for batch in first for b in _ids(batch.tensors["backlit"])]  # a new order ...
    assert _pairs(later) == pairs  # ... of the same pairs
    rebuilt = [_pairs(_epoch("prompt", _slot("refine", 11, build=b), **kw)) for b in (3, 4, 5)]
    assert any(p != pairs for p in rebuilt)  # a new build pairs anew


# --------------------------------------------------------------------------- through the trainer
def quiet(kind, total, images):
    return 40.0 + (total % 7), 30.0


@pytest.mark.slow
@pytest.mark.parametrize("n_backlit, n_welllit", [(3, 5), (21, 13)])
def test_the_trainer_reads_the_epoch_loaders(tmp_path, monkeypatch, n_backlit, n_welllit):
    """Stubbed models, real loaders: every step's batch is the replay's (epoch, index, size), each
    epoch holds every image once, and refinement pairs change only when the loader is rebuilt."""
    kw = dict(num_epochs=200, n_backlit=n_backlit, n_welllit=n_welllit, train_batch_size=8, prompt_batch_size=16)
    want, _ = replay(quiet, **kw, train_thre_len=25, prompt_len=10)
    cfg = trainer_config(tmp_path, kw, enhance_iters=25, prompt_iters=10, batch_size=8, prompt_batch_size=16)
    trainer, got, batches = stub_trainer(cfg, quiet, monkeypatch, n_backlit=n_backlit, n_welllit=n_welllit)
    trainer.run()
    assert got == want
    assert {s.build for s in got if s.kind == "prompt"} >= {1, 2, 3}
    per_epoch = collections.defaultdict(list)
    for step, batch in batches:
        per_epoch[(step.slot.loader, step.slot.build, batch.epoch)].append(batch)
    pairs_of_build = collections.defaultdict(set)
    longer = max(n_backlit, n_welllit)
    for (loader, build, epoch), epoch_batches in per_epoch.items():
        complete = epoch_batches[0].iteration == 0 and epoch_batches[-1].iteration == -(-longer // 16) - 1
        if loader == "train":
            ids = [i for b in epoch_batches for i in _ids(b.tensors["backlit"])]
            assert len(ids) == len(set(ids))  # no copies within an epoch
        if loader == "refine" and complete:
            pairs_of_build[build].add(frozenset(_pairs(epoch_batches).items()))
    assert all(len(p) == 1 for p in pairs_of_build.values())  # one pairing per build ...
    assert len(set.union(*pairs_of_build.values())) > 1  # ... and builds differ

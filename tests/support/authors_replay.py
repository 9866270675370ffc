"""The test oracle for ``--recipe authors``: the control flow of the authors' ``train.py``
(ZhexinLiang/CLIP-LIT), transcribed loop for loop with the networks taken out.

Every variable, condition and loop keeps the shape of their code, so that this file can
be read side by side with theirs. What a step computes is replaced by a scripted
``trace(kind, total_iteration, images) -> (loss, psnr)`` (``images``: the batch's size,
since their identity loss is a batch sum); what the code does is recorded:

* ``steps``: a :class:`Step` for every iteration: ``kind`` is ``prompt_init``,
  ``reconstruction``, ``enhance`` or ``prompt``; ``version`` counts the steps the model
  being trained has taken (a new random network starts at 0), which shows what each phase
  starts from; ``ranking`` (prompt steps only) is the margin loss's terms ``(higher,
  lower, margin)``, a result set named ``v<N>``: made by the network at version N (the
  best snapshot of its enhancement phase); ``epoch`` and ``batch`` say which batch of
  which pass of its loader the step reads, ``images`` how many images (or samples) that
  batch holds, and ``build`` how many times the refinement loader had been rebuilt (each
  build pairs backlit and well-lit images anew);
* ``events``: ``("extend", step, by)``, ``("reinit", step)`` and ``("snapshot", step)``,
  ``step`` being the 1-based global iteration.

Their loaders are ``DataLoader(shuffle=True)`` with ``drop_last`` off: every pass is a new
shuffle of all items, in batches of the batch size but the last, which holds what is left.
Items: the backlit images for the network (batch 8), both lists, the shorter repeated to
the longer one's length, for prompt initialisation (2 * max(backlit, well-lit), batch 16),
and max(...) pairs for the refinement (batch 16).
"""
from __future__ import annotations

from collections import namedtuple

Step = namedtuple("Step", "kind version ranking epoch batch images build")


class _Loader:
    """``DataLoader(dataset, batch_size, shuffle=True)`` over ``items`` items, drop_last off:
    iterating it gives the size of each batch of one pass."""

    def __init__(self, items, batch_size):
        self.items, self.batch_size = items, batch_size

    def __iter__(self):
        for start in range(0, self.items, self.batch_size):
            yield min(self.batch_size, self.items - start)


def replay(trace, *, n_backlit=380, n_welllit=384, train_batch_size=8, prompt_batch_size=16, num_epochs=2000,
           num_clip_pretrained_iters=0, num_reconstruction_iters=0, thre_train=90.0, thre_prompt=60.0,
           display_iter=20, train_thre_len=2100, prompt_len=1000, train_ext=60, prompt_ext=100, recon_ext=100,
           margins=(0.9, 0.2, 0.1), margin_first=1.0):
    """Returns ``(steps, events)`` (see the module docstring)."""
    train_loader = _Loader(n_backlit, train_batch_size)
    longer = max(n_backlit, n_welllit)
    prompt_train_loader_1 = _Loader(2 * longer, prompt_batch_size)
    prompt_train_loader = _Loader(longer, prompt_batch_size)
    builds = 0  # not in their code: how many times prompt_train_loader was rebuilt

    class config:  # noqa: N801 - their name
        pass

    config.num_clip_pretrained_iters = num_clip_pretrained_iters
    config.num_reconstruction_iters = num_reconstruction_iters

    def four_margin_loss(dis1, dis2):
        return dis1, dis2

    steps, events = [], []
    L_margin_loss = four_margin_loss(margins[0], margins[1])
    loader_sets = ()  # result sets of the current prompt_train_loader

    def margin_terms(num):
        big, small = L_margin_loss
        terms = [("backlit", "welllit", big)]
        if num == 3:
            terms += [("backlit", loader_sets[0], big), (loader_sets[0], "welllit", small)]
        elif num == 4:
            terms += [("backlit", loader_sets[0], big), (loader_sets[0], loader_sets[1], small),
                      (loader_sets[1], "welllit", small)]
        return tuple(terms)

    total_iteration = 0
    cur_iteration = 0
    max_score_psnr = -10000
    pr_last_few_iter = 0
    score_psnr = [0] * 30
    semi_path = ['', '']
    pr_semi_path = 0
    rounds = 0
    reconstruction_iter = 0
    reinit_flag = 0
    net_version = prompt_version = 0  # not in their code: what the record shows of the models
    train_thre = total_thre = 0

    for epoch in range(num_epochs):
        if total_iteration < config.num_clip_pretrained_iters:
            train_thre = 0
            total_thre = config.num_clip_pretrained_iters
        elif total_iteration < config.num_reconstruction_iters + config.num_clip_pretrained_iters:
            train_thre = config.num_reconstruction_iters
            total_thre = config.num_reconstruction_iters
        elif cur_iteration == 0:
            train_thre = train_thre_len
            total_thre = train_thre_len + prompt_len
        if cur_iteration + 1 <= train_thre:
            for iteration, images in enumerate(train_loader):
                recon = not (total_iteration >= config.num_reconstruction_iters + config.num_clip_pretrained_iters)
                loss, psnr = trace("reconstruction" if recon else "enhance", total_iteration, images)
                steps.append(Step("reconstruction" if recon else "enhance", net_version, None, epoch, iteration,
                                  images, 0))
                net_version += 1
                if total_iteration < config.num_reconstruction_iters + config.num_clip_pretrained_iters:
                    score_psnr[pr_last_few_iter] = psnr
                    reconstruction_iter += 1
                    if sum(score_psnr) / 30.0 < 8 and reconstruction_iter > 100:
                        reinit_flag = 1
                else:
                    score_psnr[pr_last_few_iter] = -loss
                pr_last_few_iter += 1
                if pr_last_few_iter == 30:
                    pr_last_few_iter = 0
                if (sum(score_psnr) / 30.0) > max_score_psnr and ((total_iteration + 1) % display_iter) == 0:
                    max_score_psnr = sum(score_psnr) / 30.0
                    if total_iteration > config.num_reconstruction_iters + config.num_clip_pretrained_iters:
                        semi_path[pr_semi_path] = f"v{net_version}"
                        events.append(("snapshot", total_iteration + 1))
                if reinit_flag == 1:
                    events.append(("reinit", total_iteration + 1))
                    net_version = 0
                    reconstruction_iter = 0
                    config.num_reconstruction_iters += recon_ext
                    reinit_flag = 0
                if cur_iteration + 1 == train_thre and total_iteration > config.num_reconstruction_iters + \
                        config.num_clip_pretrained_iters and (loss > thre_train):
                    train_thre += train_ext
                    total_thre += train_ext
                    events.append(("extend", total_iteration + 1, train_ext))
                elif cur_iteration + 1 == train_thre:
                    cur_iteration += 1
                    total_iteration += 1
                    break
                cur_iteration += 1
                total_iteration += 1
        elif cur_iteration + 1 >= total_thre:
            cur_iteration = 0
            train_thre = 0
            total_thre = 0
            max_score_psnr = -10000
            score_psnr = [0] * 30
            rounds += 1
        else:
            if total_iteration < config.num_clip_pretrained_iters:
                for iteration, images in enumerate(prompt_train_loader_1):
                    loss, _ = trace("prompt_init", total_iteration, images)
                    steps.append(Step("prompt_init", prompt_version, None, epoch, iteration, images, 0))
                    prompt_version += 1
                    if cur_iteration + 1 == total_thre and loss > thre_prompt:
                        total_thre += prompt_ext
                        events.append(("extend", total_iteration + 1, prompt_ext))
                    elif cur_iteration + 1 == total_thre:
                        cur_iteration += 1
                        total_iteration += 1
                        break
                    cur_iteration += 1
                    total_iteration += 1
            else:
                if cur_iteration + 1 == train_thre + 1:
                    if total_iteration + 1 > config.num_clip_pretrained_iters:
                        pr_semi_path = 1 - pr_semi_path
                    if semi_path[0] == '':
                        L_margin_loss = four_margin_loss(margin_first, margins[1])
                    elif semi_path[1] == '':
                        L_margin_loss = four_margin_loss(margins[0], margins[1])
                        loader_sets = (semi_path[0],)
                        prompt_train_loader = _Loader(longer, prompt_batch_size)
                        builds += 1
                    else:
                        L_margin_loss = four_margin_loss(margins[0], margins[2])
                        loader_sets = (semi_path[1 - pr_semi_path], semi_path[pr_semi_path])
                        prompt_train_loader = _Loader(longer, prompt_batch_size)
                        builds += 1
                for iteration, images in enumerate(prompt_train_loader):
                    loss, _ = trace("prompt", total_iteration, images)
                    steps.append(Step("prompt", prompt_version, margin_terms(2 + len(loader_sets)), epoch, iteration,
                                      images, builds))
                    prompt_version += 1
                    if cur_iteration + 1 == total_thre and loss > thre_prompt:
                        total_thre += prompt_ext
                        events.append(("extend", total_iteration + 1, prompt_ext))
                    elif cur_iteration + 1 == total_thre:
                        cur_iteration += 1
                        total_iteration += 1
                        break
                    cur_iteration += 1
                    total_iteration += 1
    return steps, events

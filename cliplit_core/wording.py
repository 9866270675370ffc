"""The step a message asks of the user, in the words of the program the user is in.

A message names the file and the problem the same way everywhere; only the step that follows
depends on the host: on the command line the user passes ``--clip-pretrained FILE``, in ComfyUI
they put the file into the model folder and choose it in a node's list. Each such message is
written once, where the core raises it, and ends in an :class:`Advice` (which step, with its
facts); each host words the advice its own way with a :class:`HostWording`:

* :data:`PYTHON`: the Python API (``load_model(clip_pretrained=...)``); what ``str(error)`` shows;
* :data:`COMMAND_LINE`: ``python -m cliplit_core`` and the trainer (their error handlers render
  with it);
* the ComfyUI nodes' wording, in ``nodes/wording.py`` (``node_errors`` renders with it).

A new kind of advice is added to :data:`ADVICE` and phrased by every host (a wording missing
a phrase is refused when it is built).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# Each kind of advice and the facts its phrases may use.
ADVICE = {
    # a named weights source (``official``) could not be downloaded: the message has said where to put
    # the file by hand ({target}, in {folder}); what else the user can do
    "named_file_by_hand": ("source", "target", "folder"),
    # the named source's file exists at {target} with another sha256
    "named_file_mismatch": ("source", "target", "folder"),
    # a CLIP weights file downloaded by hand: how to use it, with a model folder to put it in ...
    "clip_weights_into_folder": ("folder",),
    # ... or without one
    "clip_weights_path": (),
    # CLIP weights that do not fit the CLIP model setting
    "check_clip_model": (),
    # a prompt pair made for another CLIP model ({model})
    "use_clip_model": ("model",),
}


@dataclass(frozen=True)
class Advice:
    """A step for the user: its kind (a key of :data:`ADVICE`) and the facts the phrases need."""

    kind: str
    facts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ADVICE:
            raise ValueError(f"unknown kind of advice {self.kind!r}; known: {', '.join(ADVICE)}")
        missing = [k for k in ADVICE[self.kind] if k not in self.facts]
        if missing:
            raise ValueError(f"advice {self.kind!r} needs the facts {', '.join(missing)}")
        object.__setattr__(self, "facts", MappingProxyType({k: str(v) for k, v in self.facts.items()}))

    def __reduce__(self):  # the facts proxy does not pickle; errors cross process boundaries (--jobs)
        return (Advice, (self.kind, dict(self.facts)))


@dataclass(frozen=True)
class HostWording:
    """How one host phrases every kind of advice: ``phrases[kind]`` is a ``str.format`` template
    over the advice's facts (and ``{choice}``: the named source as the host offers it, from
    ``choices``), appended to the message as it is: it starts with its own punctuation."""

    host: str
    phrases: Mapping[str, str]
    choices: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        missing = [kind for kind in ADVICE if kind not in self.phrases]
        if missing:
            raise ValueError(f"{self.host} wording has no phrase for {', '.join(missing)}")

    def advise(self, advice: Advice) -> str:
        facts = dict(advice.facts)
        if "source" in facts:
            facts["choice"] = self.choices.get(facts["source"], facts["source"])
        return self.phrases[advice.kind].format(**facts)


PYTHON = HostWording("Python", {
    "named_file_by_hand": " (or pass the file itself instead of '{source}')",
    "named_file_mismatch": "; delete it to download again, or pass the file explicitly as your own weights",
    "clip_weights_into_folder": ", then put it into {folder} and set clip_pretrained to its file name",
    "clip_weights_path": ", then set clip_pretrained to the file's path",
    "check_clip_model": "; check clip_model / the model name",
    "use_clip_model": ": set clip_model to {model!r}",
})

_CLIP_FILE_FLAGS = (", then pass its path instead of the tag (--clip-pretrained FILE; for the trainer's identity loss "
                    "--identity-pretrained FILE)")
COMMAND_LINE = HostWording("command line", {
    "named_file_by_hand": " (or pass the file itself instead of '{source}')",
    "named_file_mismatch": "; delete it to download again, or pass the file explicitly as your own weights",
    "clip_weights_into_folder": _CLIP_FILE_FLAGS,
    "clip_weights_path": _CLIP_FILE_FLAGS,
    "check_clip_model": "; check --clip-model / the model name",
    "use_clip_model": ": pass --clip-model {model}",
})


def worded(error: BaseException, wording: HostWording) -> str:
    """``error``'s message with its advice (if any) in ``wording``'s words."""
    render = getattr(error, "worded", None)
    return render(wording) if callable(render) else str(error)

"""A small stand-in for ComfyUI's V3 node API (``comfy_api.latest``: ``io``, ``ui``, ``ComfyExtension``).

``comfy_env`` uses it only where ComfyUI is absent (tests, benchmarks, scripts), so
that the node classes import and run there; inside ComfyUI the real API is used.
It covers exactly what the pack's nodes use, with ComfyUI's names and keywords,
and derives the same V1 view of a schema that ComfyUI serves in /object_info
(``INPUT_TYPES()``, ``RETURN_TYPES``, ``RETURN_NAMES``, ``OUTPUT_TOOLTIPS`` ...).
"""
from __future__ import annotations

import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _pruned(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class _classproperty:
    def __init__(self, fget):
        self.fget = fget

    def __get__(self, obj, owner):
        return self.fget(owner)


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"


class _Input:
    io_type = ""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, default: Any = None, **options):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.default, self.options = default, options

    def as_dict(self) -> dict:
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip, "default": self.default,
                        **self.options})


class _ComboInput(_Input):
    def __init__(self, id: str, options: list | None = None, **kw):
        super().__init__(id, **kw)
        self.options = {"multiselect": False, "options": list(options or []), **self.options}


class _StringInput(_Input):
    def __init__(self, id: str, multiline: bool = False, **kw):
        super().__init__(id, **kw)
        self.options = {"multiline": multiline, **self.options}


class _Output:
    io_type = ""

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _comfytype(io_type: str, input_base: type = _Input) -> type:
    """A socket type with its ``Input`` and ``Output`` classes, as ComfyUI's ``@comfytype``."""
    return type(io_type, (), {"io_type": io_type,
                              "Input": type("Input", (input_base,), {"io_type": io_type}),
                              "Output": type("Output", (_Output,), {"io_type": io_type})})


def Custom(io_type: str) -> type:
    return _comfytype(io_type)


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    is_output_node: bool = False


class NodeOutput:
    def __init__(self, *args: Any, ui: Any = None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args if self.args else None

    def __getitem__(self, index):
        return self.args[index]


class ComfyNode:
    """Base of a V3 node; the V1 attributes are derived from ``define_schema()`` like ComfyUI does."""

    hidden = None  # ComfyUI sets a holder of the requested hidden values on its per-run class copy

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        ids = [i.id for i in schema.inputs] + [o.id for o in schema.outputs]
        if len(set(ids)) != len(ids):  # ComfyUI 0.3.48 refuses the node then
            raise ValueError(f"{schema.node_id}: input and output ids must all differ: {ids}")
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        schema = cls.GET_SCHEMA()
        spec: dict = {"required": {}}
        for i in schema.inputs:
            spec.setdefault("optional" if i.optional else "required", {})[i.id] = (i.io_type, i.as_dict())
        hidden = list(schema.hidden) + ([Hidden.prompt, Hidden.extra_pnginfo] if schema.is_output_node else [])
        for h in dict.fromkeys(hidden):
            spec.setdefault("hidden", {})[h.name] = (h.value,)
        return spec

    @_classproperty
    def RETURN_TYPES(cls):  # noqa: N802  (ComfyUI's names)
        return [o.io_type for o in cls.GET_SCHEMA().outputs]

    @_classproperty
    def RETURN_NAMES(cls):  # noqa: N802
        return [o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs]

    @_classproperty
    def OUTPUT_TOOLTIPS(cls):  # noqa: N802
        return [o.tooltip for o in cls.GET_SCHEMA().outputs]

    @_classproperty
    def CATEGORY(cls):  # noqa: N802
        return cls.GET_SCHEMA().category

    @_classproperty
    def DESCRIPTION(cls):  # noqa: N802
        return cls.GET_SCHEMA().description

    @_classproperty
    def OUTPUT_NODE(cls):  # noqa: N802
        return cls.GET_SCHEMA().is_output_node


class PreviewText:
    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        pass

    @abstractmethod
    async def get_node_list(self) -> list[type[ComfyNode]]:
        ...


io = types.SimpleNamespace(
    ComfyNode=ComfyNode, Schema=Schema, NodeOutput=NodeOutput, Hidden=Hidden, Custom=Custom,
    Boolean=_comfytype("BOOLEAN"), Int=_comfytype("INT"), Float=_comfytype("FLOAT"),
    String=_comfytype("STRING", _StringInput), Combo=_comfytype("COMBO", _ComboInput),
    Image=_comfytype("IMAGE"), Mask=_comfytype("MASK"),
)
ui = types.SimpleNamespace(PreviewText=PreviewText)

__all__ = ["ComfyExtension", "io", "ui"]

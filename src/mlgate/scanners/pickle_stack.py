"""A symbolic pickle stack: just enough of the unpickler to know what each BUILD builds (a
joblib array wrapper and its state), without importing or calling anything. Globals are Call
records; what it does not follow is an opaque value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    module: str
    name: str
    args: object = None
    state: object = None


_MARK = object()
_UNKNOWN = object()
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY = {"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple, "EMPTY_SET": list}


@dataclass
class Stack:
    items: list[object] = field(default_factory=list)
    memo: dict[int, object] = field(default_factory=dict)

    def step(self, name: str, argument: Any) -> object:
        """Apply one opcode; returns the object a BUILD built, else None."""
        if name in _CONSTANTS:
            self.items.append(_CONSTANTS[name])
        elif name in _EMPTY:
            self.items.append(_EMPTY[name]())
        elif name == "MARK":
            self.items.append(_MARK)
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(argument).partition(" ")
            if name == "INST":
                self._to_mark()
            self.items.append(Call(module, attr))
        elif name == "STACK_GLOBAL":
            named, within = self.items.pop(), self.items.pop()
            self.items.append(Call(str(within), str(named)))
        elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                self.items.pop()
            args, factory = self.items.pop(), self.items.pop()
            self.items.append(_called(factory, args))
        elif name == "OBJ":
            values = self._to_mark()
            self.items.append(_called(values[0], tuple(values[1:])) if values else _UNKNOWN)
        elif name == "BUILD":
            state = self.items.pop()
            target = self.items[-1]
            if isinstance(target, Call):
                target.state = state
                return target
        else:
            self._containers(name, argument)
        return None

    def _containers(self, name: str, argument: Any) -> None:
        items = self.items
        if name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            values = items[-count:]
            del items[-count:]
            items.append(tuple(values))
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
            values = self._to_mark()
            made = {"TUPLE": tuple, "LIST": list, "FROZENSET": tuple}.get(name)
            items.append(made(values) if made else _dict(values))
        elif name in ("APPEND", "APPENDS", "ADDITEMS", "SETITEM", "SETITEMS"):
            if name == "APPEND":
                values = [items.pop()]
            elif name == "SETITEM":
                values = items[-2:]
                del items[-2:]
            else:
                values = self._to_mark()
            target = items[-1]
            if isinstance(target, dict):
                target.update(_dict(values))
            elif isinstance(target, list):
                target.extend(values)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(argument)] = items[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = items[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            items.append(self.memo[int(argument)])
        elif name == "POP":
            items.pop()
        elif name == "POP_MARK":
            self._to_mark()
        elif name == "DUP":
            items.append(items[-1])
        elif name == "BINPERSID":
            items[-1] = _UNKNOWN
        elif name in ("PROTO", "FRAME", "STOP", "READONLY_BUFFER", "READWRITE_BUFFER"):
            pass
        else:  # every other opcode pushes one value: a constant, a persistent id, ...
            items.append(_UNKNOWN if argument is None else argument)

    def _to_mark(self) -> list[object]:
        for index in range(len(self.items) - 1, -1, -1):
            if self.items[index] is _MARK:
                values = self.items[index + 1 :]
                del self.items[index:]
                return values
        raise ValueError("MARK missing")


def _called(factory: object, args: object) -> object:
    if isinstance(factory, Call):
        return Call(factory.module, factory.name, args)
    return _UNKNOWN


def _dict(values: list[object]) -> dict[object, object]:
    pairs = zip(values[::2], values[1::2], strict=False)
    return {k: v for k, v in pairs if isinstance(k, (str, int, bytes, tuple, type(None)))}

"""A symbolic pickle machine: it runs a pickle's opcodes over symbols, importing and calling
nothing, to learn what unpickling it would import and build.

Why our own and not picklescan's list of globals: picklescan reads the two operands of
STACK_GLOBAL from the opcodes right before it, so operands that come from the memo (MEMOIZE then
BINGET) or through DUP are recorded as `None.None` and rated like any harmless import. Here the
stack and memo are modelled, so such operands resolve; operands that are not string constants
(computed by a call at load time) cannot be resolved and are reported as such.
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field
from typing import IO, Any


class Malformed(Exception):
    """The stream is not what any loader would accept (or hides something we cannot follow)."""


@dataclass(frozen=True)
class Global:
    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Import:
    """One global the pickle imports; `found` is None when its name is computed at load time."""

    found: Global | None
    position: int  # byte offset of the opcode in its stream
    opcode: str


class Built:
    """The result of calling or instantiating a global: recorded, never built."""

    def __init__(self, factory: object, args: object) -> None:
        self.factory = factory
        self.args = args
        self.state: object = None


class Pairs:
    """A pickled dict as pairs (its keys need not be hashable here)."""

    def __init__(self, pairs: list[tuple[object, object]] | None = None) -> None:
        self.pairs = pairs or []

    def get(self, key: str) -> object:
        """The value last set for `key`, None when there is none (as getattr with a default)."""
        return next((value for name, value in reversed(self.pairs) if name == key), None)


class Opaque:
    """A value the machine does not model (a set, a buffer, a persistent id, an unresolved
    global)."""


_LITERALS = frozenset(
    (
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "FLOAT",
        "BINFLOAT",
    )
)
_CONSTANTS: dict[str, object] = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


@dataclass
class Machine:
    """Just enough of the pickle machine to know which globals a stream imports and, at each
    BUILD, what was built with what state. It only moves symbols around. An opcode it does not
    know is a problem (fail closed)."""

    stack: list[object] = field(default_factory=list)
    metastack: list[list[object]] = field(default_factory=list)
    memo: dict[int, object] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    frame_end: int = 0
    result: object = None  # what STOP returned

    def step(self, name: str, argument: Any, position: int = 0) -> Built | None:
        """Apply one opcode; return the object a BUILD just gave its state, if any."""
        if name in _LITERALS:
            self._push(argument)
        elif name in _CONSTANTS:
            self._push(_CONSTANTS[name])
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        elif name == "BUILD":
            state = self._pop()
            target = self._top()
            if isinstance(target, Built):
                target.state = state
                return target
        elif name in ("GLOBAL", "INST", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4"):
            self._import(name, argument, position)
        else:
            self._structure(name, argument)
        return None

    def _import(self, name: str, argument: Any, position: int) -> None:
        found: Global | Opaque
        if name in ("GLOBAL", "INST"):
            module, _, attribute = str(argument).partition(" ")
            found = Global(module, attribute)
        elif name == "STACK_GLOBAL":
            named, module_named = self._pop(), self._pop()
            # pickle accepts only str operands; anything else is known only at load time.
            both_text = isinstance(named, str) and isinstance(module_named, str)
            found = Global(str(module_named), str(named)) if both_text else Opaque()
        else:
            found = Opaque()  # an extension code: a global from copyreg's registry at load time
        self.imports.append(Import(found if isinstance(found, Global) else None, position, name))
        self._push(Built(found, tuple(self._pop_mark())) if name == "INST" else found)

    def _structure(self, name: str, argument: Any) -> None:
        if name == "EMPTY_LIST":
            self._push([])
        elif name == "EMPTY_TUPLE":
            self._push(())
        elif name == "EMPTY_DICT":
            self._push(Pairs())
        elif name == "EMPTY_SET":
            self._push(Opaque())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self._pop() for _ in range(int(name[-1]))]
            self._push(tuple(reversed(items)))
        elif name == "TUPLE":
            self._push(tuple(self._pop_mark()))
        elif name == "LIST":
            self._push(self._pop_mark())
        elif name == "DICT":
            self._push(_pairs(self._pop_mark()))
        elif name == "FROZENSET":
            self._pop_mark()
            self._push(Opaque())
        elif name in ("APPEND", "APPENDS", "ADDITEMS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            target = self._top()
            if isinstance(target, list):
                target.extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            if name == "SETITEM":
                value, key = self._pop(), self._pop()
                items = [key, value]
            else:
                items = self._pop_mark()
            target = self._top()
            if isinstance(target, Pairs):
                target.pairs.extend(_pairs(items).pairs)
        else:
            self._references(name, argument)

    def _references(self, name: str, argument: Any) -> None:
        if name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "POP":
            # As pickle does: a POP with nothing above the mark pops the mark.
            self._pop() if self.stack else self._pop_mark()
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "DUP":
            self._push(self._top())
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(argument) not in self.memo:
                raise Malformed(f"memo entry {argument} is read before it is written")
            self._push(self.memo[int(argument)])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(argument)] = self._top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self._top()
        elif name in ("REDUCE", "NEWOBJ"):
            args, factory = self._pop(), self._pop()
            self._push(Built(factory, args))
        elif name == "NEWOBJ_EX":
            _, args, factory = self._pop(), self._pop(), self._pop()
            self._push(Built(factory, args))
        elif name == "OBJ":
            items = self._pop_mark()
            if not items:
                raise Malformed("OBJ without a class")
            self._push(Built(items[0], tuple(items[1:])))
        elif name in ("PERSID", "NEXT_BUFFER"):
            self._push(Opaque())
        elif name == "BINPERSID":
            self._pop()
            self._push(Opaque())
        elif name == "STOP":
            self.result = self._pop()
        else:
            raise Malformed(f"pickle opcode {name} is not supported")

    def _push(self, value: object) -> None:
        # Always onto the current stack: popping a mark replaces it.
        self.stack.append(value)

    def _pop(self) -> object:
        if not self.stack:
            raise Malformed("pickle stack underflow")
        return self.stack.pop()

    def _top(self) -> object:
        if not self.stack:
            raise Malformed("pickle stack underflow")
        return self.stack[-1]

    def _pop_mark(self) -> list[object]:
        if not self.metastack:
            raise Malformed("pickle MARK missing")
        items, self.stack = self.stack, self.metastack.pop()
        return items


def _pairs(items: list[object]) -> Pairs:
    if len(items) % 2:
        raise Malformed("a pickled dict with an odd number of items")
    return Pairs(list(zip(items[::2], items[1::2], strict=True)))


@dataclass
class Reading:
    """What one walk over a standalone pickle stream found."""

    imports: list[Import] = field(default_factory=list)
    problem: str | None = None  # why the walk stopped before STOP, if it did


def read_imports(stream: IO[bytes] | bytes) -> Reading:
    """Walk one pickle (from the stream's current position to its STOP) and list its imports.
    The imports before a break are kept: pickle runs what precedes the break."""
    handle = io.BytesIO(stream) if isinstance(stream, bytes) else stream
    machine = Machine()
    reading = Reading(imports=machine.imports)
    try:
        for opcode, argument, position in pickletools.genops(handle):
            machine.step(opcode.name, argument, position or 0)
    except Exception as exc:  # any way the stream fails to parse: pickle would fail too
        reading.problem = f"not a pickle that pickle can load: {describe(exc)}"
    return reading


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, Malformed):
        return text  # our own words; the class name adds nothing
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

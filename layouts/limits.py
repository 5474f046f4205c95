"""Limits on a layout render: how long it may take and how much text it may make.

Layouts are user code. Jinja's sandbox keeps a template from reading files or calling
unsafe functions; it does not keep it from looping for hours (``{% for a in range(100000)
%}{% for b in range(100000) %}...``), from writing a 500 MB message, or from asking
Python for a 1 GB string in one operation (``"{:>999999999}".format("x")``). This module
adds those limits to the sandbox:

* **time**: a render (every message of one campaign or preview) stops after
  ``time_limit`` seconds. The clock is read at every step the template takes: each loop
  iteration, call, attribute or item lookup, filter and ``{{ ... }}``;
* **output**: each message (all its modules; the email's HTML and text parts together)
  is at most ``max_output`` bytes of UTF-8, counted as it is produced, so a render that
  would write more stops at the limit, not after building it all;
* **work**: what a template builds along the way (literal text where it is written,
  every ``{{ ... }}``, macro and call-block bodies, ``~``, lists and dicts, filters,
  method calls, operators) is counted too, up to :data:`WORK_FACTOR` times
  ``max_output`` for the whole render, and no value a template builds may be larger
  than that once written out (a list holding a list holding ... counts every copy it
  would print, so shared references cannot make ``{{ value }}``, ``tojson`` or ``==``
  explode);
* **one-step growth**: operations whose result size is known beforehand and can grow
  without bound in one step are checked before they run: format widths and precisions
  (``str.format``, ``%``, the ``format`` filter), ``center`` / ``ljust`` / ``rjust`` /
  ``zfill`` / ``expandtabs`` / ``replace`` / ``join`` / ``translate`` /
  ``int.to_bytes``, the ``center`` / ``indent`` / ``wordwrap`` / ``replace`` / ``join``
  / ``batch`` / ``slice`` / ``tojson`` / ``sum`` filters, big integer ``*`` and ``**``.

Breaking a limit raises :class:`LimitExceeded`; the renderer turns it into a
:class:`~feedcast.kernel.errors.LayoutError` naming the layout, the file and the line.

The limits come from :class:`RenderLimits` (``FEEDCAST_LAYOUT_TIME_LIMIT`` seconds,
``FEEDCAST_LAYOUT_MAX_OUTPUT`` bytes: ``2MB``, ``500kB``, ``2000000``). Plain Python and
Jinja only: no store, no Prefect.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import update_wrapper, wraps
from string import Formatter
from typing import Any, Final

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg
from markupsafe import Markup, escape

from feedcast.kernel.errors import InvalidValue, LimitExceeded

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_TIME_LIMIT",
    "MAX_OUTPUT_ENV",
    "TIME_LIMIT_ENV",
    "WORK_FACTOR",
    "Meter",
    "MeteredSandbox",
    "RenderLimits",
    "current",
    "metering",
    "parse_size",
]

TIME_LIMIT_ENV: Final = "FEEDCAST_LAYOUT_TIME_LIMIT"
MAX_OUTPUT_ENV: Final = "FEEDCAST_LAYOUT_MAX_OUTPUT"
DEFAULT_TIME_LIMIT: Final = 5.0  # seconds for one render (a campaign's messages)
DEFAULT_MAX_OUTPUT: Final = 2_000_000  # bytes for one message
WORK_FACTOR: Final = 32  # what a render may build along the way, in multiples of max_output
MAX_INT_BITS: Final = 100_000  # integers a template may build with * and **
MAX_PIECES: Final = 100_000  # batches / slices a filter may make (Jinja's MAX_RANGE)
MAX_JSON_INDENT: Final = 64
MAX_DEPTH: Final = 100  # levels of lists in lists a template may build
_CLOCK_EVERY: Final = 16  # steps between two readings of the clock


def _size_text(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size * 0.9995:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|k|kb|m|mb|g|gb)?\s*", re.IGNORECASE)
_UNITS: Final = {"": 1, "b": 1, "k": 1_000, "kb": 1_000, "m": 1_000_000, "mb": 1_000_000}
_UNITS_G: Final = {"g": 1_000_000_000, "gb": 1_000_000_000}


def parse_size(text: str, what: str = MAX_OUTPUT_ENV) -> int:
    """``2MB``, ``500kB``, ``2000000`` -> bytes (decimal units); InvalidValue otherwise."""
    match = _SIZE.fullmatch(text)
    unit = (match.group(2) or "").lower() if match else ""
    factor = _UNITS.get(unit) or _UNITS_G.get(unit)
    if match is None or factor is None:
        raise InvalidValue(f"{what} must be a size such as 2MB, 500kB or 2000000, not {text!r}")
    size = int(float(match.group(1)) * factor)
    if size < 1_000:
        raise InvalidValue(f"{what} must be at least 1kB, not {text!r}")
    return size


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """How long one render may take (seconds, all the messages of one campaign or
    preview) and how large one of its messages may be (bytes of UTF-8)."""

    time_limit: float = DEFAULT_TIME_LIMIT
    max_output: int = DEFAULT_MAX_OUTPUT
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.time_limit > 0:
            raise InvalidValue(f"the layout time limit must be more than 0 seconds, not {self.time_limit}")
        if self.max_output < 1_000:
            raise InvalidValue(f"the layout output limit must be at least 1kB, not {self.max_output}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RenderLimits:
        """The limits ``FEEDCAST_LAYOUT_TIME_LIMIT`` and ``FEEDCAST_LAYOUT_MAX_OUTPUT``
        set, the defaults (5 s, 2 MB) for what they leave unset."""
        env = os.environ if environ is None else environ
        seconds = env.get(TIME_LIMIT_ENV, "").strip()
        size = env.get(MAX_OUTPUT_ENV, "").strip()
        time_limit = DEFAULT_TIME_LIMIT
        if seconds:
            try:
                time_limit = float(seconds.removesuffix("s"))
            except ValueError:
                time_limit = float("nan")
            if not 0 < time_limit < float("inf"):
                raise InvalidValue(f"{TIME_LIMIT_ENV} must be a number of seconds above 0, not {seconds!r}")
        return cls(time_limit=time_limit, max_output=parse_size(size) if size else DEFAULT_MAX_OUTPUT)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _size(value: object) -> int:
    """About how many bytes ``value`` holds of its own (references count 8)."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return 8 * len(value)
    if isinstance(value, int):
        return value.bit_length() // 8
    return 0


def _children(value: object) -> Iterable[Any] | None:
    if isinstance(value, dict):
        return (part for pair in value.items() for part in pair)
    if isinstance(value, list | tuple | set | frozenset):
        return value
    if isinstance(value, Namespace):
        attrs: dict[str, Any] = value._Namespace__attrs
        return attrs.values()
    return None


def _weight(value: object, limit: int) -> int:
    """About how many characters ``value`` takes written out (``str``, ``repr``,
    JSON): every copy of a shared element counts. Stops as soon as it is over ``limit``,
    and visits each distinct object once, so it is cheap even when the written-out
    size is astronomical."""
    memo: dict[int, int] = {}

    def walk(item: object, depth: int) -> int:
        if isinstance(item, str | bytes | bytearray):
            return len(item) + 2
        children = _children(item)
        if children is None:
            return 8
        key = id(item)
        known = memo.get(key)
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            return limit + 1
        total = 2
        for child in children:
            total += walk(child, depth + 1) + 2
            if total > limit:
                break
        memo[key] = total
        return total

    return walk(value, 0)


class Meter:
    """The budget of one render in progress: its deadline, the text built, and the
    output of the message being rendered. Every check raises :class:`LimitExceeded`,
    again and again once tripped (so code that swallowed the first one cannot carry
    on)."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.max_output = limits.max_output
        self.work_limit = limits.max_output * WORK_FACTOR
        self._clock = limits.clock
        self.deadline = self._clock() + limits.time_limit
        self.steps = 0
        self.output = 0
        self.work = 0
        self.tripped: str | None = None

    def new_message(self) -> None:
        self.output = 0

    def trip(self, reason: str) -> None:
        if self.tripped is None:
            self.tripped = reason
        raise LimitExceeded(self.tripped)

    def step(self) -> None:
        """One step of the template: reads the clock every few steps."""
        self.steps += 1
        if self.tripped is not None:
            raise LimitExceeded(self.tripped)
        if not self.steps % _CLOCK_EVERY and self._clock() > self.deadline:
            self.trip(
                f"took more than {self.limits.time_limit:g} s to render "
                f"(the time limit, {TIME_LIMIT_ENV} changes it)"
            )

    def charge(self, amount: int) -> None:
        """``amount`` more bytes of text built."""
        self.work += amount
        if self.work > self.work_limit:
            self.trip(
                f"builds more than the {_size_text(self.work_limit)} a render may build "
                f"({WORK_FACTOR} times the output limit, {MAX_OUTPUT_ENV} changes it)"
            )
        self.step()

    def room(self, needed: float, what: str) -> None:
        """Refuse, before it is made, a value of ``needed`` bytes when the render has not
        that much left to build."""
        if self.work + needed > self.work_limit:
            built = f" after {_size_text(self.work)}" if self.work > needed else ""
            self._too_much(f"asks for {what} of {_size_text(needed)}{built}")

    def _too_much(self, doing: str) -> None:
        self.trip(
            f"{doing}, more than the {_size_text(self.work_limit)} a render may build "
            f"({WORK_FACTOR} times the output limit, {MAX_OUTPUT_ENV} changes it)"
        )

    def fits(self, value: Any) -> None:
        """Refuse a list, dict ... that would write out larger than a render may build."""
        if _children(value) is not None:
            weight = _weight(value, self.work_limit)
            if weight > self.work_limit:
                self.trip(
                    f"builds a value that would write out to more than the {_size_text(self.work_limit)} "
                    f"a render may build ({WORK_FACTOR} times the output limit, {MAX_OUTPUT_ENV} changes it)"
                )

    def value(self, value: Any, *, new: bool = True) -> Any:
        """A value the template built: refused when it would write out larger than a
        render may build; counted (when ``new``: not one of the operands)."""
        self.fits(value)
        size = _size(value) if new else 0
        if size:
            self.room(size, "a value")
            self.charge(size)
        else:
            self.step()
        return value

    def written(self, text: str) -> None:
        """``text`` joins the message being rendered."""
        self.output += _utf8_len(text)
        if self.output > self.max_output:
            self.trip(
                f"renders more than {_size_text(self.max_output)} for one message "
                f"(the output limit, {MAX_OUTPUT_ENV} changes it)"
            )

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for value in iterable:
            self.step()
            yield value


_CURRENT: ContextVar[Meter | None] = ContextVar("feedcast_render_meter", default=None)


def current() -> Meter | None:
    """The meter of the render in progress in this thread (None outside a render)."""
    return _CURRENT.get()


@contextmanager
def metering(limits: RenderLimits) -> Iterator[Meter]:
    """Run the block as one render under ``limits``."""
    meter = Meter(limits)
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)


def _budget() -> Meter:
    """The meter of the render in progress; outside one (Jinja folding constants at
    compile time) a meter with the default limits, so one-step growth is refused there
    too (the expression is then left to run time)."""
    return _CURRENT.get() or Meter(RenderLimits())


# ------------------------------------------------------------------------- one-step growth


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _lines(text: object) -> int:
    return str(text).count("\n") + 1


_SPEC_NUMBER = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_spec(meter: Meter, spec: str) -> None:
    """A ``str.format`` field spec: its width / precision at most the output limit."""
    numbers = _SPEC_NUMBER.findall(spec)
    widest = max((int(n) if len(n) < 20 else 10**20 for n in numbers), default=0)
    meter.room(widest, "a format width")


def _check_percent(meter: Meter, template: str, values: object) -> None:
    """``template % values``: the widths and precisions of its conversions."""
    stars = False
    total = len(template)
    for match in _PERCENT_SPEC.finditer(template):
        width, precision = match.group(1), match.group(2)
        stars = stars or width == "*" or precision == "*"
        for part in (width, precision):
            if part and part != "*":
                total += int(part) if len(part) < 20 else 10**20
    if stars:
        args = values if isinstance(values, tuple) else (values,)
        total += sum(abs(_int(a)) for a in args)
    meter.room(total, "a format width")


def _check_replace(meter: Meter, text: object, old: object, new: object, count: object) -> None:
    if not isinstance(text, str | bytes) or not isinstance(new, str | bytes):
        return
    if isinstance(old, str | bytes) and type(old) is type(text):
        hits = (len(text) + 1) if not old else text.count(old)  # type: ignore[arg-type]
    else:
        return
    limit = _int(count)
    if count is not None and limit >= 0:
        hits = min(hits, limit)
    meter.room(len(text) + hits * len(new), "a replaced text")


def _check_join(meter: Meter, separator: object, values: object) -> None:
    if not isinstance(values, list | tuple):
        return  # a generator: each of its values is checked as it is made
    sep = len(separator) if isinstance(separator, str | bytes) else len(str(separator))
    total = sep * len(values) + sum(len(v) if isinstance(v, str | bytes) else 16 for v in values)
    meter.room(total, "a joined text")


def _check_str_method(
    meter: Meter, owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    if name in {"center", "ljust", "rjust"}:
        meter.room(_int(_arg(args, kwargs, 0, "width", 0)), f"a {name}() width")
    elif name == "zfill":
        meter.room(_int(_arg(args, kwargs, 0, "width", 0)), "a zfill() width")
    elif name == "expandtabs":
        tab = _int(_arg(args, kwargs, 0, "tabsize", 8))
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        meter.room(len(owner) + tabs * tab, "an expandtabs() text")
    elif name == "replace":
        _check_replace(
            meter,
            owner,
            _arg(args, kwargs, 0, "old", None),
            _arg(args, kwargs, 1, "new", None),
            _arg(args, kwargs, 2, "count", None),
        )
    elif name == "join":
        _check_join(meter, owner, _arg(args, kwargs, 0, "iterable", ()))
    elif name == "translate":
        table = _arg(args, kwargs, 0, "table", None)
        if isinstance(table, Mapping):
            longest = max((len(v) if isinstance(v, str | bytes) else 1 for v in table.values()), default=1)
            meter.room(len(owner) * longest, "a translated text")


def _check_call(meter: Meter, obj: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes):
        _check_str_method(meter, owner, name, args, kwargs)
    elif isinstance(owner, int) and name == "to_bytes":
        meter.room(_int(_arg(args, kwargs, 0, "length", 1)), "a to_bytes() length")


def _check_binop(meter: Meter, operator: str, left: object, right: object) -> None:
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and isinstance(count, int):
                meter.room(_size(seq) * count, "a repeated value")
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            meter.trip(f"multiplies integers of more than {MAX_INT_BITS} bits")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > MAX_INT_BITS:
            meter.trip(f"raises an integer to a power of more than {MAX_INT_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        _check_percent(meter, left, right)
    elif (
        operator == "+"
        and isinstance(left, str | bytes | list | tuple)
        and isinstance(right, str | bytes | list | tuple)
    ):
        meter.room(_size(left) + _size(right), "a concatenated value")


# Filters whose result can be much larger than their input: checked before they run.
# Each check gets the filter's arguments without the environment / context Jinja passes.
def _f_center(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    m.room(_int(_arg(a, k, 1, "width", 80)), "a center width")


def _f_indent(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    width = _arg(a, k, 1, "width", 4)
    step = len(width) if isinstance(width, str) else _int(width)
    text = _arg(a, k, 0, "s", "")
    m.room(len(str(text)) + _lines(text) * step, "an indented text")


def _f_wordwrap(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    text = str(_arg(a, k, 0, "s", ""))
    width = max(_int(_arg(a, k, 1, "width", 79)), 1)
    wrap = _arg(a, k, 3, "wrapstring", None)
    joint = len(wrap) if isinstance(wrap, str) else 1
    m.room(len(text) + (len(text) // width + _lines(text)) * joint, "a wrapped text")


def _f_replace(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    text = _arg(a, k, 0, "s", "")
    _check_replace(
        m, str(text), _arg(a, k, 1, "old", None), _arg(a, k, 2, "new", None), _arg(a, k, 3, "count", None)
    )


def _f_join(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    _check_join(m, _arg(a, k, 1, "d", ""), _arg(a, k, 0, "value", ()))


def _f_format(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    if a:
        _check_percent(m, str(a[0]), tuple(a[1:]) or dict(k))


def _f_batch(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    m.room(8 * _int(_arg(a, k, 1, "linecount", 0)), "a batch")


def _f_slice(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    if _int(_arg(a, k, 1, "slices", 0)) > MAX_PIECES:
        m.trip(f"asks for more than {MAX_PIECES} slices")


def _f_tojson(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    indent = _arg(a, k, 1, "indent", None)
    width = len(indent) if isinstance(indent, str) else _int(indent)
    if width > MAX_JSON_INDENT:
        m.trip(f"asks for a JSON indent of {width}, more than {MAX_JSON_INDENT}")


def _f_sum(m: Meter, a: tuple[Any, ...], k: Mapping[str, Any]) -> None:
    start = _arg(a, k, 2, "start", 0)
    if not isinstance(start, int | float) or isinstance(start, bool):
        m.trip("sums something other than numbers (sum adds numbers in layouts)")


_FILTER_CHECKS: Final[Mapping[str, Callable[[Meter, tuple[Any, ...], Mapping[str, Any]], None]]] = {
    "center": _f_center,
    "indent": _f_indent,
    "wordwrap": _f_wordwrap,
    "replace": _f_replace,
    "join": _f_join,
    "format": _f_format,
    "batch": _f_batch,
    "slice": _f_slice,
    "tojson": _f_tojson,
    "sum": _f_sum,
}


def metered_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter) checked before it runs (when it can grow its input without
    bound) and its result counted."""
    check = _FILTER_CHECKS.get(name)
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @wraps(func)
    def filtered(*args: Any, **kwargs: Any) -> Any:
        meter = _budget()
        meter.step()
        if check is not None:
            check(meter, args[skip:], kwargs)
        result = func(*args, **kwargs)
        return meter.value(result, new=not any(result is arg for arg in args))

    return filtered


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    from jinja2.utils import generate_lorem_ipsum

    if _int(n) > 100 or _int(max) > 1_000 or _int(min) > 1_000:
        _budget().trip("asks lipsum() for more than 100 paragraphs of 1000 words")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


# ------------------------------------------------------------------------- the sandbox


def _is_metered(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == "metered_iter"
    )


class MeteredCodeGenerator(CodeGenerator):
    """Jinja's code generator, with the meter's hooks compiled in: every ``for`` loop
    steps the meter at each iteration, literal template text is counted where it is
    written (a loop in a macro too), and ``~`` results are counted."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not _is_metered(node.iter):  # the iterable, wrapped: each iteration is a step
            lineno = node.iter.lineno
            hook = nodes.EnvironmentAttribute("metered_iter", lineno=lineno)
            node.iter = nodes.Call(hook, [node.iter], [], None, None, lineno=lineno)
        super().visit_For(node, frame)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        literal = sum(len(child.data) for child in node.nodes if isinstance(child, nodes.TemplateData))
        if literal:
            self.writeline(f"environment.metered_text({literal})", node)
        super().visit_Output(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # ``a ~ b``: Jinja's join, given to the meter, which checks the operands' sizes
        # before joining them
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"environment.metered_concat({func_name}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.metered_value(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.metered_value(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: ``{% for a, b in ... %}``, ``{% set a, b = ... %}``
            super().visit_Tuple(node, frame)
            return
        self.write("environment.metered_value(")
        super().visit_Tuple(node, frame)
        self.write(")")


class _CheckedFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(_budget(), format_spec)
        return _budget().value(super().format_field(value, format_spec))


class _CheckedEscapeFormatter(SandboxedEscapeFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(_budget(), format_spec)
        return _budget().value(super().format_field(value, format_spec))


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    """Every ``{{ ... }}``: converted here as Jinja would (escaped when autoescaping),
    and counted (a context function, so Jinja does not fold constant output at compile
    time, where nothing would count it)."""
    meter = _CURRENT.get()
    if meter is None:
        return value
    meter.fits(value)
    text = escape(value) if context.eval_ctx.autoescape else str(value)
    meter.charge(len(text))
    return text


class MeteredSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox under the meter of the render in progress (none
    outside a render: templates then run unmetered, as Jinja's own)."""

    code_generator_class = MeteredCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        options.setdefault("finalize", _finalize)
        super().__init__(**options)
        self.globals["lipsum"] = _lipsum

    def meter_filters(self) -> None:
        """Wrap every filter registered so far (call once the filters are in)."""
        for name, func in list(self.filters.items()):
            if not getattr(func, "feedcast_metered", False):
                wrapped = metered_filter(name, func)
                wrapped.feedcast_metered = True  # type: ignore[attr-defined]
                self.filters[name] = wrapped

    # hooks compiled into the templates by MeteredCodeGenerator
    @staticmethod
    def metered_iter(iterable: Iterable[Any]) -> Iterable[Any]:
        meter = _CURRENT.get()
        return iterable if meter is None else meter.iterate(iterable)

    @staticmethod
    def metered_text(size: int) -> None:
        meter = _CURRENT.get()
        if meter is not None:
            meter.charge(size)

    @staticmethod
    def metered_concat(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        meter = _CURRENT.get()
        if meter is None:
            return join(parts)
        for part in parts:
            meter.fits(part)
        meter.room(sum(_weight(part, meter.work_limit) for part in parts), "a joined text")
        joined: str = meter.value(join(parts))  # markup_join's Markup stays Markup, as in Jinja
        return joined

    @staticmethod
    def metered_value(value: Any) -> Any:
        meter = _CURRENT.get()
        return value if meter is None else meter.value(value)

    # the sandbox's own hooks
    def getattr(self, obj: Any, attribute: str) -> Any:
        meter = _CURRENT.get()
        if meter is not None:
            meter.step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        meter = _CURRENT.get()
        if meter is not None:
            meter.step()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        meter = _budget()
        _check_binop(meter, operator, left, right)
        result = super().call_binop(context, operator, left, right)
        return meter.value(result) if _CURRENT.get() is not None else result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        meter = _CURRENT.get()
        if meter is None:
            return super().call(__context, __obj, *args, **kwargs)
        meter.step()
        _check_call(meter, __obj, args, kwargs)
        return meter.value(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's ``str.format`` / ``format_map`` wrapper, with each field's width and
        precision checked before it is formatted."""
        original = super().wrap_str_format(value)
        if original is None:
            return None
        owner: str = value.__self__
        is_format_map = value.__name__ == "format_map"
        formatter: Formatter
        if isinstance(owner, Markup):
            formatter = _CheckedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _CheckedFormatter(self)
        str_type = type(owner)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(formatter.vformat(owner, args, kwargs))

        return update_wrapper(wrapper, value)

"""The record each format module declares as its ``FORMAT``: what the rest of feedcast
may ask of a format, with the defaults most formats share.

Plain Python; the type is public as :class:`layouts.formats.Format`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

from feedcast.kernel.models import Message, Module, ProviderCall
from layouts.markup import to_plain
from layouts.preview_html import Sender

__all__ = ["Format"]


@functools.cache
def _stylesheet(name: str) -> str:
    return resources.files("layouts").joinpath("formats", f"{name}.css").read_text(encoding="utf-8")


def _any_modules(modules: Sequence[Module]) -> str | None:
    del modules
    return None


def _text_modules(text: str) -> tuple[Module, ...]:
    return (Module(kind="text", text=text),)


@dataclass(frozen=True, slots=True)
class Format:
    """One provider format.

    ``name``: as layouts and channels say it; ``label``: as pages and the terminal do
    ("JSON webhook"); ``template``: the layout's template file for it;
    ``text_template``: the template of a plain-text alternative (email), or None;
    ``unsubscribe_link``: its messages carry the recipient's unsubscribe link.

    ``build_calls(message, media_sizes)``: the exact request bodies of a Message
    (credentials and recipient left out; PayloadError for a Message the format cannot
    take); ``validate(call)``: PayloadError unless one call keeps the provider's rules
    (the registry first checks that the body is an object); ``check_modules(modules)``:
    what is wrong with rendered modules the format cannot take (None: nothing);
    ``plain_modules(text)``: a plain text as its modules (bot replies);
    ``own_test_message(text, channel)``: the message ``feedcast channel test`` sends, when
    it is not ``text`` as one text module; ``markup(text)``: the composer's markup
    (:mod:`layouts.markup`) in the format's own (plain text by default);
    ``upload_limits``: the bytes a local file of each module kind (image, video, audio,
    file) may have to be uploaded the provider's way (empty: the format uploads
    nothing, files go as links). ``preview_call(call, sender, number)``: one
    call as the provider shows it, ``preview_window(body, sender)``: the previewed
    messages in the provider's window, :attr:`preview_css`: their style, the file
    ``layouts/formats/<name>.css``.
    """

    name: str
    label: str
    template: str
    build_calls: Callable[[Message, Mapping[str, int]], list[ProviderCall]]
    validate: Callable[[ProviderCall], None]
    preview_call: Callable[[ProviderCall, Sender, int], str]
    preview_window: Callable[[str, Sender], str]
    text_template: str | None = None
    unsubscribe_link: bool = False
    check_modules: Callable[[Sequence[Module]], str | None] = _any_modules
    plain_modules: Callable[[str], tuple[Module, ...]] = _text_modules
    own_test_message: Callable[[str, str], Message] | None = None
    markup: Callable[[str], str] = to_plain
    upload_limits: Mapping[str, int] = field(default_factory=dict)

    @property
    def preview_css(self) -> str:
        """The style of the format's preview (``layouts/formats/<name>.css``)."""
        return _stylesheet(self.name)

    def test_message(self, text: str, channel: str) -> Message:
        """The message ``feedcast channel test`` sends on a channel named ``channel``."""
        if self.own_test_message is not None:
            return self.own_test_message(text, channel)
        return Message(format=self.name, subject=text, modules=(Module(kind="text", text=text),))

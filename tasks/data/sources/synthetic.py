"""The `synthetic` source kind: captchas generated from a spec (see tasks.data.synthetic)."""
from __future__ import annotations

from typing import Iterator

from tasks.data.sources.base import SourceError, SourceItem, SourceKind, label_from_name


class SyntheticSource(SourceKind):
    """`synthetic://?count=...&length=...&alphabet=...`: the same spec always gives the same images."""

    scheme = "synthetic"

    def check(self) -> None:
        from tasks.data.synthetic import SyntheticSpec, SyntheticSpecError

        try:
            self.spec = SyntheticSpec.parse(self.uri)
        except SyntheticSpecError as error:
            raise SourceError(str(error)) from None

    def items(self) -> Iterator[SourceItem]:
        from tasks.data.synthetic import generate

        for name, data in generate(self.spec):
            yield SourceItem(name, label_from_name(name), read=lambda d=data: d)

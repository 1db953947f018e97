"""Response DLP for streamed text: a holdback window, so no detected entity is ever emitted, even in part.

The stream keeps back the last `holdback_chars` of what the model produced. Whenever more than that has
arrived, it runs the detector over the held text plus `context_chars` of already-emitted text before it
(lead-ins like "call me on" or "Dear" sit there), and emits the part before the cut, redacted. The cut is
moved back so it never falls

- inside a detected span (the span waits until it can be emitted whole, as its placeholder), nor
- inside a token (a run of non-whitespace): "jane.doe@exam" could still grow into an e-mail address, so
  text is only emitted up to a whitespace boundary, unless the token is longer than `max_token_chars`.

So an entity no longer than the holdback window is always seen whole, with `holdback_chars` of right
context and `context_chars` of left context, before any of it is emitted; the emitted text is then what
`check_response` makes of the whole text, for any chunking of the stream (the property tests check this).

Limits, by construction: an entity longer than the window (a PEM private key block, a long base64 secret
with no whitespace past `max_token_chars`) can be emitted in part before it is recognisable; and a
detection that needs more than `context_chars` of left context or `holdback_chars` of right context (NER
reading a name from a sentence far away) can differ from the whole-text result. The cost is latency: the
first character leaves about `holdback_chars` after it arrived (bench/gateway_holdback.py measures it)."""

from __future__ import annotations

from collections import Counter

from services.gateway.domain.dlp import Decided, DlpRules, Finding, TextDetector, blocking, decide, redact

DEFAULT_MAX_TOKEN_CHARS = 512


class ResponseStream:
    """feed(delta) -> text safe to emit now; finish() -> the rest. After a block (a blocked entity type, or
    an error in detection: fail closed), `blocked` is true, `reason` says why and nothing more is emitted."""

    def __init__(
        self,
        rules: DlpRules,
        detector: TextDetector,
        holdback_chars: int,
        *,
        policy_name: str = "",
        context_chars: int | None = None,
        max_token_chars: int = DEFAULT_MAX_TOKEN_CHARS,
    ) -> None:
        if holdback_chars < 0:
            raise ValueError("holdback_chars must be >= 0")
        self.rules = rules
        self.detector = detector
        self.holdback_chars = holdback_chars
        self.context_chars = max(holdback_chars, 64) if context_chars is None else context_chars
        self.max_token_chars = max(max_token_chars, 1)
        self.policy_name = policy_name
        self.blocked = False
        self.reason = ""
        self._counts: Counter[str] = Counter()
        self._buf = ""  # raw text from absolute offset _base on (emitted context + held text)
        self._base = 0
        self._committed = 0  # absolute offset up to which raw text has been emitted (redacted)
        self._finished = False
        # A policy whose response rules act on nothing has nothing to hold back for: text passes at once.
        self.passthrough = rules.default == "allow" and all(a == "allow" for a in rules.actions.values())

    @property
    def findings(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    @property
    def released_chars(self) -> int:
        """How many characters of the raw stream have been emitted (as themselves or inside a placeholder)."""
        return self._committed

    @property
    def buffered_chars(self) -> int:
        """Raw text kept in memory: the held text plus emitted context (bounded, whatever the stream's length)."""
        return len(self._buf)

    @property
    def held_chars(self) -> int:
        return 0 if self.passthrough else self._base + len(self._buf) - self._committed

    def feed(self, delta: str) -> str:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if self.blocked or not delta:
            return ""
        if self.passthrough:
            self._committed += len(delta)
            return delta
        self._buf += delta
        end = self._base + len(self._buf)
        cut = self._snap(end - self.holdback_chars, end)
        if cut <= self._committed:
            return ""
        return self._emit(cut, final=False)

    def finish(self) -> str:
        if self._finished:
            return ""
        self._finished = True
        end = self._base + len(self._buf)
        if self.blocked or self.passthrough or end <= self._committed:
            return ""
        return self._emit(end, final=True)

    # -------------------------------------------------------------------------------------------- internals

    def _char(self, pos: int) -> str:
        return self._buf[pos - self._base]

    def _snap(self, cut: int, end: int) -> int:
        """`cut` moved back to a token boundary: the char before or at it is whitespace (a token followed by
        whitespace cannot grow). A token longer than max_token_chars may be cut."""
        if cut <= self._committed:
            return self._committed
        floor = max(self._committed, cut - self.max_token_chars)
        pos = cut
        while pos > floor and not (self._char(pos - 1).isspace() or (pos < end and self._char(pos).isspace())):
            pos -= 1
        return pos if pos > floor or floor == self._committed else cut

    def _emit(self, cut: int, *, final: bool) -> str:
        end = self._base + len(self._buf)
        start = self._window_start()
        try:
            found = self.detector.detect_many([self._buf[start - self._base :]])[0]
            decided = decide([Finding(f.entity, f.start + start, f.end + start, f.score) for f in found], self.rules)
        except Exception as exc:  # fail closed: any failure of detection stops the stream
            self.blocked = True
            self.reason = f"response check 'dlp' failed ({type(exc).__name__}); the rest of the response is withheld"
            return ""
        if not final:
            cut = self._settle(cut, decided, end)
            if cut <= self._committed:
                return ""
        emitted = [self._clip(d) for d in decided if d.finding.end > self._committed and d.finding.start < cut]
        self._counts.update(d.finding.entity for d in emitted)  # a block is audited with what caused it
        blocked = blocking(emitted)
        if blocked:
            self.blocked = True
            self.reason = f"the response contains {', '.join(blocked)}, which policy {self.policy_name!r} blocks"
            return ""
        out = redact(self._buf[self._committed - self._base : cut - self._base], emitted, offset=self._committed)
        self._committed = cut
        self._trim()
        return out

    def _settle(self, cut: int, decided: list[Decided], end: int) -> int:
        """Move the cut back until it is inside no detected span and on a token boundary."""
        while True:
            moved = cut
            for d in decided:
                if d.finding.start < moved < d.finding.end:
                    moved = d.finding.start
            moved = self._snap(moved, end)
            if moved == cut:
                return cut
            cut = moved

    def _clip(self, d: Decided) -> Decided:
        """A span reaching back into emitted text (only when more context changed a detection) is redacted
        from the emission point on: what was emitted cannot be taken back."""
        f = d.finding
        if f.start >= self._committed:
            return d
        return Decided(Finding(f.entity, self._committed, f.end, f.score), d.action)

    def _window_start(self) -> int:
        """Where detection starts: context_chars before the emission point, moved back to whitespace so the
        window does not begin with half a token."""
        pos = max(self._base, self._committed - self.context_chars)
        limit = max(self._base, pos - self.max_token_chars)
        while pos > limit and not self._char(pos - 1).isspace():
            pos -= 1
        return pos

    def _trim(self) -> None:
        keep_from = max(self._base, self._committed - self.context_chars - self.max_token_chars)
        if keep_from - self._base > 4 * (self.context_chars + self.max_token_chars):
            self._buf = self._buf[keep_from - self._base :]
            self._base = keep_from

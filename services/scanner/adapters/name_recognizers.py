"""Person names without NER: found where the text says a name comes next (greetings, sign-offs, mentions,
titles)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

# ---------------------------------------------------------------- person names in context
#
# Without NER (the default install has no spaCy model) names are only found where the text says a name comes
# next: a greeting ("Hi Maria,", "Dear Mr. Schmidt"), a sign-off ("Regards,\nTomasz Okafor", "Thanks, Jonas"),
# a mention ("I spoke with Ingrid Moreau", "my name is", "assigned to") or a title ("Frau Müller"). The name is
# the run of capitalised words after the trigger (any script's letters, inner hyphens and apostrophes,
# particles such as van/de/von/da/d'); a run holding a word of the stoplist ("Hi Team", "Dear Customer",
# "Regards,\nThe Billing Team") is not a name.

_NAME_TOKEN = re.compile(r"(?:['’][st] |[dDlL]['’] ?)?[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*\.?")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_PARTICLES = _word_set(
    "van von vom de der den des da das do dos du di del della dei la le lo ten ter te y zu und bin ibn al el 't 's ’s"
)
# Capitalised words that follow greetings, sign-offs and mentions without being names: addressees, teams,
# organisations, function words, days and months, and the words a sentence commonly starts with.
_NOT_NAMES = _word_set(
    """
    team teams support customer customers client clients sir sirs madam madame all everyone everybody anyone
    someone there folks guys people friends colleagues service services desk helpdesk billing sales accounts
    accounting finance legal hr it ops operations security admin administrator administration management
    manager managers department office staff user users member members partner partners world
    the a an this that these those it its i we you he she they our your my his her their us me them
    hello hi hey dear thanks thank regards best cheers kind warm yes no ok okay sure please sorry great good
    fine nice welcome happy just also not now then here today tomorrow yesterday soon asap again
    corp corporation inc ltd llc plc gmbh ag sa sas srl bv nv co company group bank holdings labs
    technologies technology solutions systems software cloud platform university hospital clinic airlines
    equipo todos todas tous toutes équipe collègues zusammen allemaal iedereen tutti team's
    kunde kundin kunden cliente clienti klant klanten kundenservice kundendienst klantenservice servicio
    soporte assistenza supporto serviceteam
    ihr ihre euer eure dein deine votre vos su sus vuestro vostro uw jouw jullie
    system bot assistant agent operator reception
    name names email e-mail mail phone address number details info channel
    logistics procurement payroll marketing engineering compliance purchasing shipping recruiting recruitment
    grüße grüßen gruß ihrer ihren ihrem profile portal dashboard settings resources
    senior junior head lead chief principal accountant officer director specialist coordinator assistant
    engineer analyst consultant representative advisor adviser administrator executive associate intern
    from to cc bcc subject date sent reply-to authorization cookie fax tel captcha token success experience
    """
)
# Words that are surnames too (Amanda May, Gerard West) but do not begin a name: days, months (not April, June
# and August, which are first names too), compass points.
_NOT_FIRST_WORDS = _word_set(
    """
    monday tuesday wednesday thursday friday saturday sunday january february march may july
    september october november december new north south east west saint santa san los las
    """
)
# Generational suffixes closing a name: "Andrea Koch II", "Martin Luther King Jr."
_SUFFIXES = _word_set("jr sr ii iii iv")
_TITLE = (
    r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herrn|Herr|Frau|Mme|Mlle|M|Sr|Sra|Srta|Sig|Sig\.ra|Dott|Dott\.ssa|Dhr|Mevr|"
    r"Monsieur|Madame|Mademoiselle|Señor|Señora|Signor|Signora|Meneer|Mevrouw|heer|mevrouw)\.?[ \t]+"
)
_LINE_START = r"(?:^|(?<=[:>.!?\"(\[]))[ \t]*"
_GREETINGS = (
    r"hi|hello|hey|hiya|dear|good (?:morning|afternoon|evening)|morning|greetings|bonjour|bonsoir|salut|"
    r"cher|chère|hallo|liebe|lieber|sehr geehrte|sehr geehrter|guten tag|moin|servus|hola|buenos días|"
    r"buenas tardes|estimado|estimada|querido|querida|ciao|salve|buongiorno|gentile|caro|cara|beste|geachte|"
    r"hoi|goedemorgen|goedemiddag"
)
_SIGN_OFFS = (
    r"thanks (?:&|and) regards|thanks in advance|thank you in advance|yours faithfully|"
    r"(?:kind|best|warm|warmest|many|with) regards|regards|warm wishes|talk soon|speak soon|take care|"
    r"all the best|b?rgds|thx|best wishes|best|sincerely|yours sincerely|"
    r"yours truly|yours|thanks again|thanks|thank you|many thanks|cheers|mit freundlichen grüßen|"
    r"freundliche grüße|viele grüße|beste grüße|liebe grüße|grüße|lg|cordialement|bien cordialement|"
    r"bien à vous|salutations|saludos|un saludo|atentamente|cordiales saludos|cordiali saluti|distinti saluti|"
    r"saluti|grazie|merci|danke|gracias|met vriendelijke groet|met vriendelijke groeten|vriendelijke groet|"
    r"groeten|groetjes|hartelijke groet|bedankt"
)
# Mentions that are followed by a name whatever comes after it.
_STRONG_MENTIONS = (
    r"spoke (?:with|to)|speaking (?:with|to)|talked (?:to|with)|talking (?:to|with)|chatted with|"
    r"my name is|my name's|name is|assigned to|reassigned to|escalated to|handled by|forwarded to|"
    r"transferred to|reported by|approved by|signed by|requested by|mein name ist|ich heiße|je m'appelle|"
    r"je m’appelle|mon nom est|me llamo|mi nombre es|mi chiamo|mijn naam is|gesprochen mit|hablé con|"
    r"ho parlato con|j'ai parlé (?:avec|à)|j’ai parlé (?:avec|à)|"
    # handing over and hearsay: "passed this on to Kirsty Moss", "according to Denise Couturier"
    r"passed (?:this |it )?on to|handed (?:this |it )?(?:over )?to|referred (?:this |you )?to|"
    r"according to|laut|selon|según|secondo|volgens|weitergeleitet an|transmis à|pasado a|inoltrato a|"
    r"doorgestuurd naar"
)
# Mentions that are also followed by other things ("this is urgent", "contact Support"): the name must end
# the clause (punctuation, line end, or "from/at/in ..." follows).
_WEAK_MENTIONS = r"this is|it's|i'm|i am|contact|contact person|agent|cc|attn|ask for|call|reach out to|ik ben"
_CLAUSE_END = re.compile(  # never before "/5.0": "Mozilla/5.0" is a product and its version
    r"(?![ \t]*/[ \t]*\d)(?:$|[ \t]*(?:\r?\n|[,.;:!?)(\[\]|/<–—-])|"
    r"[ \t]+(?:from|at|in|of|here|with|on|and|for|von|aus|bei|de|du|chez|del|di|da|van|bij|en|et|und|y|e)\b|"
    r"[ \t]+[–—-])"
)
# Field labels at a line start: "Name: Maik", "Reporter: Claudine Andre", "From: Ute <ute@hq.lan>".
_FIELD_LABELS = (
    r"(?:full |customer |contact |first |last )?name|reporter|requester|requested by|reported by|assignee|"
    r"owner|author|caller|customer|contact|contact person|from|sender|cc|attendee|applicant|employee|"
    r"vorname|nachname|ansprechpartner|kontakt|absender|kunde|nom|prénom|expéditeur|nombre|apellidos?|"
    r"remitente|nome|cognome|mittente|naam|voornaam|achternaam|contactpersoon|afzender"
)
# A past participle then "by" in the same clause: "Escalated to tier 2 by Balduino Morell."
_BY_PARTICIPLES = (
    r"escalated|assigned|handled|approved|signed|reported|requested|raised|opened|created|closed|resolved|"
    r"reviewed|submitted|filed|sent|written|confirmed|processed|authori[sz]ed|cancel+ed|rejected|accepted|"
    r"verified|updated|edited|triaged|acknowledged|answered|replied"
)
# Verbs of saying after a name at a clause start: "Miguel said ...", "hey, Hilda Schweitzer told me ...".
_SAYING = re.compile(
    r"[ \t]+(?:told|said|says|mentioned|confirmed|promised|wrote|explained|suggested|asked|replied|answered|"
    r"recommended|informed|noted|agreed|called|emailed|e-mailed|sagte|meinte|schrieb|hat (?:gesagt|geschrieben)|"
    r"a dit|m'a dit|m’a dit|a écrit|dijo|me dijo|escribió|ha detto|mi ha detto|ha scritto|zei|schreef|"
    r"heeft gezegd)\b"
)
_CLAUSE_START = r"(?:^|(?<=[:>.!?\"(\[,;]))[ \t]*"
# Administration verbs: "Please add Sara Ross as an admin", "invite Jonas to the workspace".
_ADMIN_VERBS = r"add|invite|remove|onboard|offboard|deactivate|reactivate|unlock|promote|grant|give"
_ADMIN_END = re.compile(r"[ \t]+(?:as|to|from|access|admin|permissions?|rights)\b|[ \t]*\((?i:cc|bcc)\)")
# After a sign-off, words followed by a colon are the next field's label ("Thanks\nStatus: open", "thanks\nFecha
# de nacimiento: ..."), not a name; "Anna Smith | Tel: ..." is still a name.
_SIGN_OFF_END = re.compile(rf"(?!(?:[ \t]+[^\W\d_]+){{0,3}}[ \t]*:)(?:{_CLAUSE_END.pattern})")
# Stricter, for "thanks Maria!" without a comma: "thanks Current at ..." is two glued sentences.
_PUNCTUATION_END = re.compile(r"$|[ \t]*(?:\r?\n|[,.;:!?)])")
# ... or what was thanked for: "Thanks Maria for the quick turnaround!"
_THANKS_END = re.compile(rf"{_PUNCTUATION_END.pattern}|[ \t]+(?i:for)\b")


@dataclass(frozen=True, slots=True)
class _NameTrigger:
    name: str
    regex: re.Pattern[str]
    score: float
    clause_end: re.Pattern[str] | None  # if set, what follows the name must match it
    min_words: int = 1
    # If set, the trigger only runs on texts where this matches: a trigger that fires at every clause start
    # is not run on the many texts without the word that must follow the name.
    requires: re.Pattern[str] | None = None


class PersonNameContextRecognizer(LocalRecognizer):
    """PERSON in greetings, sign-offs, mentions and after titles, without NER (see the comment above).

    Scores: 0.9 where the context makes a name near certain (greeting at a line start, sign-off, "spoke with",
    a title), 0.85 for weaker mentions that must also end the clause ("this is Maria from billing",
    "cc Jonas.", "from Ingrid Moreau at ..."); both reach the default policy's PERSON floor of 0.85."""

    ENTITY = "PERSON"
    TRIGGERS: tuple[_NameTrigger, ...] = (
        _NameTrigger("greeting", re.compile(rf"{_LINE_START}(?i:{_GREETINGS})[ \t]+(?:{_TITLE})?", re.M), 0.9, None),
        _NameTrigger(
            "sign-off",
            re.compile(
                # the name on one of the next lines, perhaps quoted ("> Thanks in advance\n> Sandra Medina")
                rf"(?<!\w)(?i:{_SIGN_OFFS})(?:[ \t]*[,!.]?[ \t]*(?:\r?\n[ \t]*(?:>[ \t]*)*(?:--?[ \t]*)?){{1,3}}|"
                rf"[ \t]*,[ \t]*)"
                rf"(?:{_TITLE})?"
            ),
            0.9,
            _SIGN_OFF_END,
        ),
        _NameTrigger(
            "thanks",
            re.compile(r"(?<!\w)(?i:thanks|thank you|cheers|merci|danke|gracias|grazie)[ \t]+"),
            0.9,
            _THANKS_END,
        ),
        _NameTrigger(  # "Escalated to: Ada Lovelace" too
            "mention", re.compile(rf"(?<!\w)(?i:{_STRONG_MENTIONS})(?:[ \t]*:)?[ \t]+(?:{_TITLE})?"), 0.9, None
        ),
        _NameTrigger(
            "weak mention", re.compile(rf"(?<!\w)(?i:{_WEAK_MENTIONS})[: \t]+(?:{_TITLE})?"), 0.85, _CLAUSE_END
        ),
        _NameTrigger("title", re.compile(rf"(?<![\w.]){_TITLE.replace('|M|', '|')}"), 0.9, None),
        # "a call from Ingrid Moreau at the front desk": two words at least, places and firms are stoplisted.
        _NameTrigger("from", re.compile(r"(?<!\w)(?i:from)[ \t]+"), 0.85, _CLAUSE_END, min_words=2),
        _NameTrigger(
            "field label",
            re.compile(rf"^[ \t]*(?i:{_FIELD_LABELS})[ \t]*:[ \t]*(?:{_TITLE})?", re.M),
            0.9,
            _CLAUSE_END,
        ),
        _NameTrigger(
            "participle by",
            re.compile(rf"(?<!\w)(?i:{_BY_PARTICIPLES})\b[^.!?\n]{{0,40}}?[ \t](?i:by)[ \t]+(?:{_TITLE})?"),
            0.9,
            _CLAUSE_END,
        ),
        _NameTrigger("saying", re.compile(_CLAUSE_START, re.M), 0.85, _SAYING, requires=_SAYING),
        _NameTrigger("administration", re.compile(rf"(?<!\w)(?i:{_ADMIN_VERBS})[ \t]+"), 0.85, _ADMIN_END),
    )

    def __init__(self, supported_language: str = "en", name: str | None = None) -> None:
        super().__init__(supported_entities=[self.ENTITY], name=name, supported_language=supported_language)

    def load(self) -> None:
        """Nothing to load: triggers are compiled at import."""

    @staticmethod
    def name_at(text: str, pos: int, trigger: _NameTrigger) -> tuple[int, int] | None:
        """(start, end) of the name starting at pos, or None when what follows is not a name."""
        words: list[tuple[int, int, str]] = []  # (start, end, kind) with kind name | particle | initial
        while len(words) < 7:
            match = _NAME_TOKEN.match(text, pos)
            if match is None:
                break
            token = match.group()
            bare = token.rstrip(".")
            core = re.sub(r"^(?:['’][st] |[dDlL]['’] ?)", "", bare)
            if bare.lower() in _SUFFIXES and any(k == "name" for _, _, k in words):
                kind, end = "suffix", match.start() + len(bare)
            elif bare.lower() in _PARTICLES or (core != bare and not core):
                kind, end = "particle", match.start() + len(bare)
            elif len(bare) == 1 and bare.isupper() and token.endswith("."):
                kind, end = "initial", match.end()  # "Hans D. Müller"
            elif core[:1].isupper() and (len(core) == 1 or not core.isupper()) and core.lower() not in _PARTICLES:
                kind, end = "name", match.start() + len(bare)
            else:
                break
            if kind == "name":
                lower = core.lower()
                if lower in _NOT_NAMES or re.sub(r"['’]s$", "", lower) in _NOT_NAMES:
                    return None
                if not words and lower in _NOT_FIRST_WORDS:
                    return None
            words.append((match.start(), end, kind))
            if text[end : end + 1] != " ":
                break
            pos = end + 1
        while words and words[-1][2] == "particle":
            words.pop()
        if sum(kind == "name" for _, _, kind in words) < trigger.min_words:
            return None
        start, end = words[0][0], words[-1][1]
        if trigger.clause_end is not None and trigger.clause_end.match(text, end) is None:
            return None
        return start, end

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if entities and self.ENTITY not in entities:
            return []
        best: dict[tuple[int, int], tuple[float, str]] = {}
        for trigger in self.TRIGGERS:
            if trigger.requires is not None and trigger.requires.search(text) is None:
                continue
            for match in trigger.regex.finditer(text):
                span = self.name_at(text, match.end(), trigger)
                if span is not None and trigger.score > best.get(span, (0.0, ""))[0]:
                    best[span] = (trigger.score, trigger.name)
        return [
            RecognizerResult(
                self.ENTITY,
                start,
                end,
                score,
                AnalysisExplanation(recognizer=self.name, original_score=score, pattern_name=f"name after {why}"),
                {
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for (start, end), (score, why) in sorted(best.items())
        ]


# ---------------------------------------------------------------- NER output check
#
# spaCy's small English model tags capitalised words of any language as PERSON: "Cheers", "Callback",
# "Customer Success", "Mijn BSN", "Il mio", "SUP-12083". The same stoplists and word shapes the context
# recognizer uses tell most of those apart from names.

_VOCABULARY = re.compile(rf"(?i:{_GREETINGS}|{_SIGN_OFFS}|{_FIELD_LABELS}|{_WEAK_MENTIONS})[ \t]*[:,!.]?")
_SENTENCE_START = re.compile(r"(?:^|[.!?:>\"(\[=#*]|\n)[ \t]*$")  # "=== Zendesk export": a heading


def _name_key(word: str) -> str:
    return re.sub(r"['’]s$", "", word.lower())


def never_in_a_name(word: str) -> bool:
    """Whether a capitalised word is stoplisted (a team, a function word, "I"): plausible_person_span refuses
    any span holding it, so it can be no part of a reported name."""
    return _name_key(word.strip(".,;:!?()'\"’")) in _NOT_NAMES


def plausible_person_span(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], tagged PERSON by a model, reads like a name: no digits, not a greeting, sign-off
    or field label, every word capitalised (particles aside) and none of them stoplisted, no acronym among
    ordinary words, and not a lone capitalised word at a sentence start (there a capital says nothing; the
    context recognizer still finds "Miguel said" or "Name: Maik")."""
    value = text[start:end].strip()
    if not value or any(c.isdigit() for c in value) or _VOCABULARY.fullmatch(value):
        return False
    words = [w.strip(".,;:!?()'\"’") for w in value.split()]
    names = [w for w in words if w.lower() not in _PARTICLES]
    if not names or any(not w[:1].isupper() for w in names):
        return False
    lowered = [_name_key(w) for w in names]
    if any(w in _NOT_NAMES for w in lowered) or lowered[0] in _NOT_FIRST_WORDS:
        return False
    if any(len(w) > 1 and w.isupper() for w in names) and not all(w.isupper() for w in names):
        return False  # "Mijn BSN", "Ticket SUP"
    if len(names) == 1 and len(names[0]) > 1 and names[0].isupper():
        return False  # a lone acronym: "JSON", "SLA"
    return len(names) > 1 or _SENTENCE_START.search(text, 0, start) is None

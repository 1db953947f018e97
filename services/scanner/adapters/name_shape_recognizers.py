"""Person names in the shapes chat logs, CRM exports, web forms and call notes give them, without NER.

Each recognizer here is PersonNameContextRecognizer's machinery (a trigger says a name comes next, the run of
capitalised words after it is the name unless a stoplisted word is in it, and what follows must fit) with
triggers of its own shape, so each has its own pre-screen in recognizers.yaml and runs only where its shape
can occur:

- ChatSpeakerRecognizer: who speaks in a chat log ("[09:09] Rosendo Bravo: ...", "<Rosario> ...",
  "Hugo Gozzi  10:02 AM", "Valerio joined the channel", "Amélie: hi" next to another chat line);
- AtMentionRecognizer: "@Fritz Trub", "<@Alessandra Alighieri>";
- NameFieldRecognizer: a field whose key says it holds a person ("Account holder: ...", "Case Owner: ...",
  '"full_name": "..."', "name=...&", "| Contact | ... |");
- NameSignatureRecognizer: a name signing a note or next to its contact details (a CSV row's cell before a
  mail address, "Name <mail>", a signature block's name line, "... -Naomi Banks" closing a note);
- NameShorthandRecognizer: call-note and ticket shorthand ("cust Sylvia Klemt v. unhappy", "spoke w/ Blanca",
  "pls loop in Aldo from finance", "(Luca, son)")."""

from __future__ import annotations

import re

from services.scanner.adapters.name_recognizers import (
    _CLAUSE_END,
    _TITLE,
    PersonNameContextRecognizer,
    _NameTrigger,
)

_TIME = r"\d{1,2}:\d\d(?::\d\d)?(?:[ \t]?[AaPp]\.?[Mm]\.?)?"
# A chat line's timestamp in brackets: "[09:09]", "[2004-11-24 14:05]", "[13 de noviembre de 2002 14:05]".
_STAMP = rf"\[[^\]\n]{{0,40}}{_TIME}[^\]\n]{{0,12}}\]"
_LINE_END = r"[ \t]*(?=\r?\n|$)"
# What a chat client writes after the speaker's name: a colon, an IRC ">", a direct-message arrow.
_SPEAKER_END = re.compile(r">|[ \t]*(?::(?!\d)|→|->)")
# Chat clients' event lines: "Valerio joined the channel.", "Cleto pinned a message."
_CHAT_EVENTS = re.compile(
    r"[ \t]+(?:has[ \t]+)?(?:joined|left)[ \t]+the[ \t]+(?:channel|chat|conversation|call|meeting|group)|"
    r"[ \t]+(?:set a reminder|reacted with|shared a file|pinned a message|uploaded a file|started a call|"
    r"changed the (?:topic|channel|group)|was added|renamed the|is typing)\b"
)
# A time after the name, as Slack and Teams print a message header: "Hugo Gozzi  10:02 AM",
# "Roland Parent (edited) 16:44", "Raimundo [11:17]: ...".
_HEADER_TIME = re.compile(rf"(?:[ \t]+\(edited\))?[ \t]+(?:\[{_TIME}\]|{_TIME})[ \t]*(?::|(?=\r?\n|$))")

# A chat line others can be told by: a timestamp first, or a client's event ("... joined the channel").
_CHAT_LINE = rf"[ \t]*(?:{_STAMP}[^\n]*|[^\n]*?(?:{_CHAT_EVENTS.pattern})[^\n]*)"
# A message, not a form's or a header's value: it starts with a lower-case word, an @mention or an emoji
# ("Amélie: hi, new here", "Ale: kk", "Nanni: 👍", "Jo: +1"), not a token, a number or a mail address.
_LOWER = r"[^\W\d_A-ZÀ-ÖØ-Þ]"
_MESSAGE = rf"[ \t]*:[ \t]+(?:{_LOWER}{{1,12}}(?=[\s,.!?'’]|$)|@[^\W\d_]|[^\x00-\x7f\w\s]|\+1\b)"


class ChatSpeakerRecognizer(PersonNameContextRecognizer):
    """PERSON: the speaker of a chat line (after a timestamp, before a message header's time, in an event)."""

    TRIGGERS = (
        _NameTrigger(
            "chat speaker after a timestamp",
            re.compile(rf"^[ \t]*{_STAMP}[ \t]*<?", re.M),
            0.9,
            re.compile(rf"{_SPEAKER_END.pattern}|{_CHAT_EVENTS.pattern}"),
        ),
        _NameTrigger("direct message", re.compile(r"[ \t](?:→|->)[ \t]*"), 0.9, re.compile(r"[ \t]*:")),
        _NameTrigger("chat header", re.compile(r"^[ \t]*", re.M), 0.9, _HEADER_TIME, requires=_HEADER_TIME),
        # "Name: message" without a timestamp is a speaker only next to another chat line: alone, it reads like a
        # form's "Comment: too slow".
        _NameTrigger(
            "chat speaker below a chat line",
            re.compile(rf"^{_CHAT_LINE}\r?\n[ \t]*", re.M),
            0.85,
            re.compile(_MESSAGE),
        ),
        _NameTrigger(
            "chat speaker above a chat line",
            re.compile(r"^[ \t]*", re.M),
            0.85,
            re.compile(rf"{_MESSAGE}[^\n]*\r?\n{_CHAT_LINE}"),
            requires=re.compile(rf"{_MESSAGE}[^\n]*\r?\n{_CHAT_LINE}"),
        ),
        _NameTrigger(
            "chat event", re.compile(r"^[ \t]*(?:--+[ \t]*)?", re.M), 0.9, _CHAT_EVENTS, requires=_CHAT_EVENTS
        ),
    )


class AtMentionRecognizer(PersonNameContextRecognizer):
    """PERSON: an @mention of a capitalised name (a mail address has a word character before its '@')."""

    TRIGGERS = (_NameTrigger("@mention", re.compile(r"(?<![\w.@+\-])<?@"), 0.85, None),)


# Keys that say a field holds a person, in English, German, French, Spanish, Italian and Dutch.
_PERSON_KEYS = (
    r"(?:full|first|last|given|family|middle|maiden|display|legal|account|contact|customer|client|user)?"
    r"[ _\-]?name|firstname|lastname|surname|holder|owner|signatory|signed(?:[ _]by)?|signer|consignee|"
    r"consignor|recipient|addressee|beneficiary|payee|submitted[ _]by|requester|requestor|assignee|candidate|"
    r"applicant|patient|tenant|guarantor|witness|employee|driver|courier|contact(?:[ _]person)?|attendee|customer|"
    r"client|kunde|cliente|klant|"
    r"kontoinhaber(?:in)?|empfänger(?:in)?|inhaber(?:in)?|titulaire|destinataire|titular|destinatario|"
    r"intestatario|ontvanger|rekeninghouder|interlocut(?:eur|rice)|referente|persona de contacto"
)
# A key: up to three qualifying words ("Case Owner", "Authorised signatory", "first_name / last_name"), quotes
# (JSON, "Field 'name'"), a parenthesised hint ("Name (optional)"), then ':', '=', a table's '|', a form's
# question mark ("What's your name? ...") or a dotted leader ("Name ........ ...").
_FIELD_KEY = (
    rf"(?:^|(?<=[?&;,{{|\t]))[ \t]*(?:[^\W_]+(?:['’][^\W_]+)?(?:[ _\-]|[ \t]*/[ \t]*)){{0,3}}[\"'‘“]?"
    rf"(?i:{_PERSON_KEYS})s?[\"'’”]?(?:[ \t]*\([^)\n]{{0,24}}\))?[ \t]*(?:[:=|?]|\.{{2,}}|…)[ \t]*[\"'“]?"
    rf"(?:{_TITLE})?"
)
# The value ends where the field ends; "User agent: Mozilla/5.0" is a product and its version.
_FIELD_END = re.compile(rf"(?![ \t]*/[ \t]*\d)(?:{_CLAUSE_END.pattern}|[ \t]*[\"'”&|])")
# "Name" (or "*Your name*") on one line and the value on the next, as web forms are copied out.
_FIELD_KEY_LINE = rf"^[ \t]*[\"'‘“*]?(?:[^\W_]+[ _\-]){{0,2}}(?i:{_PERSON_KEYS})[\"'’”*]?[ \t]*:?[ \t]*\r?\n[ \t]*"
# A table cell holding key and value: "| Customer Gemma Ruiz | Origin: Phone".
_CELL_KEY = rf"(?:^|(?<=\|))[ \t]*(?i:{_PERSON_KEYS})[ \t]+"


class NameFieldRecognizer(PersonNameContextRecognizer):
    """PERSON: the value of a field whose key names a person (key: value, key=value, JSON, table cells)."""

    TRIGGERS = (
        _NameTrigger("person field", re.compile(_FIELD_KEY, re.M), 0.9, _FIELD_END),
        _NameTrigger("person field, value below", re.compile(_FIELD_KEY_LINE, re.M), 0.9, re.compile(_LINE_END)),
        _NameTrigger(
            "person cell", re.compile(_CELL_KEY, re.M), 0.85, re.compile(r"[ \t]*\|"), requires=re.compile(r"\|")
        ),
    )


_MAIL = r"[\w.+\-]+@[^\W_][\w\-]*(?:\.[\w\-]+)+"
_QUOTE = r"(?:>[ \t]*)*"  # a quoted reply's "> " prefixes
# The next line holds only a phone number or a mail address, perhaps labelled ("T: +44 ...", "Mobile 0542 ...").
_CONTACT_LINE = (
    rf"[ \t]*\r?\n[ \t]*{_QUOTE}(?:(?i:tel|phone|mobile|mob|cell|direct|office|fax|e-?mail|mail|t|m|e)\b\.?"
    rf"[ \t]*:?[ \t]*)?(?:[+(]?\d[\d \t()./\-]{{6,}}\d|<?{_MAIL}>?)[ \t]*(?=\r?\n|$)"
)


class NameSignatureRecognizer(PersonNameContextRecognizer):
    """PERSON: a name signing a note or beside its contact details: the cell before a mail address in a CSV
    or table row, "Name <mail>", a name line right above a line holding only a phone number or mail address,
    a name below the signature delimiter "-- ", an agent's "-Naomi Banks" closing a call note."""

    TRIGGERS = (
        _NameTrigger(
            "cell before a mail address",
            re.compile(r"(?:^|(?<=[;|,\t]))[ \t]*\"?", re.M),
            0.85,
            re.compile(rf"\"?[ \t]*[;|,\t][ \t]*\"?{_MAIL}"),
            requires=re.compile(rf"[;|,\t][ \t]*\"?{_MAIL}"),
        ),
        _NameTrigger(
            "name before <mail>",
            re.compile(r"(?:^|(?<=[:;,|\t]))[ \t]*\"?", re.M),
            0.9,
            re.compile(rf"\"?[ \t]*[<(]{_MAIL}[>)]"),
            requires=re.compile(rf"[<(]{_MAIL}[>)]"),
        ),
        _NameTrigger(
            "signature line above a phone number or mail address",
            re.compile(rf"^[ \t]*{_QUOTE}", re.M),
            0.85,
            re.compile(_CONTACT_LINE),
            min_words=2,
            requires=re.compile(_CONTACT_LINE),
        ),
        # The signature delimiter "-- " (RFC 3676) on its own line, the name on the next.
        _NameTrigger(
            "name below a signature delimiter",
            re.compile(rf"^[ \t]*{_QUOTE}--[ \t]*\r?\n[ \t]*{_QUOTE}", re.M),
            0.9,
            re.compile(_LINE_END),
        ),
        _NameTrigger(
            "agent's closing dash",
            re.compile(r"(?<=[^\s-] )[-–—](?=[^\W\d_])"),
            0.85,
            re.compile(r"[ \t]*(?:\((?i:ext|x|tel)\b[^)\n]*\))?(?=[ \t]*(?:\r?\n|$))"),
        ),
        # A dash signature alone on its line: "— Anna Berg" (an em or en dash, or "--": bullets use "-").
        _NameTrigger("dash signature", re.compile(r"^[ \t]*(?:—|–|--)[ \t]*", re.M), 0.85, re.compile(_LINE_END)),
        _NameTrigger(
            "agent's dash and extension",
            re.compile(r"^[ \t]*[-–—](?=[^\W\d_])", re.M),
            0.85,
            re.compile(r"[ \t]*\((?i:ext|x|tel)\b[^)\n]*\)"),
        ),
        _NameTrigger(
            "subject line's dash",
            re.compile(r"[ \t][–—-][ \t]+"),
            0.85,
            re.compile(_LINE_END),
            min_words=2,
        ),
    )


_ROLE_NOUNS = (
    r"[Cc]ust|customer|client|caller|recipient|consignee|candidate|applicant|employee|carer|caregiver|neighbou?r|"
    r"tenant|patient|prev(?:ious|\.)? agent|agent|rep|technician|driver|courier|TL|team lead|supervisor|mgr|"
    r"manager|colleague|[Kk]unde|[Kk]undin|[Mm]itarbeiter(?:in)?|"
    r"client[e]?|clienta|cliente|klant|medewerker"
)
_RELATIONS = r"son|daughter|wife|husband|partner|mother|father|brother|sister|carer|friend|colleague|neighbou?r"


class NameShorthandRecognizer(PersonNameContextRecognizer):
    """PERSON in call-note and ticket shorthand: a role noun before a name ("cust Sylvia Klemt", "agent Elke"),
    "spoke w/", "loop in", "ask for", "on behalf of", "<participle> for", and a name with a relation in
    parentheses ("(Luca, son)", "Friend (Ada)")."""

    TRIGGERS = (
        # lower case (German nouns aside): "Customer Success" is a team, "cust Sylvia" a person
        _NameTrigger("role noun", re.compile(rf"(?<![\w])(?:{_ROLE_NOUNS})[ \t]+(?:{_TITLE})?"), 0.85, None),
        _NameTrigger(
            "shorthand mention",
            re.compile(
                rf"(?<![\w])(?i:spoke w/|spoke w\.|spk w/|talked w/|loop(?:ing)? in|cc'?ing|ask(?:ed)? for|"
                rf"on behalf of|im auftrag von|au nom de|en nombre de|per conto di|namens|"
                rf"(?:conversation|chat|call|meeting)\b[^.!?\n]{{0,24}}?[ \t]with)[ \t]+(?:{_TITLE})?"
            ),
            0.9,
            None,
        ),
        _NameTrigger(
            "by",
            re.compile(
                r"(?<!\w)(?i:started|seen|posted|shared|uploaded|collected|delivered|received|picked up|request|"
                r"requests|sent|added|edited|deleted|removed|booked|scheduled|signed|taken|done|changed|modified)[ \t]+"
                r"(?i:by)[ \t]+"
            ),
            0.85,
            _CLAUSE_END,
        ),
        # "Re: bank details update for Griselda Galilei": two words at least, like "from" in name_recognizers.
        _NameTrigger("for", re.compile(r"(?<!\w)(?i:for)[ \t]+"), 0.85, _CLAUSE_END, min_words=2),
        _NameTrigger(
            "participle for",
            re.compile(
                r"(?<!\w)(?i:created|opened|raised|booked|scheduled|logged|reserved|issued|prepared)\b"
                r"[^.!?\n]{0,40}?[ \t](?i:for)[ \t]+"
            ),
            0.85,
            _CLAUSE_END,
        ),
        _NameTrigger(
            "relation in parentheses",
            re.compile(r"\([ \t]*"),
            0.85,
            re.compile(rf"[ \t]*,[ \t]*(?i:{_RELATIONS})\b"),
        ),
        _NameTrigger(
            "relation before parentheses",
            re.compile(rf"(?<![\w])(?i:{_RELATIONS}|referred by|referral)[ \t]*\([ \t]*"),
            0.85,
            re.compile(r"[ \t]*\)"),
        ),
    )

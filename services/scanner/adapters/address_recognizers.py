"""Street addresses: a street line in one of the shapes European and North American addresses take, and the
locality after it (unit, postcode, city) when present.

A street line is a street-type word, a street name and a house number in the order the country writes them:
  number first (English, French): "221B Baker Street", "1777 Kramer Court", "12 Rue de la Paix", "5, avenue
  Samson"; the English types are USPS Publication 28's street suffixes and their abbreviations;
  type first (Italian, Spanish, French without a number): "Via Roma 12", "Strada Taliercio, 47", "Calle de
  Alcalá, 45", "Plaza de Josefa Salinas 23";
  compound name then number (German, Dutch): "Musterstraße 5", "Wenke-Löchel-Allee 8", "Kerkstraat 12a";
  US military: "PSC 1234, Box 5678, APO AA 12345", "USNS Smith, FPO AE 12345".
Then, optionally: a unit ("Suite 834", "Apt. 4", "Piso 3", "Piano 0"), and a locality: "10115 Berlin",
"75002 Paris", "Johnsonfurt, NE 80119", "1317 YB Amsterdam", "Madrid, 28014", "56011, Gabella (PI)",
"North Holly, S6 7LJ". A UK "Flat 8, " / "Studio 36U, " before the street belongs to the address too.

Scores: a street line with a number 0.85, with a locality as well 0.95: a street type, a name and a house
number in their country's order are as sure as an NER guess (0.85), and the longer address span must win the
overlap with a PERSON or LOCATION read inside it ("633 Koch Club"), or redaction would leave the rest behind.
An address lead-in word before it ("ship to", "address", "Anschrift", "adresse", "dirección", "indirizzo",
"adres") adds 0.25. A street named without a number ("avenue Chrétien") scores 0.35, below the policy's floor
of 0.6 unless such a lead-in precedes it."""

from __future__ import annotations

import re
from collections.abc import Iterator

from services.scanner.adapters.recognizers import RegexPattern, RegexRecognizer

# USPS Publication 28, appendix C1: primary street suffix names and their standard abbreviations.
_EN_TYPES = (
    "alley|aly|avenue|ave|av|bend|bluff|boulevard|blvd|branch|bridge|brook|brooks|burg|burgs|bypass|camp|canyon|"
    "cape|causeway|center|centers|centre|circle|cir|circles|cliff|cliffs|close|club|common|commons|corner|corners|"
    "course|court|ct|courts|cove|coves|creek|crescent|cres|crest|crossing|crossroad|curve|dale|dam|divide|drive|"
    "dr|drives|estate|estates|expressway|extension|extensions|fall|falls|ferry|field|fields|flat|flats|ford|"
    "fords|forest|forge|forges|fork|forks|fort|freeway|garden|gardens|gateway|glen|glens|green|greens|grove|"
    "groves|harbor|harbors|haven|heights|highway|hwy|hill|hills|hollow|inlet|island|islands|isle|junction|"
    "junctions|key|keys|knoll|knolls|lake|lakes|land|landing|lane|ln|light|lights|loaf|lock|locks|lodge|loop|"
    "mall|manor|manors|meadow|meadows|mews|mill|mills|mission|motorway|mount|mountain|mountains|neck|orchard|"
    "oval|overpass|park|parks|parkway|parkways|pkwy|pass|passage|path|pike|pine|pines|place|pl|plain|plains|"
    "plaza|point|points|port|ports|prairie|radial|ramp|ranch|rapid|rapids|rest|ridge|ridges|river|road|rd|"
    "roads|route|row|rue|run|shoal|shoals|shore|shores|skyway|spring|springs|spur|spurs|square|sq|squares|"
    "station|stravenue|stream|street|st|streets|summit|terrace|ter|throughway|trace|track|trafficway|trail|"
    "trl|tunnel|turnpike|underpass|union|unions|valley|valleys|via|viaduct|view|views|village|villages|ville|"
    "vista|walk|walks|wall|way|ways|well|wells|wharf|wynd"
)
_FR_TYPES = (
    r"rue|avenue|av\.|boulevard|bd|chemin|impasse|place|allée|quai|route|cours|passage|square|rond-point|"
    r"sentier|voie|cité|faubourg|montée|parvis|promenade|résidence|villa"
)
_IT_ES_TYPES = (
    r"via|viale|piazza|piazzale|corso|largo|vicolo|strada|borgo|contrada|lungomare|stretto|incrocio|rotonda|"
    r"vico|galleria|salita|canale|calle|c/|c\.|avenida|avda\.?|plaza|paseo|camino|carrer|carretera|ronda|"
    r"travesía|glorieta|pasaje|pasadizo|acceso|cuesta|callejón|alameda|rambla|urbanización|vial|bajada|"
    r"partida|puerta|cañada|senda|praça|rua|travessa|largo"
)
_DE_NL_SUFFIXES = (
    r"straße|strasse|str\.|weg|gasse|platz|allee|damm|ufer|chaussee|pfad|steig|markt|graben|hof|"
    r"straat|laan|plein|gracht|kade|singel|dijk|steeg|park|dreef|plantsoen|baan|veld|haven|boulevard"
)
_RING_PAD = r"ring|pad"  # German and Dutch street-name endings that end English words too
_MILITARY_UNITS = r"PSC|Unit|CMR"
_MILITARY_SHIPS = r"USNS|USS|USCGC|USNV"
_UPPER = r"A-ZÀ-ÖØ-Þ"
_CAP = rf"[{_UPPER}][\w'’.\-]*"  # a capitalised word: street and place names
_NAME_WORD = rf"(?:{_CAP}|d['’]{_CAP})"
_PARTICLE = r"de|del|della|dei|degli|la|las|los|el|di|da|du|des|le|les|van|der|den|y|e|et"
_HOUSE = r"\d{1,5}(?:[ ]?[A-Za-z](?!\w))?(?:[-/]\d{1,5}[A-Za-z]?)?"
# A house number starts a token and does not continue a digit group ("+1 303 974 1536 Each ...").
_NUMBER_START = r"(?<![\w./,\-+])(?<!\d[ \t])"
# English street types are capitalised ("Baker Street", "Kramer Ct"): lower case they are common nouns.
_EN_TYPE = rf"(?=[A-Z])(?i:{_EN_TYPES})\b(?:\.? (?:N|S|E|W|NE|NW|SE|SW)\b)?"  # Pennsylvania Avenue NW
_STREET_LINES = (
    # 221B Baker Street / 1777 Kramer Court / 17 Jones Light
    rf"{_NUMBER_START}{_HOUSE},? (?:(?:{_CAP}|\d+(?:st|nd|rd|th)) ){{1,4}}{_EN_TYPE}\.?",
    # 12 Rue de la Paix / 5, avenue Samson / 7 bis, boulevard Paulette Gosselin
    rf"{_NUMBER_START}{_HOUSE}(?: (?:bis|ter))?,? (?i:{_FR_TYPES})(?: (?:{_NAME_WORD}|{_PARTICLE})){{1,5}}",
    # Via Roma 12 / Strada Taliercio, 47 / Calle de Alcalá, 45 / avenue de Raymond (a locality must follow)
    rf"(?<!\w)(?i:{_IT_ES_TYPES}|{_FR_TYPES})(?: (?:{_NAME_WORD}|{_PARTICLE})){{1,6}}"
    rf"(?:,? (?:n[º°o]\.? ?)?{_HOUSE}(?!\w))?",
    # Musterstraße 5 / Wenke-Löchel-Allee 8 / Kerkstraat 12a / Hannasteeg 6; -ring and -pad, which end
    # English words too (Spring, String, Notepad), after three letters at least: Hohenzollernring 3, Jaagpad 2
    rf"(?<!\w)[A-ZÄÖÜ][\w'’\-]*(?i:{_DE_NL_SUFFIXES}) {_HOUSE}(?!\w)",
    rf"(?<!\w)[A-ZÄÖÜ][\w'’\-]{{2,}}(?i:{_RING_PAD}) {_HOUSE}(?!\w)",
    # Flat 8, Richardson Glens (UK: the number is the flat's, the street has none)
    rf"(?<!\w)(?:Flat|Studio|Apartment|Unit) \w{{1,5}},? (?:{_CAP} ){{1,3}}{_EN_TYPE}",
    # US military mail
    rf"(?<!\w)(?:{_MILITARY_UNITS}) \d{{3,5}},? Box \d{{3,5}},? [AFD]PO A[AEP] \d{{5}}\b",
    rf"(?<!\w)(?:{_MILITARY_SHIPS}) [A-Z]\w+,? FPO A[AEP] \d{{5}}\b",
)
_UNIT = (
    r"(?:,? (?:Suite|Ste\.?|Apt\.?|Apartment|Unit|Flat|Floor|Fl\.|Piso|Puerta|Planta|Piano|Interno|Int\.|Scala|"
    r"Appartamento|Etage|Stock|Whg\.?|bus|app\.?|bât\.?|escalier) [\w/ºª°.\-]{1,6})*"
)
# A place name: capitalised words, particles between them (Frankfurt am Main, Alcalá de Henares, Bergen op
# Zoom), a province in brackets (Gabella (PI)); "St." abbreviated before the next word.
_CITY_WORD = r"['’]?[A-ZÀ-ÖØ-Þ][\w'’\-]*(?:\.(?= [A-ZÀ-ÖØ-Þ]))?"
_CITY = rf"{_CITY_WORD}(?: (?:(?:{_PARTICLE}|am|an|im|op|aan|sur|bei) )?{_CITY_WORD}| \([A-Z]{{2}}\))*"
_POSTCODE = r"\d{5}|\d{4} ?[A-Z]{2}|[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}"
_LOCALITY = (
    rf"(?:,? (?:{_POSTCODE}),? {_CITY}"  # 10115 Berlin / 1317 YB, Amsterdam / 56011, Gabella (PI)
    rf"|, {_CITY},? (?:[A-Z]{{2}} \d{{5}}(?:-\d{{4}})?|{_POSTCODE})"  # Johnsonfurt, NE 80119 / Madrid, 28014
    rf"|, {_CITY}, {_CITY}, (?:{_POSTCODE}))"  # Browne Land, East Eileen, SN7 6XU
)
_STREET = "|".join(_STREET_LINES)
_STREET_RE = re.compile(_STREET)
_TAIL_RE = re.compile(rf"{_UNIT}(?P<locality>{_LOCALITY})?")
_NAME_ONLY_SCORE = 0.35  # a street without a number; with a lead-in word, 0.6: the policy's floor


def _words(alternation: str) -> list[str]:
    """The words of one of the street-word alternations above, as literal text: `av\\.` is "av.", `avda\\.?`
    both "avda" and "avda."; any other regex syntax in them would be a mistake here, and raises."""
    words: list[str] = []
    for alternative in alternation.split("|"):
        optional_dot = alternative.endswith(r"\.?")
        word = (alternative[:-3] if optional_dot else alternative).replace(r"\.", ".")
        if not word or re.search(r"[\\()\[\]{}?*+^$]", word):
            raise ValueError(f"not a literal street word: {alternative!r}")
        words += [word, word + "."] if optional_dot else [word]
    return words


def _trie(words: list[str]) -> str:
    """`words` as one alternation factored on shared prefixes ("st|street|streets" is `st(?:reets?)?`-like):
    the regex engine tries one branch per character instead of every word in turn."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def alternation(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + alternation(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = "|".join(branches)
        if "" in node:
            return f"(?:{body})?"
        return body if len(branches) == 1 else f"(?:{body})"

    return alternation(root)


def _before_space(words: list[str], *, word_start: bool, ignore_case: bool) -> str:
    """Lookbehinds, at a space, for one of `words` right before it (starting a word with `word_start`): one per
    word length, since a lookbehind has a fixed width."""
    by_length: dict[int, list[str]] = {}
    for word in words:
        by_length.setdefault(len(word), []).append(word)
    start = r"(?<!\w)" if word_start else ""
    flags = "(?i:{})" if ignore_case else "(?:{})"
    return "|".join(f"(?<={start}{flags.format(_trie(sorted(set(same))))} )" for _, same in sorted(by_length.items()))


# Every street line (_STREET_LINES, numbered from 1) holds a space next to its street word, so the pre-screen
# looks at spaces only:
#   English types after it: capitalised (checked here), then any case, then a word end (lines 1 and 6);
#   French, Italian, Spanish types before it, at a word start, any case, a name or particle after it (lines
#   2 and 3; a name starts with a capital or "d'", so the lookahead asks only for a first letter);
#   German and Dutch endings, -ring and -pad, PSC/Unit/CMR before it, a house number after it (lines 4, 5, 7);
#   USNS/USS/USCGC/USNV before it, a ship's name after it (line 8).
# So it matches wherever _STREET_RE does (a necessary condition: same detections, gate or no gate), for a
# tenth of its cost on prose; the lead-in words (CONTEXT) only raise the score of a street line found.
_PARTICLE_INITIALS = "".join(sorted({particle[0] for particle in _PARTICLE.split("|")}))  # holds "d" of d'
_PRESCREEN = (
    rf" (?:(?=[A-Z])(?:(?i:{_trie(_words(_EN_TYPES))})\b"
    rf"|{_before_space(_words(_MILITARY_SHIPS), word_start=True, ignore_case=False)})"
    rf"|(?=\d)(?:{_before_space(_words(_DE_NL_SUFFIXES) + _words(_RING_PAD), word_start=False, ignore_case=True)}"
    rf"|{_before_space(_words(_MILITARY_UNITS), word_start=True, ignore_case=False)})"
    rf"|(?=[{_UPPER}{_PARTICLE_INITIALS}])"
    rf"(?:{_before_space(_words(_IT_ES_TYPES) + _words(_FR_TYPES), word_start=True, ignore_case=True)}))"
)


class StreetAddressRecognizer(RegexRecognizer):
    """STREET_ADDRESS: a street line and the locality after it (see the module docstring)."""

    ENTITY = "STREET_ADDRESS"
    # The registry's gate (detector.load_registry): it runs candidates() only on texts this matches, and it
    # matches wherever a street line can (see _PRESCREEN).
    PRESCREEN = re.compile(_PRESCREEN)
    PATTERNS = (
        RegexPattern("street and locality", rf"(?:{_STREET}){_UNIT}{_LOCALITY}", 0.95),
        RegexPattern("street line", rf"(?:{_STREET}){_UNIT}", 0.85),
        # "avenue Chrétien", "Via Roma" without a number: below the policy's floor unless a lead-in word
        # ("address", "ship to", "habite") comes before it.
        RegexPattern("street name", rf"(?:{_STREET})", _NAME_ONLY_SCORE),
    )
    CONTEXT = (
        "address",
        "addr",
        "ship to",
        "shipping to",
        "deliver to",
        "delivered to",
        "send it to",
        "live at",
        "lives at",
        "living at",
        "located at",
        "moved to",
        "adresse",
        "anschrift",
        "wohnhaft",
        "wohne in",
        "lieferung an",
        "domicile",
        "habite",
        "livraison",
        "dirección",
        "direccion",
        "domicilio",
        "envío a",
        "envíenlo a",
        "vivo en",
        "indirizzo",
        "residenza",
        "abito in",
        "spedite",
        "adres",
        "woonadres",
        "bezorgadres",
        "woon op",
        "stuur",
    )
    CONTEXT_WINDOW = 40
    CONTEXT_BOOST = 0.25

    def candidates(self, text: str) -> Iterator[tuple[RegexPattern, int, int, int]]:
        """One pass for street lines; the unit and locality are then read where each street line ends. The
        pattern reported is the reading found: street and locality, street line, or street name alone (only
        the last may lack a number: "Via Roma" is a street line only when a lead-in word says so)."""
        with_locality, line, name_only = self._patterns
        for match in _STREET_RE.finditer(text):
            start, end = match.span()
            tail = _TAIL_RE.match(text, end)
            if tail is not None and tail.group("locality"):
                yield with_locality, start, tail.end(), start
            elif any(c.isdigit() for c in text[start : tail.end() if tail else end]):
                yield line, start, tail.end() if tail else end, start
            else:
                yield name_only, start, end, start

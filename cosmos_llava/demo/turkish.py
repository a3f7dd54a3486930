"""The Turkish morphology the shape-world teacher needs: small, rule-based and tested word by word.

Suffixes are chosen by vowel harmony from the word's last vowel, not looked up:
- two-way harmony (-lar/-ler, -da/-de, -dan/-den, -a/-e): "a" after a back vowel (a ı o u), "e" after a
  front vowel (e i ö ü);
- four-way harmony (-ın/-in/-un/-ün, the question particle mı/mi/mu/mü): "ı" after a/ı, "i" after e/i,
  "u" after o/u, "ü" after ö/ü.

Consonant rules:
- hardening: a suffix starting with "d" starts with "t" after a voiceless consonant (ç f h k p s ş t):
  "üst" + "da" -> "üstte", "alt" + "dan" -> "alttan";
- softening before a vowel-initial suffix: final "k" -> "ğ", "p" -> "b", "ç" -> "c" in words of two or
  more syllables ("küçük" -> "küçüğü"), "nk" -> "ng" in any word ("renk" -> "rengi"). Monosyllables keep
  their consonant ("tek" -> "teki"), and final "t" is left alone: whether it softens is lexical
  ("kanat" -> "kanadı" but "boyut" -> "boyutu", "saat" -> "saati") and no word here softens it;
- buffer consonants after a vowel: "n" for the genitive ("dairenin"), "y" for the accusative and dative
  ("daireyi", "daireye"), "s" for the possessive ("ortası").

Lexical exceptions are listed, not guessed: `_VOWEL_DROP` ("şekil" -> "şekli", "şeklin": the second
vowel drops before a vowel-initial suffix). Loan words with irregular harmony ("saat" -> "saati") are out
of scope: none is used.

Case suffixes on a possessed word take the pronominal "n" (`pronominal=True`):
"sol" -> possessive "solu" -> locative "solunda" ("karenin solunda": to the left of the square).
"""

from __future__ import annotations

__all__ = [
    "ablative",
    "accusative",
    "capitalize",
    "dative",
    "genitive",
    "harmony2",
    "harmony4",
    "join_and",
    "last_vowel",
    "locative",
    "number_word",
    "plural",
    "possessive",
    "question",
    "question_particle",
    "relative_locative",
]

VOWELS = "aeıioöuü"
BACK_VOWELS = "aıou"
VOICELESS = "çfhkpsşt"

# Before a vowel-initial suffix these stems lose a vowel (a closed lexical class in Turkish).
_VOWEL_DROP = {"şekil": "şekl", "ağız": "ağz", "burun": "burn", "isim": "ism", "resim": "resm"}
_SOFTEN = {"k": "ğ", "p": "b", "ç": "c"}
_NUMBERS = ("sıfır", "bir", "iki", "üç", "dört", "beş", "altı", "yedi", "sekiz", "dokuz", "on")


def _lower(word: str) -> str:
    return word.replace("I", "ı").replace("İ", "i").lower()


def last_vowel(word: str) -> str:
    """The word's last vowel (lower case); ValueError for a word without one."""
    for ch in reversed(_lower(word)):
        if ch in VOWELS:
            return ch
    raise ValueError(f"no vowel in {word!r}")


def harmony2(word: str) -> str:
    """"a" or "e": the two-way harmony vowel for a suffix on `word`."""
    return "a" if last_vowel(word) in BACK_VOWELS else "e"


def harmony4(word: str) -> str:
    """"ı", "i", "u" or "ü": the four-way harmony vowel for a suffix on `word`."""
    return {"a": "ı", "ı": "ı", "e": "i", "i": "i", "o": "u", "u": "u", "ö": "ü", "ü": "ü"}[last_vowel(word)]


def _ends_with_vowel(word: str) -> bool:
    return _lower(word)[-1] in VOWELS


def _syllables(word: str) -> int:
    return sum(ch in VOWELS for ch in _lower(word))


def _d(word: str) -> str:
    """"d" or "t": the first consonant of -da/-dan/-dır after `word` (hardening)."""
    return "t" if _lower(word)[-1] in VOICELESS else "d"


def _vowel_stem(word: str) -> str:
    """`word` as it stands before a vowel-initial suffix: vowel drop, then consonant softening."""
    if word in _VOWEL_DROP:
        return _VOWEL_DROP[word]
    if word.endswith("nk"):
        return word[:-1] + "g"
    if word[-1] in _SOFTEN and _syllables(word) > 1:
        return word[:-1] + _SOFTEN[word[-1]]
    return word


def _vowel_suffix(word: str, buffer: str, vowel: str, rest: str = "") -> str:
    """`word` + a suffix starting with a harmony vowel: buffer consonant after a vowel, else the
    softened stem. Harmony is taken from the unsoftened word (softening never changes a vowel)."""
    if _ends_with_vowel(word):
        return word + buffer + vowel + rest
    return _vowel_stem(word) + vowel + rest


def plural(word: str) -> str:
    """"daire" -> "daireler", "yıldız" -> "yıldızlar"."""
    return word + "l" + harmony2(word) + "r"


def genitive(word: str) -> str:
    """"daire" -> "dairenin", "yıldız" -> "yıldızın", "şekil" -> "şeklin"."""
    return _vowel_suffix(word, "n", harmony4(word), "n")


def accusative(word: str, pronominal: bool = False) -> str:
    """"daire" -> "daireyi", "üçgen" -> "üçgeni"; pronominal ("solu") -> "solunu"."""
    if pronominal:
        return word + "n" + harmony4(word)
    return _vowel_suffix(word, "y", harmony4(word))


def dative(word: str, pronominal: bool = False) -> str:
    """"kare" -> "kareye", "yıldız" -> "yıldıza"; pronominal ("solu") -> "soluna"."""
    if pronominal:
        return word + "n" + harmony2(word)
    return _vowel_suffix(word, "y", harmony2(word))


def locative(word: str, pronominal: bool = False) -> str:
    """"sol" -> "solda", "üst" -> "üstte", "orta" -> "ortada"; pronominal ("solu") -> "solunda"."""
    if pronominal:
        return word + "nd" + harmony2(word)
    return word + _d(word) + harmony2(word)


def ablative(word: str, pronominal: bool = False) -> str:
    """"kare" -> "kareden", "alt" -> "alttan"; pronominal ("sayısı") -> "sayısından"."""
    if pronominal:
        return word + "nd" + harmony2(word) + "n"
    return word + _d(word) + harmony2(word) + "n"


def possessive(word: str) -> str:
    """Third person singular possessive: "renk" -> "rengi", "boyut" -> "boyutu", "orta" -> "ortası"."""
    return _vowel_suffix(word, "s", harmony4(word))


def relative_locative(word: str) -> str:
    """Locative + "-ki" (which does not harmonise here): "sol" -> "soldaki", "üst" -> "üstteki"."""
    return locative(word) + "ki"


def question_particle(word: str) -> str:
    """The question particle that follows `word`: "kırmızı" -> "mı", "mavi" -> "mi", "mor" -> "mu",
    "büyük" -> "mü"."""
    return "m" + harmony4(word)


def question(phrase: str) -> str:
    """`phrase` + its question particle (a separate word, harmonising with the phrase's last word):
    "daire kırmızı" -> "daire kırmızı mı"."""
    return f"{phrase} {question_particle(phrase.split()[-1])}"


def number_word(n: int) -> str:
    """0..10 as a Turkish word: 3 -> "üç"."""
    if not 0 <= n < len(_NUMBERS):
        raise ValueError(f"no number word for {n}")
    return _NUMBERS[n]


def capitalize(text: str) -> str:
    """First letter upper case with Turkish rules ("i" -> "İ", "ı" -> "I"); the rest unchanged."""
    if not text:
        return text
    first = {"i": "İ", "ı": "I"}.get(text[0], text[0].upper())
    return first + text[1:]


def join_and(items: list[str]) -> str:
    """"a", "a ve b", "a, b ve c"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " ve " + items[-1]

"""cosmos_llava.text on real Turkish and English strings: exact outputs and exact error reasons."""

import pytest

from cosmos_llava.text import (
    COT_STAGES,
    FormatError,
    TraceError,
    answers_match,
    check_translation,
    format_cot,
    language_of,
    looks_turkish,
    named_entities,
    normalize_answer,
    numbers_in,
    option_letter,
    parse_cot,
    parse_qa_pairs,
    protect,
    restore,
    turkish_casefold,
)

# --------------------------------------------------------------------------------------------------
# turkish_casefold


@pytest.mark.parametrize(
    "text, expected",
    [
        ("İSTANBUL", "istanbul"),
        ("IĞDIR", "ığdır"),
        ("KIRMIZI İPLİK", "kırmızı iplik"),
        ("Işık", "ışık"),
        ("ÇÖĞÜŞ", "çöğüş"),
        ("I\u0307zmir", "izmir"),  # decomposed İ (NFD)
        ("i\u0307stanbul", "istanbul"),  # what Python's own "İstanbul".lower() produces
        ("already lower", "already lower"),
    ],
)
def test_turkish_casefold(text, expected):
    assert turkish_casefold(text) == expected


def test_turkish_casefold_avoids_the_combining_dot():
    assert "İ".lower() == "i\u0307"  # the pitfall this function exists for
    assert turkish_casefold("İ") == "i"
    assert len(turkish_casefold("İzmir")) == 5


# --------------------------------------------------------------------------------------------------
# normalize_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Kedi", "kedi"),
        ("  Kedi.  ", "kedi"),
        ("KIRMIZI", "kırmızı"),
        ("İKİ", "iki"),
        ("Cevap: Kedi", "kedi"),
        ("cevap : kedi", "kedi"),
        ("Yanıt: Mavi bir araba.", "mavi bir araba"),
        ("YANIT: Evet", "evet"),
        ("Sonuç: Masada iki kedi var.", "masada iki kedi var"),
        ("Answer: a dog", "a dog"),
        ("The answer is: Kedi!", "kedi"),
        ("The correct answer is blue.", "blue"),
        ("Doğru cevap: Evet, var.", "evet var"),
        ("Doğru cevap B şıkkıdır", "b şıkkıdır"),
        ("**Cevap:** *Kedi*", "kedi"),
        ("Sonuç: Cevap: KIRMIZI", "kırmızı"),
        ("Cevap: 3,5.", "3.5"),
        ("3.5", "3.5"),
        ("12.0", "12.0"),  # numeric equality is answers_match's job
        ("1.000", "1.000"),
        ("Ankara'da", "ankarada"),
        ("İstanbul’un", "istanbulun"),
        ("kedi/köpek", "kedi köpek"),
        ("çay,  şeker\tve\nsüt", "çay şeker ve süt"),
        ("-3", "-3"),
        ("Cevap: -3", "-3"),
        ("2-3", "2 3"),
        ("%50", "50"),
        ("cevap", "cevap"),  # without a colon the word is the answer itself
        ("", ""),
        ("?!", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_normalize_answer_composes_unicode():
    decomposed = "Gu\u0308zel c\u0327ic\u0327ek"  # "Güzel çiçek" with combining marks
    assert normalize_answer(decomposed) == "güzel çiçek"
    assert normalize_answer(decomposed) == normalize_answer("Güzel çiçek")


# --------------------------------------------------------------------------------------------------
# option_letter


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B)", "B"),
        ("B.", "B"),
        ("B:", "B"),
        ("B) Kedi", "B"),
        ("(c) Masanın üzerinde", "C"),
        ("D. Mavi", "D"),
        ("Seçenek B", "B"),
        ("SEÇENEK B", "B"),
        ("Şık: C", "C"),
        ("ŞIK: C", "C"),
        ("Cevap: (D)", "D"),
        ("Cevap:D", "D"),
        ("Yanıt: E", "E"),
        ("option C", "C"),
        ("Option (C)", "C"),
        ("The answer is A.", "A"),
        ("The correct answer is (H)", "H"),
        ("Correct choice: F", "F"),
        ("**Cevap:** B", "B"),
        ("Doğru cevap B şıkkıdır.", "B"),
        ("Doğru seçenek: C", "C"),
        ("B'dir.", "B"),
        ("C şıkkı doğru", "C"),
        ("Option C is correct", "C"),
        ("A", "A"),
        ("A) cat", "A"),
        ("  G  ", "G"),
    ],
)
def test_option_letter(text, expected):
    assert option_letter(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A cat",
        "Bir kedi",
        "Bir",
        "B kedi",
        "The answer is A cat",
        "Cevap: B, çünkü kedi siyah.",
        "A.B.D.",  # "ABD" (USA), not option A
        "I",  # outside A-H
        "İ",
        "J)",
        "Kedi",
        "Evet",
        "",
        "(AB)",
    ],
)
def test_option_letter_none_for_ordinary_text(text):
    assert option_letter(text) is None


# --------------------------------------------------------------------------------------------------
# answers_match


@pytest.mark.parametrize(
    "conclusion, truth",
    [
        # option letters
        ("B", "B"),
        ("Cevap: (B)", "b"),
        ("The answer is A.", "A"),
        ("Seçenek C", "C) Masanın altında"),
        ("Kedi", "B) Kedi"),  # the option's text
        ("B) Kedi", "kedi"),
        # normalised text
        ("Kırmızı.", "kırmızı"),
        ("KIRMIZI", "kırmızı"),
        ("Cevap: Masanın üzerinde", "masanın üzerinde"),
        ("İstanbul'da", "istanbulda"),
        # yes / no
        ("Evet", "evet"),
        ("Evet, masada iki kedi var.", "evet"),
        ("Evet, masada iki kedi var.", "Evet."),
        ("Yes, there are two cats.", "evet"),
        ("Hayır, masada kedi yok.", "hayır"),
        ("Hayır.", "no"),
        ("Değil.", "hayır"),
        ("Değildir.", "hayır"),
        ("Yanlış", "no"),
        ("Doğru değil.", "hayır"),
        ("Doğrudur.", "evet"),
        ("Cevap: Evet", "yes"),
        # numbers
        ("3", "3"),
        ("üç", "3"),
        ("3", "Üç"),
        ("on iki", "12"),
        ("oniki", "12"),
        ("yirmi üç", "23"),
        ("altmış altı", "66"),
        ("yüz", "100"),
        ("sıfır", "0"),
        ("twenty-three", "23"),
        ("twelve", "on iki"),
        ("12", "12.0"),
        ("3,5", "3.5"),
        ("3.50", "3,5"),
        ("Cevap: 4.", "dört"),
        ("1.000", "1.000"),
    ],
)
def test_answers_match(conclusion, truth):
    assert answers_match(conclusion, truth) is True


@pytest.mark.parametrize(
    "conclusion, truth",
    [
        ("evet", "hayır"),
        ("Evet, masada iki kedi var.", "hayır"),
        ("Hayır", "evet"),
        ("Doğru değil.", "evet"),  # "not correct"
        ("Yes", "no"),
        ("3", "13"),
        ("üç", "13"),
        ("on üç", "3"),
        ("kedi", "kediler"),
        ("A cat", "A"),
        ("A", "B"),
        ("A) Kedi", "B) Kedi"),  # letters decide when both have one
        ("Cevap: C", "B) Kedi"),
        ("-3", "3"),
        ("1", "1.000"),  # thousands in Turkish, decimals in English: no numeric match
        ("Resimde 3 kedi var.", "3"),  # numbers are not extracted from sentences
        ("Evet", "Evet, masada kedi var."),  # a sentence truth is not a yes/no truth
        ("Hayır, üç kedi var.", "Hayır, iki kedi var."),
        ("", ""),
        ("Cevap:", "cevap"),
        ("Kedi", ""),
    ],
)
def test_answers_do_not_match(conclusion, truth):
    assert answers_match(conclusion, truth) is False


# --------------------------------------------------------------------------------------------------
# language_of / looks_turkish


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Görselde kırmızı bir araba ve iki kişi görünüyor.", "tr"),
        ("The image shows a red car and two people.", "en"),
        ("Resimde kaç kedi var?", "tr"),
        ("What is the man holding?", "en"),
        ("Istanbul", "unknown"),
        ("OK", "unknown"),
        ("Ahmet is reading a book in İzmir.", "en"),
        ("Ahmet and Ayşe are eating döner in Beşiktaş.", "en"),
        ("Hayır, masada sadece bir kedi var.", "tr"),
        ("Bu resimde neler görüyorsun?", "tr"),
        ("Masada kalem var.", "tr"),  # no Turkish letters, function word only
        ("Adam telefon tutuyor.", "tr"),  # suffix only
        ("Görselde bir laptop ve mouse var.", "tr"),
        ("Kadın elinde şemsiye tutuyor ve yağmur yağıyor.", "tr"),
        ("<image>\nWhat color is the car?", "en"),
        ("<image>\nArabanın rengi ne?", "tr"),
        ("The ruler is similar to the others.", "en"),
        ("Evet.", "tr"),
        ("Hayır", "tr"),
        ("Yes", "en"),
        ("Kırmızı", "tr"),
        ("Kedi", "unknown"),
        ("<image>", "unknown"),
        ("12345", "unknown"),
        ("`for x in items: print(x) is None`", "unknown"),  # code is not language evidence
        ("https://example.com/the/and/is", "unknown"),
        ("", "unknown"),
    ],
)
def test_language_of(text, expected):
    assert language_of(text) == expected
    assert looks_turkish(text) is (expected == "tr")


# --------------------------------------------------------------------------------------------------
# parse_cot / format_cot

STAGES = {
    "SUMMARY": "Soruyu yanıtlamak için görseldeki kedileri sayacağım.",
    "CAPTION": "Görselde ahşap bir masanın üzerinde iki kedi oturuyor.",
    "REASONING": "Masada bir siyah bir de beyaz kedi var.\nBaşka hayvan görünmüyor.",
    "CONCLUSION": "İki",
}
TRACE = (
    "<SUMMARY>Soruyu yanıtlamak için görseldeki kedileri sayacağım.</SUMMARY>\n\n"
    "<CAPTION>Görselde ahşap bir masanın üzerinde iki kedi oturuyor.</CAPTION>\n\n"
    "<REASONING>Masada bir siyah bir de beyaz kedi var.\nBaşka hayvan görünmüyor.</REASONING>\n\n"
    "<CONCLUSION>İki</CONCLUSION>"
)


def test_cot_stages():
    assert COT_STAGES == ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")


def test_format_cot_canonical_form_and_round_trip():
    assert format_cot(STAGES) == TRACE
    assert parse_cot(TRACE) == STAGES
    assert list(parse_cot(TRACE)) == list(COT_STAGES)
    assert parse_cot(format_cot(STAGES)) == STAGES


def test_parse_cot_strips_stage_text_and_allows_any_whitespace_between_tags():
    text = "  \n<SUMMARY>\n  Özet.  \n</SUMMARY><CAPTION> Altyazı </CAPTION>\n<REASONING>Akıl.</REASONING>\t<CONCLUSION>\nEvet\n</CONCLUSION>\n"
    assert parse_cot(text) == {"SUMMARY": "Özet.", "CAPTION": "Altyazı", "REASONING": "Akıl.", "CONCLUSION": "Evet"}


def _trace(summary="<SUMMARY>a</SUMMARY>", caption="<CAPTION>b</CAPTION>",
           reasoning="<REASONING>c</REASONING>", conclusion="<CONCLUSION>d</CONCLUSION>"):
    return summary + caption + reasoning + conclusion


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "missing <SUMMARY>"),
        ("Masada iki kedi var.", "missing <SUMMARY>"),
        (_trace(caption=""), "missing <CAPTION>"),
        (_trace(conclusion=""), "missing <CONCLUSION>"),
        ("<summary>a</summary>" + _trace(summary=""), "missing <SUMMARY>"),  # tags are case-sensitive
        (_trace(conclusion="<CONCLUSION>İki kedi var"), "<CONCLUSION> is not closed"),  # truncated output
        (_trace(summary="<SUMMARY>a"), "<SUMMARY> is not closed"),
        (_trace(reasoning="<REASONING>c</CONCLUSION>"), "unexpected </CONCLUSION> inside <REASONING>"),
        ("a</SUMMARY>" + _trace(), "</SUMMARY> without <SUMMARY>"),
        (_trace() + "</CONCLUSION>", "</CONCLUSION> without <CONCLUSION>"),
        (_trace() + "<REASONING>tekrar</REASONING>", "duplicate <REASONING>"),
        (_trace(summary="<CAPTION>b</CAPTION>", caption="<SUMMARY>a</SUMMARY>"), "<CAPTION> comes before <SUMMARY>"),
        (_trace(reasoning="<CONCLUSION>d</CONCLUSION>", conclusion="<REASONING>c</REASONING>"),
         "<CONCLUSION> comes before <REASONING>"),
        ("Elbette! " + _trace(), "text outside the tags: 'Elbette!'"),
        (_trace(caption="<CAPTION>b</CAPTION> ara metin "), "text outside the tags: 'ara metin'"),
        (_trace() + "\nUmarım bu yanıt yardımcı olmuştur, başka sorunuz varsa sorabilirsiniz.",
         "text outside the tags: 'Umarım bu yanıt yardımcı olmuştur, başk…'"),
        (_trace(summary="<SUMMARY>  \n </SUMMARY>"), "<SUMMARY> is empty"),
        (_trace(conclusion="<CONCLUSION></CONCLUSION>"), "<CONCLUSION> is empty"),
    ],
)
def test_parse_cot_errors(text, reason):
    with pytest.raises(TraceError) as caught:
        parse_cot(text)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_trace_error_is_a_value_error():
    assert issubclass(TraceError, ValueError)
    assert issubclass(FormatError, ValueError)


def test_format_cot_strips_stage_text():
    assert format_cot({**STAGES, "CONCLUSION": "  İki \n"}) == TRACE


@pytest.mark.parametrize(
    "stages, reason",
    [
        ({k: v for k, v in STAGES.items() if k != "CAPTION"}, "missing <CAPTION>"),
        ({**STAGES, "ANSWER": "İki"}, "unknown stage 'ANSWER'"),
        ({**STAGES, "REASONING": "  "}, "<REASONING> is empty"),
        ({**STAGES, "CAPTION": "Bir kedi </CAPTION> var"}, "<CAPTION> contains a stage tag"),
    ],
)
def test_format_cot_errors(stages, reason):
    with pytest.raises(TraceError) as caught:
        format_cot(stages)
    assert caught.value.reason == reason


# --------------------------------------------------------------------------------------------------
# parse_qa_pairs


def test_parse_qa_pairs_plain():
    text = "Soru: Resimde kaç kedi var?\nCevap: İki kedi var.\nSoru: Kediler ne renk?\nCevap: Biri siyah, diğeri beyaz."
    assert parse_qa_pairs(text) == [
        ("Resimde kaç kedi var?", "İki kedi var."),
        ("Kediler ne renk?", "Biri siyah, diğeri beyaz."),
    ]


def test_parse_qa_pairs_every_accepted_form():
    text = """İşte görsel hakkında sorular:

**Soru 1:** Resimde kaç kedi var?
**Cevap:** İki kedi var.
---
2. Soru: Kediler ne renk?
Cevap: Biri siyah,
diğeri beyaz.

S: Kediler nerede?
C: Masanın üzerinde.
Question: What is on the table?
ANSWER: Two cats.
- **Soru**: Işık nereden geliyor?
- **Yanıt**: Soldaki pencereden.
### Soru 7:
Arka planda ne var?
YANIT:
Bir kitaplık.

Kitaplıkta kitaplar var.
**Soru: Kediler uyuyor mu?**
**Cevap: Hayır, uyanıklar.**
Q: Is it day?
A: Yes.
"""
    assert parse_qa_pairs(text) == [
        ("Resimde kaç kedi var?", "İki kedi var."),
        ("Kediler ne renk?", "Biri siyah,\ndiğeri beyaz."),
        ("Kediler nerede?", "Masanın üzerinde."),
        ("What is on the table?", "Two cats."),
        ("Işık nereden geliyor?", "Soldaki pencereden."),
        ("Arka planda ne var?", "Bir kitaplık.\n\nKitaplıkta kitaplar var."),
        ("Kediler uyuyor mu?", "Hayır, uyanıklar."),
        ("Is it day?", "Yes."),
    ]


def test_parse_qa_pairs_label_only_inside_a_line_is_text():
    text = "Soru: Tabelada ne yazıyor?\nCevap: Tabelada \"Soru: Cevap:\" yazıyor.\nSonuç: iyi."
    assert parse_qa_pairs(text) == [("Tabelada ne yazıyor?", 'Tabelada "Soru: Cevap:" yazıyor.\nSonuç: iyi.')]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no question/answer pairs found"),
        ("Görselde iki kedi var.", "no question/answer pairs found"),
        ("Soru: Kaç kedi var?\nSoru: Kediler ne renk?\nCevap: Siyah.", "question without an answer: 'Kaç kedi var?'"),
        ("Soru: Kaç kedi var?\nCevap: İki.\nSoru: Kediler ne renk?", "question without an answer: 'Kediler ne renk?'"),
        ("Cevap: İki kedi var.", "answer without a question: 'İki kedi var.'"),
        ("Soru: Kaç kedi var?\nCevap: İki.\nCevap: Üç.", "answer without a question: 'Üç.'"),
        ("Soru:\nCevap: İki.", "empty question in pair 1"),
        ("Soru: Kaç kedi var?\nCevap:\nSoru: Kediler ne renk?\nCevap: Siyah.", "empty answer in pair 1"),
        ("Soru: Kaç kedi var?\nCevap: İki.\nSoru: Ne renk?\nCevap:   ", "empty answer in pair 2"),
        (
            "Soru: Resimdeki kadının elinde tuttuğu şemsiyenin rengi nedir?",
            "question without an answer: 'Resimdeki kadının elinde tuttuğu şemsiy…'",
        ),
    ],
)
def test_parse_qa_pairs_errors(text, reason):
    with pytest.raises(FormatError) as caught:
        parse_qa_pairs(text)
    assert caught.value.reason == reason


# --------------------------------------------------------------------------------------------------
# protect / restore


def test_protect_and_restore_round_trip():
    source = (
        "<image>\nÇalıştırmak için `pip install pillow` yazın, ayrıntılar https://example.com/docs_(v2). "
        "Örnek:\n```python\nprint('Merhaba')\n```\nBkz. www.example.org, teşekkürler."
    )
    protected, saved = protect(source)
    assert protected == (
        "⟦0⟧\nÇalıştırmak için ⟦1⟧ yazın, ayrıntılar ⟦2⟧. Örnek:\n⟦3⟧\nBkz. ⟦4⟧, teşekkürler."
    )
    assert saved == [
        "<image>",
        "`pip install pillow`",
        "https://example.com/docs_(v2)",
        "```python\nprint('Merhaba')\n```",
        "www.example.org",
    ]
    assert restore(protected, saved) == source
    # A translation moves the spans around; restore follows the numbers, not the positions.
    translated = "⟦0⟧\nTo run it type ⟦1⟧, details at ⟦2⟧. Example:\n⟦3⟧\nSee ⟦4⟧, thanks."
    assert restore(translated, saved).startswith("<image>\nTo run it type `pip install pillow`, details at https://")


def test_protect_keeps_text_without_spans_and_url_punctuation_outside():
    assert protect("Masada iki kedi var.") == ("Masada iki kedi var.", [])
    assert protect("Bkz. (https://tr.wikipedia.org/wiki/Kedi).") == ("Bkz. (⟦0⟧).", ["https://tr.wikipedia.org/wiki/Kedi"])
    assert protect("Site: https://ornek.com.tr'de") == ("Site: ⟦0⟧'de", ["https://ornek.com.tr"])


def test_protect_shields_existing_placeholder_text():
    protected, saved = protect("Sembol ⟦3⟧ ve <image>")
    assert (protected, saved) == ("Sembol ⟦0⟧ ve ⟦1⟧", ["⟦3⟧", "<image>"])
    assert restore(protected, saved) == "Sembol ⟦3⟧ ve <image>"


def test_restore_tolerates_padded_placeholders():
    assert restore("Bakınız ⟦ 0 ⟧ ve ⟦1 ⟧.", ["`x`", "<image>"]) == "Bakınız `x` ve <image>."


@pytest.mark.parametrize(
    "text, saved, reason",
    [
        ("⟦0⟧ ve ⟦1⟧", ["<image>"], "unknown placeholder ⟦1⟧"),
        ("⟦0⟧ ve ⟦0⟧", ["<image>"], "placeholder ⟦0⟧ appears 2 times"),
        ("⟦1⟧ ⟦1⟧ ⟦1⟧", ["a", "b"], "placeholder ⟦1⟧ appears 3 times"),
        ("Bir görsel.", ["<image>"], "placeholder ⟦0⟧ is missing"),
        ("⟦0⟧ ve ⟦2⟧", ["a", "b", "c"], "placeholder ⟦1⟧ is missing"),
    ],
)
def test_restore_errors(text, saved, reason):
    with pytest.raises(FormatError) as caught:
        restore(text, saved)
    assert caught.value.reason == reason


# --------------------------------------------------------------------------------------------------
# numbers_in / named_entities / check_translation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12 elma ve 3,5 kg peynir", ["12", "3.5"]),
        ("12 apples and 3.5 kg of cheese", ["12", "3.5"]),
        ("1,000 people", ["1.000"]),
        ("1.000 kişi", ["1.000"]),
        ("2, 3 ve 2", ["2", "2", "3"]),
        ("Saat 3:30'da, %50 indirim", ["3", "30", "50"]),
        ("Hiç sayı yok.", []),
    ],
)
def test_numbers_in(text, expected):
    assert numbers_in(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I met John Smith in New York.", ["John Smith", "New York"]),
        ("She visited Paris and London last year.", ["Paris", "London"]),
        ("The books of J. K. Rowling are sold in Paris's shops.", ["J. K. Rowling", "Paris"]),
        ("We saw Mr. Brown at the NASA museum.", ["Brown", "NASA"]),
        ("I think I'm late on Monday in March.", []),
        ("Paris is big. Then we went to London.", ["London"]),  # a sentence-initial name is missed
        ("So do I. Then we left.", []),
        ("Question: What is Ahmet holding?", ["Ahmet"]),
        ("<image>\nWhat is on the table?", []),
        ("Run `Import Data` from https://Example.com today.", []),
        ("We went to Rome, then Rome again.", ["Rome"]),
    ],
)
def test_named_entities(text, expected):
    assert named_entities(text) == expected


def test_check_translation_accepts_a_faithful_translation():
    source = "<image>\nThe photo shows 12 apples and 3.5 kg of cheese in Paris and New York."
    translated = "<image>\nFotoğrafta Paris'te ve New York'ta 12 elma ve 3,5 kg peynir görünüyor."
    assert check_translation(source, translated) is None
    assert check_translation(source, translated, entities=True) is None
    assert check_translation("We flew to Istanbul.", "İstanbul'a uçtuk.", entities=True) is None


def test_check_translation_ignores_entities_unless_asked():
    assert check_translation("She lives in Paris.", "Orada yaşıyor.") is None


@pytest.mark.parametrize(
    "source, translated, reason",
    [
        ("A red car.", "", "translation is empty"),
        ("A red car.", " \n ", "translation is empty"),
        ("<image>\nWhat is this?", "Bu nedir?", "<image> count changed: 1 -> 0"),
        ("<image>\nCompare.", "<image>\n<image>\nKarşılaştır.", "<image> count changed: 1 -> 2"),
        ("12 apples and 3.5 kg of cheese", "12 elma ve peynir", "numbers changed: 12, 3.5 -> 12"),
        ("Two cats.", "2 kedi.", "numbers changed: (none) -> 2"),
        ("There are 13 cats.", "3 kedi var.", "numbers changed: 13 -> 3"),
    ],
)
def test_check_translation_errors(source, translated, reason):
    with pytest.raises(FormatError) as caught:
        check_translation(source, translated)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "source, translated, reason",
    [
        ("She lives in Paris.", "Orada yaşıyor.", "named entity dropped: 'Paris'"),
        ("I met John Smith in New York.", "John Smith ile New Jersey'de tanıştım.", "named entity dropped: 'New York'"),
        ("They flew to Berlin.", "Berlinli arkadaşlarına uçtular.", None),  # prefix of a word is enough
        ("We visited Rome.", "Aroma'yı ziyaret ettik.", "named entity dropped: 'Rome'"),  # not mid-word
    ],
)
def test_check_translation_named_entities(source, translated, reason):
    if reason is None:
        assert check_translation(source, translated, entities=True) is None
        return
    with pytest.raises(FormatError) as caught:
        check_translation(source, translated, entities=True)
    assert caught.value.reason == reason

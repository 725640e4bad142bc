"""Generate the tokenizer test fixtures under ``fixtures/tokenizers/``.

Run from the repository root (overwrites everything it generates)::

    .venv/bin/python scripts/reference/make_tokenizer_fixtures.py

Pinned oracles (see ``scripts/reference/requirements.txt``): tokenizers==0.23.3
(Hugging Face's Rust tokenizers, via its PyPI binding), sentencepiece==0.2.3 and
gguf==0.19.0 (gguf-py's ``GGUFWriter``).  Output is deterministic: the corpus
comes from fixed-seed ``random.Random`` generators (nothing is downloaded), and
both trainers run single-threaded (``TOKENIZERS_PARALLELISM=false``,
``num_threads=1``).  The script checks that re-training gives the same bytes.

Corpus.  ``make_corpus`` writes English-like sentences, German/French with
accents, Russian, Greek, Chinese/Japanese, Arabic, Hindi, numbers, Python/JSON
snippets (spaces, tabs, braces), emoji (skin tones, ZWJ sequences, flags, VS16),
URLs, contractions and punctuation runs.  The training part has 4000 items.
The held-out test set has 228 strings that are not in the training part:
105 generated items (another seed) plus hand-written edge cases ("", " ", "\\n", a lone emoji, a lone combining mark, control characters
\\x00..\\x1f and \\x7f, very long words, characters that no vocabulary here
contains, and strings that contain the special tokens literally).  Every
tokenizer gets the same test strings, so one tokenizer's special tokens are
plain text for the others.

What it writes (one folder per tokenizer.json tokenizer, with
``tokenizer.json`` and ``tokenizer_config.json``):

``spm_normalizer/``
    SentencePiece-style BPE shaped like Llama 2 / TinyLlama as HF ships them:
    the ``gguf_spm.model`` SentencePiece model converted the way transformers'
    ``LlamaConverter`` does it with ``legacy=True`` (vocab in SentencePiece id
    order, merges from ``generate_merges`` ordered by piece score,
    byte_fallback, fuse_unk, unk ``<unk>``), normalizer
    Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer, decoder
    Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)],
    TemplateProcessing adding ``<s>``.  Merges are stored as ``"a b"`` strings
    (the old format, as in Llama 2's file).
``spm_metaspace/``
    The same model converted with ``legacy=False`` (what current Llama/Mistral
    conversions produce): normalizer null, pre-tokenizer
    Metaspace(replacement "▁", prepend_scheme "first", split false), same
    decoder and post-processor.  Merges are ``["a", "b"]`` pairs (the format
    tokenizers >= 0.20 writes).
``bytelevel_llama3/``
    Byte-level BPE like Llama 3: trained with ``BpeTrainer`` (1492 tokens)
    plus 8 "shortcut" tokens appended to ``model.vocab`` (ids 1492..1499) that
    no merge builds (``LLAMA3_SHORTCUTS``: " checkpoint", " hello", "\\t\\t",
    ...), so only the ``ignore_merges`` whole-word lookup can produce them (as
    in tiktoken-derived vocabularies); pre-tokenizer
    Sequence[Split(Regex(LLAMA3_PATTERN), Isolated),
    ByteLevel(add_prefix_space false, trim_offsets true, use_regex false)],
    ``ignore_merges: true``, decoder ByteLevel, post-processor
    Sequence[ByteLevel, TemplateProcessing adding ``<|begin_of_text|>``].
    Added special tokens ``<|begin_of_text|>``, ``<|end_of_text|>``,
    ``<|reserved_special_token_0|>``, ``<|start_header_id|>``,
    ``<|end_header_id|>``, ``<|eot_id|>`` (after the trained vocab, like Llama
    3), and two added non-special tokens ``<think>`` and ``</think>``.
``bytelevel_gpt2/``
    GPT-2 style byte-level BPE (vocab 1000): pre-tokenizer ByteLevel(add_prefix_space
    false, use_regex true), decoder ByteLevel, post-processor ByteLevel (adds
    nothing), ``ignore_merges: false``; added special tokens ``<|endoftext|>``
    (normalized true, as in GPT-2's file) and ``<mask>`` with lstrip true (as
    RoBERTa's).  Merges as ``"a b"`` strings.
``unigram/``, ``wordpiece/``
    A small Unigram (NFKC, Metaspace) and a small BERT-style WordPiece
    tokenizer, built from the SentencePiece pieces (tokenizers' Unigram and
    WordPiece trainers are not reproducible).  nopekit must refuse them with a
    clear error; there are no expected ids.

For each of spm_normalizer, spm_metaspace, bytelevel_llama3 and bytelevel_gpt2:

``<name>/expected.json``
    A JSON list, one record per test string (one record per line)::

        {"text", "ids", "ids_no_special", "tokens", "decoded", "decoded_skip",
         "ids_split_special"}

    ``ids`` = ``encode(text).ids`` (add_special_tokens=True; special tokens in
    the text are matched), ``ids_no_special`` = add_special_tokens=False,
    ``tokens`` = the pieces of ``ids``, ``decoded`` =
    ``decode(ids, skip_special_tokens=False)``, ``decoded_skip`` =
    ``decode(ids, skip_special_tokens=True)``, ``ids_split_special`` =
    add_special_tokens=True with ``encode_special_tokens = True`` (special added
    tokens in the text are treated as plain text; transformers'
    ``split_special_tokens=True``; llama.cpp ``parse_special=false``).  The two
    folders whose ``tokenizer_config.json`` has ``clean_up_tokenization_spaces:
    true`` (bytelevel_llama3, bytelevel_gpt2) also carry ``decoded_clean`` and
    ``decoded_skip_clean``: what transformers' ``decode`` returns after its
    ``clean_up_tokenization`` step.
    ``tokens`` are ``Encoding.tokens``: for an added token matched with
    lstrip/rstrip it is the matched text including the absorbed whitespace
    (bytelevel_gpt2 "x <mask> y" -> token " <mask>"), not the vocab string.
``<name>/decode_expected.json``
    Decode-only cases (id sequences that encode never produces: lone and
    invalid UTF-8 byte tokens, special tokens in the middle, seeded random id
    sequences): ``{"ids", "decoded", "decoded_skip"}``.

GGUF vocabularies (written with gguf-py ``GGUFWriter``, no tensors, arch
``llama`` with small llama hparams so that llama.cpp can open them
``vocab_only``):

``gguf_spm.model``
    The SentencePiece BPE model (``sentencepiece`` trainer: model_type bpe,
    vocab 1000, byte_fallback, split_digits, identity normalization,
    add_dummy_prefix, remove_extra_whitespaces false,
    allow_whitespace_only_pieces, character_coverage 0.9995).
``gguf_spm.gguf``
    ``tokenizer.ggml.model`` = ``llama``: tokens, scores, token_type (1 normal,
    2 unknown, 3 control, 6 byte), bos/eos/unk ids, add_bos_token true,
    add_eos_token false, add_space_prefix true, remove_extra_whitespaces false.
``gguf_spm.expected.json``
    Same record format.  ``ids_split_special`` = [BOS] + sentencepiece's
    ``encode(text)``, ``ids_no_special`` = ``encode(text)`` (the oracle).
    ``ids`` = llama.cpp's ``llama_tokenize(add_special=true,
    parse_special=true)`` as computed by this script's line-by-line port of
    llama.cpp's SPM tokenizer (the port with parse_special=false is checked to
    equal sentencepiece on every test string; ``ids`` differs from
    ``ids_split_special`` only for strings containing ``<s>``, ``</s>`` or
    ``<unk>``).  ``tokens`` are the pieces of ``ids``; ``decoded`` /
    ``decoded_skip`` come from ``spm_normalizer``'s HF decoder on ``ids`` (same
    vocabulary; ``decoded_skip`` is checked to equal sentencepiece's
    ``decode``), and ``sp_decoded`` is sentencepiece's ``decode(ids)``.
``gguf_spm.decode_expected.json``
    Decode-only cases with ``decoded``, ``decoded_skip`` (HF convention) and
    ``sp_decoded``.
``gguf_bpe.gguf``
    ``tokenizer.ggml.model`` = ``gpt2``, ``tokenizer.ggml.pre`` = ``llama-bpe``,
    tokens / token_type / merges from ``bytelevel_llama3/tokenizer.json``
    (tokens in id order, type 3 for special added tokens, 4 for the non-special
    ones, 1 otherwise; merges as ``"a b"``), bos/eos ids, add_bos_token true.
``gguf_bpe.expected.json``, ``gguf_bpe.decode_expected.json``
    Equal to ``bytelevel_llama3``'s (HF is the oracle; llama.cpp's llama-bpe
    pre-tokenizer is designed to equal it, except as listed in ``manifest.json``).
``manifest.json``
    Per tokenizer: kind, files, vocab size, number of cases, whether nopekit
    must accept or refuse it; ``notes``: the test strings on which the script
    found differences (round trips that do not reproduce the text, HF vs
    sentencepiece, normalizer vs Metaspace, ignore_merges on/off, the Llama 3
    regex vs llama.cpp's copy); ``stress``: the same oracle-vs-oracle
    comparisons on 4000 seeded random strings (not stored); the oracle
    versions and the sha256 of every file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from byte_level import byte_to_unicode  # noqa: E402

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # deterministic and one core

import gguf  # noqa: E402
import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "fixtures" / "tokenizers"
MADE_BY = "scripts/reference/make_tokenizer_fixtures.py"

# The pre-tokenizer regex of Llama 3's tokenizer.json (meta-llama/Meta-Llama-3-8B),
# character for character.  llama.cpp's "llama-bpe" uses an adapted copy where
# (?i:'s|...) is spelled out as (?:'[sS]|'[tT]|...).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's adaptation (src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_LLAMA3): no (?i:...)
LLAMA_CPP_LLAMA3_PATTERN = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

SEED_TRAIN = 20240601
SEED_TEST = 777
SEED_DECODE = 4242
N_TRAIN = 4000
N_TEST_GENERATED = 105

# ---------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------

EN_DET = ["the", "a", "an", "this", "that", "every", "some", "no", "my", "your", "our", "their"]
EN_ADJ = [
    "quick", "brown", "lazy", "small", "large", "new", "old", "good", "bad", "strange", "simple", "tiny",
    "fast", "slow", "happy", "important", "different", "early", "young", "public", "quantized", "sharded",
    "random", "green", "bright", "quiet", "heavy", "empty", "final", "local", "native", "binary",
]
EN_NOUN = [
    "fox", "dog", "model", "token", "tokenizer", "layer", "matrix", "vector", "file", "format", "value",
    "number", "string", "byte", "language", "word", "sentence", "people", "time", "year", "day", "world",
    "life", "hand", "place", "week", "company", "system", "program", "question", "night", "point", "home",
    "water", "room", "mother", "story", "month", "book", "job", "house", "friend", "father", "hour",
    "game", "line", "city", "name", "team", "idea", "body", "door", "result", "morning", "reason",
    "teacher", "checkpoint", "tensor", "kernel", "weight", "header", "buffer", "cache", "server", "user",
]
EN_VERB = [
    "is", "was", "runs", "makes", "takes", "sees", "knows", "gets", "gives", "finds", "reads", "writes",
    "loads", "saves", "checks", "builds", "breaks", "holds", "keeps", "shows", "leaves", "brings",
    "needs", "wants", "likes", "uses", "moves", "opens", "closes", "jumps over", "looks at", "waits for",
]
EN_PREP = ["in", "on", "at", "with", "for", "from", "into", "under", "after", "before", "about", "near"]
EN_ADV = ["quickly", "slowly", "today", "again", "never", "always", "really", "almost", "together", "here"]
CONTRACTIONS = [
    "don't", "I'm", "we'll", "they've", "IT'S", "it's", "can't", "won't", "she'd", "you're", "I've",
    "DON'T", "we're", "he'll", "isn't", "wasn't", "let's", "that's", "o'clock", "y'all", "They'd", "WE'LL",
]
DE_WORDS = [
    "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "mit", "für", "über", "schön", "Größe",
    "Straße", "Mädchen", "Fußball", "Äpfel", "Öl", "Übung", "Käse", "Brötchen", "müssen", "können",
    "hören", "Bäume", "grün", "weiß", "heißen", "Frühstück", "Grüße", "möchte", "Tür", "Schlüssel",
    "Zeitung", "Wetter", "heute", "morgen", "sehr", "gut", "Haus", "Stadt", "Kinder", "Bücher", "lesen",
    "schreiben", "Sprache", "Welt", "Wasser", "Straßenbahn", "Geschwindigkeit",
]
FR_WORDS = [
    "le", "la", "les", "et", "est", "une", "un", "déjà", "élève", "être", "garçon", "où", "Noël", "naïve",
    "œuvre", "ça", "hôpital", "français", "très", "après", "château", "forêt", "fenêtre", "théâtre", "café",
    "crème", "brûlée", "à", "côté", "leçon", "cœur", "sœur", "voilà", "été", "hiver", "écrire", "lire",
    "parler", "maison", "ville", "monde", "eau", "livre", "enfant", "aujourd'hui", "c'est", "l'homme",
    "qu'il", "j'ai", "n'est", "Élodie", "À",
]
RU_WORDS = [
    "привет", "мир", "Москва", "спасибо", "язык", "ёлка", "человек", "время", "дело", "жизнь", "день",
    "рука", "работа", "слово", "место", "вопрос", "лицо", "страна", "друг", "дом", "история", "школа",
    "система", "книга", "читать", "писать", "говорить", "хорошо", "большой", "новый", "первый", "русский",
    "в", "и", "не", "на", "что", "это", "как", "он", "она", "мы", "они", "очень", "сегодня", "завтра",
    "Ёж", "Щука", "Юг", "Эхо", "ПРИВЕТ",
]
EL_WORDS = [
    "Καλημέρα", "κόσμε", "ελληνικά", "ευχαριστώ", "αλφάβητο", "και", "το", "η", "ο", "είναι", "σε", "με",
    "για", "θάλασσα", "ήλιος", "ουρανός", "γλώσσα", "βιβλίο", "σπίτι", "νερό", "φίλος", "Αθήνα", "καλό",
    "μεγάλο", "μικρό", "σήμερα", "αύριο", "χθες", "ψυχή", "ωραία", "ΑΒΓΔ", "λέξη", "πρόταση", "αριθμός",
]
ZH_WORDS = [
    "你好", "世界", "中文", "分词", "测试", "北京", "我们", "学习", "机器", "语言", "模型", "数据", "文件",
    "今天", "天气", "很好", "人工智能", "计算机", "程序", "问题", "时间", "中国", "上海", "朋友", "谢谢",
    "大家", "这个", "那个", "一个", "没有", "可以", "因为", "所以", "但是", "的", "了", "是", "在", "有",
    "和", "不", "人", "我", "他", "她",
]
JA_WORDS = [
    "こんにちは", "ありがとう", "日本語", "東京", "カタカナ", "ひらがな", "漢字", "です", "ます", "私", "は",
    "が", "を", "に", "の", "で", "と", "も", "これ", "それ", "学校", "先生", "学生", "電車", "コンピューター",
    "テスト", "ラーメン", "すし", "さくら", "おはよう", "ございます",
]
AR_WORDS = [
    "مرحبا", "العالم", "شكرا", "كتاب", "اللغة", "العربية", "في", "من", "على", "إلى", "هذا", "هذه",
    "مدينة", "بيت", "ماء", "يوم", "الناس", "السلام", "عليكم", "جميل", "كبير", "صغير", "مدرسة", "طالب", "معلم",
]
HI_WORDS = [
    "नमस्ते", "दुनिया", "भारत", "हिन्दी", "धन्यवाद", "भाषा", "है", "और", "में", "का", "की", "के", "को",
    "यह", "वह", "एक", "पानी", "किताब", "घर", "दिल्ली", "मुंबई", "स्कूल", "बच्चे", "समय", "काम", "अच्छा",
    "बड़ा", "छोटा", "आज", "कल",
]
EMOJI = [
    "😀", "😂", "🥲", "👍", "👍🏽", "🙏🏿", "❤️", "🔥", "✨", "🎉", "🚀", "🌍", "🇩🇪", "🇫🇷", "🇯🇵", "🇺🇸",
    "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🧑🏻‍🚀", "☕", "⭐", "✅", "❌", "⚠️", "1️⃣", "©", "®", "™",
]
IDENTS = ["x", "y", "n", "data", "value", "tokens", "model_path", "vocab", "merges", "result", "i", "self", "buf", "scores"]
PUNCT_RUNS = ["!!!", "???", "...", "?!", "—", "–", "***", "---", "===", "<<>>", "(((", ")))", "…", ";;", "!?!?", "~~~", "##", "@@", "%%"]
QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("«", "»"), ("„", "“"), ("(", ")"), ("[", "]"), ("{", "}")]
HOSTS = ["example.com", "www.example.org", "huggingface.co", "github.com", "localhost:8080", "api.test.net", "127.0.0.1"]
PATHS = ["", "/", "/index.html", "/api/v1/users", "/models/llama-2/tokenizer.json", "/a_b-c.tar.gz", "/search", "/wiki/Straße"]


def _sentence(rng: random.Random, words, sep=" ", end=None, n=(4, 12)):
    k = rng.randint(*n)
    s = sep.join(rng.choice(words) for _ in range(k))
    if end is not None:
        s += rng.choice(end)
    return s


def gen_english(rng):
    parts = [rng.choice(EN_DET), rng.choice(EN_ADJ), rng.choice(EN_NOUN), rng.choice(EN_VERB)]
    if rng.random() < 0.7:
        parts += [rng.choice(EN_DET), rng.choice(EN_NOUN)]
    if rng.random() < 0.5:
        parts += [rng.choice(EN_PREP), rng.choice(EN_DET), rng.choice(EN_ADJ), rng.choice(EN_NOUN)]
    if rng.random() < 0.4:
        parts.append(rng.choice(EN_ADV))
    if rng.random() < 0.35:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(CONTRACTIONS))
    s = " ".join(parts)
    s = s[0].upper() + s[1:]
    s += rng.choice([".", ".", ".", "!", "?", "...", ";", ":", ""])
    if rng.random() < 0.15:
        q = rng.choice(QUOTES)
        s = q[0] + s + q[1]
    if rng.random() < 0.1:
        s = s.upper()
    return s


def gen_german(rng):
    s = _sentence(rng, DE_WORDS, end=[".", "!", "?", ""])
    return s[0].upper() + s[1:]


def gen_french(rng):
    s = _sentence(rng, FR_WORDS, end=[".", " !", " ?", "", " :"])
    return s[0].upper() + s[1:]


def gen_russian(rng):
    return _sentence(rng, RU_WORDS, end=[".", "!", "?", "", "..."])


def gen_greek(rng):
    return _sentence(rng, EL_WORDS, end=[".", ";", "!", ""])  # ";" is the Greek question mark


def gen_cjk(rng):
    if rng.random() < 0.55:
        return _sentence(rng, ZH_WORDS, sep="", end=["。", "！", "？", "，", ""], n=(3, 14))
    return _sentence(rng, JA_WORDS, sep="", end=["。", "、", "！", ""], n=(3, 12))


def gen_arabic(rng):
    return _sentence(rng, AR_WORDS, end=[".", "؟", "،", ""])


def gen_hindi(rng):
    return _sentence(rng, HI_WORDS, end=["।", "?", "", "!"])


def gen_number(rng):
    kind = rng.randrange(12)
    if kind == 0:
        return str(rng.randint(0, 10 ** rng.randint(1, 12)))
    if kind == 1:
        return f"{rng.uniform(-1000, 1000):.{rng.randint(1, 6)}f}"
    if kind == 2:
        return f"{rng.randint(1000, 10**9):,}"
    if kind == 3:
        return f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == 4:
        return f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
    if kind == 5:
        return f"+{rng.randint(1, 99)} {rng.randint(10, 999)} {rng.randint(100000, 9999999)}"
    if kind == 6:
        return f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}"
    if kind == 7:
        return f"{rng.randint(0, 100)}%"
    if kind == 8:
        return f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"
    if kind == 9:
        return f"0x{rng.randint(0, 2**32):X}"
    if kind == 10:
        return f"{rng.uniform(0, 10):.2e}"
    return f"{rng.randint(1, 999)} {rng.choice(EN_NOUN)}s cost {rng.randint(1, 99)}.{rng.randint(0, 99):02d} EUR"


def gen_numbers_sentence(rng):
    return " ".join(gen_number(rng) for _ in range(rng.randint(1, 5)))


def gen_python(rng):
    ind = rng.choice(["    ", "    ", "\t", "  "])
    f = rng.choice(["load", "save", "encode", "decode", "merge", "split", "check", "main"])
    a, b = rng.sample(IDENTS, 2)
    n = rng.randint(0, 4096)
    lines = [
        f"def {f}_{rng.choice(IDENTS)}({a}, {b}=None):",
        f'{ind}"""{rng.choice(EN_ADJ).capitalize()} {rng.choice(EN_NOUN)}."""',
        f"{ind}if {b} is None:",
        f"{ind}{ind}{b} = {{}}",
        f"{ind}for i in range({n}):",
        f"{ind}{ind}{a}[i] = {b}.get(i, {rng.randint(0, 9)}) * {rng.uniform(0, 2):.3f}  # {rng.choice(EN_NOUN)}",
        f"{ind}return {a}",
    ]
    k = rng.randint(2, len(lines))
    s = "\n".join(lines[:k])
    if rng.random() < 0.3:
        s += "\n"
    return s


def gen_json(rng):
    obj = {}
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(IDENTS + EN_NOUN)
        r = rng.random()
        if r < 0.3:
            obj[key] = rng.randint(-100000, 100000)
        elif r < 0.5:
            obj[key] = round(rng.uniform(-10, 10), 4)
        elif r < 0.7:
            obj[key] = [rng.randint(0, 50) for _ in range(rng.randint(0, 4))]
        elif r < 0.85:
            obj[key] = rng.choice([True, False, None])
        else:
            obj[key] = gen_english(rng)[:30]
    indent = rng.choice([None, 2, 4, "\t"])
    return json.dumps(obj, indent=indent, ensure_ascii=rng.random() < 0.2)


def gen_emoji(rng):
    out = []
    for _ in range(rng.randint(1, 5)):
        out.append(rng.choice(EMOJI) * rng.choice([1, 1, 1, 2, 3]))
        if rng.random() < 0.6:
            out.append(rng.choice(EN_NOUN + ZH_WORDS[:5] + ["!", "?", "", " "]))
    return rng.choice(["", " "]).join(out)


def gen_url(rng):
    s = f"{rng.choice(['https', 'http', 'ftp', 'https'])}://{rng.choice(HOSTS)}{rng.choice(PATHS)}"
    if rng.random() < 0.5:
        s += f"?{rng.choice(IDENTS)}={rng.randint(0, 999)}&{rng.choice(IDENTS)}={rng.choice(EN_NOUN)}"
    if rng.random() < 0.2:
        s += "#section-" + str(rng.randint(1, 9))
    if rng.random() < 0.3:
        s = f"See {s} or mail {rng.choice(IDENTS)}@{rng.choice(HOSTS[:3])}."
    return s


def gen_punct(rng):
    return rng.choice(EN_NOUN) + "".join(rng.choice(PUNCT_RUNS) + rng.choice(["", " ", rng.choice(EN_ADJ)]) for _ in range(rng.randint(1, 4)))


def gen_whitespace(rng):
    words = [rng.choice(EN_NOUN + DE_WORDS + RU_WORDS) for _ in range(rng.randint(2, 5))]
    seps = [" ", "  ", "   ", "    ", "\t", " \t", "\n", "\n\n", "\r\n", "        "]
    s = words[0]
    for w in words[1:]:
        s += rng.choice(seps) + w
    if rng.random() < 0.5:
        s = rng.choice(seps[:5]) + s
    if rng.random() < 0.5:
        s += rng.choice(seps)
    return s


def gen_mixed(rng):
    gens = [gen_english, gen_german, gen_french, gen_russian, gen_greek, gen_cjk, gen_arabic, gen_hindi, gen_number, gen_emoji]
    return rng.choice([" ", " ", "\n", " - ", ": "]).join(rng.choice(gens)(rng) for _ in range(rng.randint(2, 3)))


GENERATORS = [
    (gen_english, 22), (gen_german, 6), (gen_french, 6), (gen_russian, 6), (gen_greek, 4), (gen_cjk, 8),
    (gen_arabic, 4), (gen_hindi, 4), (gen_numbers_sentence, 6), (gen_python, 6), (gen_json, 4),
    (gen_emoji, 4), (gen_url, 3), (gen_punct, 3), (gen_whitespace, 5), (gen_mixed, 9),
]


def generate(rng: random.Random) -> str:
    total = sum(w for _, w in GENERATORS)
    r = rng.uniform(0, total)
    for g, w in GENERATORS:
        r -= w
        if r <= 0:
            return g(rng)
    return GENERATORS[-1][0](rng)


SPECIAL_TEXT_CASES = [
    "<s>", "</s>", "<unk>", "<s> x </s>", "<s>hello", "hello<s>world", " <s> leading space", "<s><s>",
    "<|begin_of_text|>Hi<|end_of_text|>", "<|eot_id|>hello", "hello<|eot_id|>", "<|eot_id|><|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>", "<|endoftext|>", "a<|endoftext|>b",
    "<think>why</think> because", "x <mask> y", "<mask>", "<|reserved_special_token_0|>", "<|eot_id",
]

EDGE_CASES = [
    "", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \t \n ", "a", "A", " a", "a ", " a ", "I",
    "😀", "🦖", "👨‍👩‍👧‍👦", "🇩🇪🇫🇷", "🇧🇷", "👨🏾‍🦱", "❤️", "\u0301", "e\u0301", "é", "\u212b", "ﬁ",
    "①②③", "ＡＢＣ１２３", "𠀀𠀁", "龘", "ꙮ", "한국어 텍스트", "ภาษาไทย", "שלום עולם", "ქართული",
    "a\u200bb", "a\u00a0b", "a\u3000b", "a\u2028b", "\ufeffBOM", "a\u0085b",
    "\x00", "a\x00b", "\x1b[31mred\x1b[0m", "\x7f", "\x1c\x1d\x1e\x1f", "x\x1cy",
    "".join(chr(c) for c in range(0x20) if c not in (9, 10, 13)),
    "Pneumonoultramicroscopicsilicovolcanoconiosis", "Donaudampfschifffahrtsgesellschaftskapitänsmütze",
    "The tokenizers read a checkpoint: Größe, Москва, hello hello! quantized\t\t\tx",
    "        x = 1  # eight spaces",
    "a" * 200, "ab" * 100, "1" * 40, " " * 33, "\n" * 9, "\t\t\t\tindented",
    "1234567", "3.14", "1,000", "1,000,000.00", "-42", "0.000001", "12345678901234567890", "٣٤٥ ١٢",
    "don't", "I'M", "IT'S", "we'll they've", "'s", "'", "''", "x'ſy", "O'NEILL'S", "rock 'n' roll",
    "hello   world", "hello\tworld", "  leading", "trailing  ", "line1\nline2\r\nline3", " \n", "\n ", "a\n",
    "<0x41>", "▁", "▁▁hello", "Ġ", "ĠĠx", "\u2581 mixed", "नमस्ते", "ा", "👍🏽👍🏽", "🏳️‍🌈!",
    "https://example.com/a?b=c&d=e#f", "C:\\Users\\name\\file.txt", "{\"a\": [1, 2, {\"b\": null}]}",
    "\tdef f(x):\n\t\treturn x  # tab\n", "    return {'k': v}\n\n\n", "?!?!...!!!", "— – - ‐", "“quoted” «text» „so“",
]


def make_corpus():
    rng = random.Random(SEED_TRAIN)
    train = []
    handwritten = set(EDGE_CASES + SPECIAL_TEXT_CASES)
    seen = set()
    while len(train) < N_TRAIN:
        s = generate(rng)
        if s not in seen and s not in handwritten:
            seen.add(s)
            train.append(s)
    rng = random.Random(SEED_TEST)
    generated = []
    while len(generated) < N_TEST_GENERATED:
        s = generate(rng)
        if s not in seen and s not in generated:
            generated.append(s)
    test = []
    for s in EDGE_CASES + SPECIAL_TEXT_CASES + generated:
        if s not in test:
            test.append(s)
    assert not (set(test) & seen), "held-out strings leaked into training"
    return train, test



# ---------------------------------------------------------------------------
# SentencePiece model and its HF conversions
# ---------------------------------------------------------------------------

SPM_VOCAB = 1000
SPM_TRAINER_ARGS = dict(
    model_type="bpe",
    vocab_size=SPM_VOCAB,
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="identity",
    add_dummy_prefix=True,
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    character_coverage=0.9995,
    max_sentencepiece_length=16,
    unk_id=0,
    bos_id=1,
    eos_id=2,
    pad_id=-1,
    num_threads=1,
    minloglevel=2,
)


def train_spm(train: list[str]) -> bytes:
    # SentencePiece trains on lines: newlines never reach it (as for Llama, "\n"
    # is then encoded with the <0x0A> byte token).
    lines = [ln for s in train for ln in s.split("\n") if ln.strip("\r")]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, **SPM_TRAINER_ARGS)
    return buf.getvalue()


def generate_merges(vocab: dict[str, int], vocab_scores: list[tuple[str, float]]):
    """transformers.convert_slow_tokenizer.generate_merges (with vocab_scores)."""
    merges = []
    for merge, piece_score in dict(vocab_scores).items():
        local = []
        for index in range(1, len(merge)):
            piece_l, piece_r = merge[:index], merge[index:]
            if piece_l in vocab and piece_r in vocab:
                local.append((piece_l, piece_r, piece_score))
        local = sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges = sorted(merges, key=lambda val: (val[2], len(val[0]), len(val[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def spm_to_hf(sp: spm.SentencePieceProcessor, legacy: bool) -> Tokenizer:
    """What transformers' LlamaConverter builds from a BPE tokenizer.model."""
    n = sp.get_piece_size()
    vocab_scores = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(n)]
    vocab = {p: i for i, (p, _) in enumerate(vocab_scores)}
    merges = generate_merges(vocab, vocab_scores)
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None))
    specials = [sp.id_to_piece(i) for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in specials])
    if legacy:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1, right=0)]
    )
    bos = sp.id_to_piece(sp.bos_id())
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, sp.bos_id())]
    )
    return tok


# ---------------------------------------------------------------------------
# byte-level BPE tokenizers trained with tokenizers' BpeTrainer
# ---------------------------------------------------------------------------

LLAMA3_VOCAB = 1500
LLAMA3_SPECIAL = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>",
]
LLAMA3_ADDED_PLAIN = ["<think>", "</think>"]
LLAMA3_SHORTCUTS = [
    " checkpoint", " quantized", " tokenizers", "Pneumonoultramicroscopicsilicovolcanoconiosis",
    " Москва", " hello", "\t\t", " Größe",
]
GPT2_VOCAB = 1000


def train_llama3(train: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=LLAMA3_VOCAB - len(LLAMA3_SHORTCUTS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(train, trainer=trainer)
    # the trainer builds a fresh BPE model: set ignore_merges again through the JSON
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    # Shortcut tokens: whole pre-tokens appended to model.vocab with no merge that
    # builds them (tiktoken-derived vocabularies like Llama 3's have such entries).
    # Only the ignore_merges lookup can produce them.
    vocab = j["model"]["vocab"]
    bmap = byte_to_unicode()
    for w in LLAMA3_SHORTCUTS:
        t = "".join(bmap[b] for b in w.encode("utf-8"))
        assert t not in vocab, w
        vocab[t] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(j))
    # Llama 3 puts its special tokens after the BPE vocab, outside model.vocab
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in LLAMA3_SPECIAL])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in LLAMA3_ADDED_PLAIN])
    bos_id = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single="<|begin_of_text|>:0 $A:0",
                pair="<|begin_of_text|>:0 $A:0 <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos_id)],
            ),
        ]
    )
    return tok


def train_gpt2(train: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=GPT2_VOCAB,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[AddedToken("<|endoftext|>", normalized=True, special=True)],
    )
    tok.train_from_iterator(train, trainer=trainer)
    j = json.loads(tok.to_str())
    j["model"]["continuing_subword_prefix"] = ""
    j["model"]["end_of_word_suffix"] = ""
    tok = Tokenizer.from_str(json.dumps(j))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    return tok


def build_unigram(sp: spm.SentencePieceProcessor) -> Tokenizer:
    """A small Unigram tokenizer (T5-like shape) over the SentencePiece pieces.

    Built rather than trained: tokenizers' UnigramTrainer output is not
    reproducible from run to run.  Scores are log-probability-like (negative,
    decreasing with the piece id).
    """
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)):
            vocab.append((sp.id_to_piece(i), round(-2.0 - i / 100.0, 4)))
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<pad>", "</s>", "<unk>")])
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(single="$A:0 </s>:0", pair="$A:0 </s>:0 $B:1 </s>:1", special_tokens=[("</s>", 1)])
    return tok


def build_wordpiece(sp: spm.SentencePieceProcessor) -> Tokenizer:
    """A small BERT-style WordPiece tokenizer; its vocab is derived from the
    SentencePiece pieces (word-initial "▁x" -> "x", others -> "##x"), built
    rather than trained because WordPieceTrainer is not reproducible."""
    vocab = {}
    for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        vocab[t] = len(vocab)
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        p = sp.id_to_piece(i)
        if p.startswith("▁"):
            p = p[1:]
        else:
            p = "##" + p
        p = p.lower()
        if p and p.strip() == p and "▁" not in p and p not in vocab:
            vocab[p] = len(vocab)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]])
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


# ---------------------------------------------------------------------------
# writing tokenizer.json / tokenizer_config.json
# ---------------------------------------------------------------------------


def tokenizer_json(tok: Tokenizer, merges_as_strings: bool) -> str:
    j = json.loads(tok.to_str())
    model = j["model"]
    if model.get("type") == "BPE":
        merges = [m if isinstance(m, list) else m.split(" ", 1) for m in model["merges"]]
        if merges_as_strings:
            assert all(" " not in a and " " not in b for a, b in merges)
            model["merges"] = [f"{a} {b}" for a, b in merges]
        else:
            model["merges"] = merges
    return json.dumps(j, indent=2, ensure_ascii=False) + "\n"


def added_tokens_decoder(tok: Tokenizer) -> dict:
    out = {}
    for i, t in sorted(tok.get_added_tokens_decoder().items()):
        out[str(i)] = {
            "content": t.content,
            "lstrip": t.lstrip,
            "normalized": t.normalized,
            "rstrip": t.rstrip,
            "single_word": t.single_word,
            "special": t.special,
        }
    return out


def write_folder(name: str, tok: Tokenizer, config: dict, merges_as_strings: bool) -> Tokenizer:
    d = OUT / name
    d.mkdir(parents=True)
    text = tokenizer_json(tok, merges_as_strings)
    (d / "tokenizer.json").write_text(text, encoding="utf-8")
    cfg = dict(config)
    cfg["added_tokens_decoder"] = added_tokens_decoder(tok)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # load it back: the file on disk is what nopekit reads, so it is the one we encode with
    loaded = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert loaded.get_vocab(with_added_tokens=True) == tok.get_vocab(with_added_tokens=True), name
    return loaded


# ---------------------------------------------------------------------------
# expected records
# ---------------------------------------------------------------------------


def clean_up_tokenization(out_string: str) -> str:
    """transformers.PreTrainedTokenizerBase.clean_up_tokenization."""
    return (
        out_string.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def hf_record(tok: Tokenizer, text: str, clean: bool) -> dict:
    e = tok.encode(text, add_special_tokens=True)
    e0 = tok.encode(text, add_special_tokens=False)
    tok.encode_special_tokens = True
    try:
        es = tok.encode(text, add_special_tokens=True)
    finally:
        tok.encode_special_tokens = False
    rec = {
        "text": text,
        "ids": e.ids,
        "ids_no_special": e0.ids,
        "tokens": e.tokens,
        "decoded": tok.decode(e.ids, skip_special_tokens=False),
        "decoded_skip": tok.decode(e.ids, skip_special_tokens=True),
        "ids_split_special": es.ids,
    }
    if clean:
        rec["decoded_clean"] = clean_up_tokenization(rec["decoded"])
        rec["decoded_skip_clean"] = clean_up_tokenization(rec["decoded_skip"])
    return rec


def dump_records(path: Path, records: list[dict]) -> None:
    """A JSON list with one record per line (small diffs, easy to grep)."""
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")


def decode_id_lists(tok: Tokenizer, kind: str) -> list[list[int]]:
    """Id sequences for decode-only checks."""
    t2i = tok.token_to_id
    n = tok.get_vocab_size(with_added_tokens=True)
    added = sorted(tok.get_added_tokens_decoder())
    special = [i for i in added if tok.get_added_tokens_decoder()[i].special]
    cases: list[list[int]] = [[]]
    cases += [[i] for i in added]
    if kind == "spm":
        b = lambda x: t2i(f"<0x{x:02X}>")  # noqa: E731
        bos, eos, unk = t2i("<s>"), t2i("</s>"), t2i("<unk>")
        w = [t2i(p) for p in ("▁", "▁▁", "▁▁▁▁", "er", "▁t", "▁s")]
        assert None not in w, w
        cases += [
            [b(0x41)], [b(0x20)], [b(0x0A)], [b(0x00)], [b(0xE4)], [b(0xE4), b(0xB8)], [b(0xE4), b(0xB8), b(0xAD)],
            [b(0xC3), b(0xA4)], [b(0xC3), bos, b(0xA4)], [b(0xC3), w[3], b(0xA4)], [b(0xFF), b(0xFE)],
            [b(0xF0), b(0x9F), b(0x98), b(0x80)], [b(0xF0), b(0x9F), b(0x98)], [b(0x80)], [b(0xED), b(0xA0), b(0x80)],
            [w[0]], [w[1]], [w[2]], [w[0], w[0]], [bos, w[0]], [bos, w[4]], [w[4], eos], [bos, w[4], eos, bos, w[5]],
            [unk], [unk, unk], [w[4], unk, w[5]], [b(0x20), w[4]], [bos, b(0x20), w[4]], [w[3], w[4]],
        ]
    else:
        bmap = byte_to_unicode()
        b = lambda x: t2i(bmap[x])  # noqa: E731
        sp_ids = special
        cases += [
            [b(0x41)], [b(0x20)], [b(0x0A)], [b(0x00)], [b(0xE4)], [b(0xE4), b(0xB8)], [b(0xE4), b(0xB8), b(0xAD)],
            [b(0xC3), b(0xA4)], [b(0xC3), sp_ids[0], b(0xA4)], [b(0xC3), b(0x41), b(0xA4)], [b(0xFF), b(0xFE)],
            [b(0xF0), b(0x9F), b(0x98), b(0x80)], [b(0xF0), b(0x9F), b(0x98)], [b(0x80)], [b(0xED), b(0xA0), b(0x80)],
            [b(0xE4), b(0xB8), b(0x41)], [b(0xC0), b(0x80)], [b(0xF4), b(0x90), b(0x80), b(0x80)],
            [sp_ids[0], b(0x20), b(0x41)], [b(0x20), sp_ids[-1], b(0x20)],
        ]
        for t in ("Ġ", "ĠĠ", "Ċ", "ĊĊ", "Ġthe", "Ġt"):
            if t2i(t) is not None:
                cases.append([t2i(t)])
    rng = random.Random(SEED_DECODE)
    for _ in range(20):
        cases.append([rng.randrange(n) for _ in range(rng.randint(1, 12))])
    for c in cases:
        assert all(isinstance(i, int) for i in c), c
    return cases




def decode_records(tok: Tokenizer, kind: str, clean: bool) -> list[dict]:
    out = []
    for ids in decode_id_lists(tok, kind):
        r = {
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
        }
        if clean:
            r["decoded_clean"] = clean_up_tokenization(r["decoded"])
            r["decoded_skip_clean"] = clean_up_tokenization(r["decoded_skip"])
        out.append(r)
    return out


# ---------------------------------------------------------------------------
# llama.cpp SPM tokenizer, ported from src/llama-vocab.cpp (llm_tokenizer_spm_session,
# tokenizer_st_partition, llama_vocab::impl::tokenize for LLAMA_VOCAB_TYPE_SPM)
# ---------------------------------------------------------------------------

TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6


class LlamaCppSPM:
    def __init__(self, tokens: list[str], scores: list[float], types: list[int], bos: int, add_space_prefix=True):
        self.tokens = tokens
        self.scores = scores
        self.types = types
        self.t2i = {t: i for i, t in enumerate(tokens)}
        self.bos = bos
        self.add_space_prefix = add_space_prefix
        special = [i for i, t in enumerate(types) if t in (TT_CONTROL, TT_USER_DEFINED, TT_UNKNOWN)]
        # std::sort by text length, longest first (ties: unspecified order; none here)
        self.cache_special = sorted(special, key=lambda i: -len(tokens[i].encode()))

    def _session(self, text: str, out: list[int]) -> None:
        import heapq

        chars = list(text)  # UTF-8 chars; text is valid UTF-8
        syms = [{"text": c, "prev": i - 1, "next": i + 1 if i + 1 < len(chars) else -1} for i, c in enumerate(chars)]
        heap: list = []
        rev_merge: dict[str, tuple[int, int]] = {}
        counter = [0]

        def try_add(left: int, right: int) -> None:
            if left == -1 or right == -1:
                return
            t = syms[left]["text"] + syms[right]["text"]
            tid = self.t2i.get(t)
            if tid is None:
                return
            # priority: higher score first, then lower left index
            heapq.heappush(heap, (-self.scores[tid], left, counter[0], right, len(t)))
            counter[0] += 1
            rev_merge[t] = (left, right)

        for i in range(1, len(syms)):
            try_add(i - 1, i)
        while heap:
            _, left, _, right, size = heapq.heappop(heap)
            ls, rs = syms[left], syms[right]
            if not ls["text"] or not rs["text"] or len(ls["text"]) + len(rs["text"]) != size:
                continue
            ls["text"] += rs["text"]
            rs["text"] = ""
            ls["next"] = rs["next"]
            if rs["next"] >= 0:
                syms[rs["next"]]["prev"] = left
            try_add(ls["prev"], left)
            try_add(left, ls["next"])

        def resegment(sym) -> None:
            tid = self.t2i.get(sym["text"])
            if tid is not None:
                out.append(tid)
                return
            p = rev_merge.get(sym["text"])
            if p is None:
                for byte in sym["text"].encode("utf-8"):
                    out.append(self.t2i[f"<0x{byte:02X}>"])
                return
            resegment(syms[p[0]])
            resegment(syms[p[1]])

        i = 0 if syms else -1
        while i != -1:
            resegment(syms[i])
            i = syms[i]["next"]

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        frags: list = [text] if text else []
        for sid in self.cache_special:
            if not parse_special and self.types[sid] in (TT_CONTROL, TT_UNKNOWN):
                continue
            tt = self.tokens[sid]
            new = []
            for f in frags:
                if not isinstance(f, str):
                    new.append(f)
                    continue
                while True:
                    k = f.find(tt)
                    if k < 0:
                        if f:
                            new.append(f)
                        break
                    if k > 0:
                        new.append(f[:k])
                    new.append(sid)
                    f = f[k + len(tt):]
            frags = new
        out: list[int] = []
        is_prev_special = True
        if add_special:
            out.append(self.bos)
        for f in frags:
            if isinstance(f, str):
                t = (" " if self.add_space_prefix and is_prev_special else "") + f
                self._session(t.replace(" ", "▁"), out)
                is_prev_special = False
            else:
                out.append(f)
                is_prev_special = True
        return out


# ---------------------------------------------------------------------------
# GGUF vocabularies
# ---------------------------------------------------------------------------


def add_llama_hparams(w: gguf.GGUFWriter, name: str, n_vocab: int) -> None:
    """Small llama hparams, so llama.cpp can open the file with vocab_only."""
    w.add_name(name)
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(16)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)
    w.add_vocab_size(n_vocab)


def write_gguf(path: Path, build) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def spm_vocab_arrays(sp: spm.SentencePieceProcessor):
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(TT_UNKNOWN)
        elif sp.is_control(i):
            types.append(TT_CONTROL)
        elif sp.is_byte(i):
            types.append(TT_BYTE)
        elif sp.is_unused(i):
            types.append(TT_UNUSED)
        else:
            types.append(TT_NORMAL)
    return tokens, scores, types


def bpe_vocab_arrays(tok: Tokenizer):
    j = json.loads(tok.to_str())
    n = tok.get_vocab_size(with_added_tokens=True)
    tokens: list = [None] * n
    types = [TT_NORMAL] * n
    for t, i in j["model"]["vocab"].items():
        tokens[i] = t
    for a in j["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = TT_CONTROL if a["special"] else TT_USER_DEFINED
    assert all(t is not None for t in tokens), "id space has holes"
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    return tokens, types, merges


def read_back_gguf(path: Path) -> dict:
    r = gguf.GGUFReader(str(path))
    out = {}
    for f in r.fields.values():
        if f.name.startswith("tokenizer."):
            out[f.name] = f.contents()
    return out


# ---------------------------------------------------------------------------
# stress checks (random strings, not stored)
# ---------------------------------------------------------------------------

N_STRESS = 4000
SEED_STRESS = 99


def stress_checks(sp, port: LlamaCppSPM, hf: dict) -> dict:
    """Compare the oracles with each other on random strings: generated corpus
    items and soups of vocabulary pieces, spaces, tabs, newlines, special-token
    text, NUL and characters outside every vocabulary."""
    rng = random.Random(SEED_STRESS)
    pieces = [sp.id_to_piece(i).replace("▁", " ") for i in range(sp.get_piece_size()) if sp.is_byte(i) is False and not sp.is_control(i) and not sp.is_unknown(i)]
    extra = [" ", "  ", "\t", "\n", "\r\n", "<s>", "</s>", "<unk>", "▁", "\x00", "😀", "𠀀", "<|eot_id|>", "<think>", "<mask>", " <mask>", "<|endoftext|>", "x'ſ"]
    specials = ("<s>", "</s>", "<unk>")
    out = {
        "n": N_STRESS,
        "spm_normalizer != sentencepiece (no special text)": 0,
        "spm_metaspace != sentencepiece (no special text, not starting with ' ' or '▁')": 0,
        "llama.cpp port parse_special=false != sentencepiece": 0,
        "llama.cpp port parse_special=true != spm_normalizer": 0,
        "bytelevel_llama3 decode_skip(encode) != text (no special text)": 0,
        "bytelevel_gpt2 decode_skip(encode) != text (no special text)": 0,
        "examples": [],
    }
    for k in range(N_STRESS):
        if k % 2:
            s = generate(rng)
        else:
            s = "".join(rng.choice(pieces + extra) for _ in range(rng.randint(0, 12)))
        plain = sp.encode(s)
        has_special = any(t in s for t in specials)
        checks = []
        if not has_special:
            checks.append(("spm_normalizer != sentencepiece (no special text)", hf["spm_normalizer"].encode(s, add_special_tokens=False).ids == plain))
            if not s.startswith((" ", "▁")):
                checks.append(
                    (
                        "spm_metaspace != sentencepiece (no special text, not starting with ' ' or '▁')",
                        hf["spm_metaspace"].encode(s, add_special_tokens=False).ids == plain,
                    )
                )
        checks.append(("llama.cpp port parse_special=false != sentencepiece", port.tokenize(s, False, False) == plain))
        checks.append(("llama.cpp port parse_special=true != spm_normalizer", port.tokenize(s, True, True) == hf["spm_normalizer"].encode(s).ids))
        for name, sp_text in (("bytelevel_llama3", LLAMA3_SPECIAL), ("bytelevel_gpt2", ("<|endoftext|>", "<mask>"))):
            if not any(t in s for t in sp_text):
                t = hf[name]
                checks.append((f"{name} decode_skip(encode) != text (no special text)", t.decode(t.encode(s).ids, skip_special_tokens=True) == s))
        for key, ok in checks:
            if not ok:
                out[key] += 1
                if len(out["examples"]) < 10:
                    out["examples"].append([key, s])
    return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    train, test = make_corpus()
    notes: dict[str, list] = {}
    manifest: dict = {
        "made_by": MADE_BY,
        "oracles": {"tokenizers": tokenizers.__version__, "sentencepiece": spm.__version__, "gguf": "0.19.0"},
        "n_train_items": len(train),
        "n_test_strings": len(test),
        "tokenizers": {},
    }

    # -- SentencePiece model (gguf_spm.model) and its two HF conversions --------
    model_bytes = train_spm(train)
    assert train_spm(train) == model_bytes, "sentencepiece training is not deterministic"
    (OUT / "gguf_spm.model").write_bytes(model_bytes)
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)

    spm_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
    }
    hf = {}
    hf["spm_normalizer"] = write_folder("spm_normalizer", spm_to_hf(sp, legacy=True), {**spm_cfg, "legacy": True}, True)
    hf["spm_metaspace"] = write_folder("spm_metaspace", spm_to_hf(sp, legacy=False), {**spm_cfg, "legacy": False}, False)

    # -- byte-level BPE ---------------------------------------------------------
    l3 = train_llama3(train)
    assert train_llama3(train).to_str() == l3.to_str(), "BpeTrainer is not deterministic"
    hf["bytelevel_llama3"] = write_folder(
        "bytelevel_llama3",
        l3,
        {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|end_of_text|>",
            "clean_up_tokenization_spaces": True,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
        False,
    )
    hf["bytelevel_gpt2"] = write_folder(
        "bytelevel_gpt2",
        train_gpt2(train),
        {
            "add_bos_token": False,
            "add_eos_token": False,
            "add_prefix_space": False,
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "mask_token": "<mask>",
            "clean_up_tokenization_spaces": True,
            "model_max_length": 1024,
            "tokenizer_class": "GPT2Tokenizer",
        },
        True,
    )

    # -- refused kinds ------------------------------------------------------------
    for name, tok, cfg in (
        ("unigram", build_unigram(sp), {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "tokenizer_class": "T5Tokenizer"}),
        ("wordpiece", build_wordpiece(sp), {"do_lower_case": True, "unk_token": "[UNK]", "sep_token": "[SEP]", "cls_token": "[CLS]", "pad_token": "[PAD]", "mask_token": "[MASK]", "tokenizer_class": "BertTokenizer"}),
    ):
        write_folder(name, tok, cfg, False)
        manifest["tokenizers"][name] = {
            "kind": json.loads(tok.to_str())["model"]["type"],
            "files": [f"{name}/tokenizer.json", f"{name}/tokenizer_config.json"],
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "nopekit": "refuse",
        }

    # -- expected records for the tokenizer.json tokenizers -------------------------
    kinds = {"spm_normalizer": "spm", "spm_metaspace": "spm", "bytelevel_llama3": "bytelevel", "bytelevel_gpt2": "bytelevel"}
    records = {}
    for name, tok in hf.items():
        clean = json.loads((OUT / name / "tokenizer_config.json").read_text())["clean_up_tokenization_spaces"]
        recs = [hf_record(tok, s, clean) for s in test]
        records[name] = recs
        dump_records(OUT / name / "expected.json", recs)
        drecs = decode_records(tok, kinds[name], clean)
        dump_records(OUT / name / "decode_expected.json", drecs)
        j = json.loads((OUT / name / "tokenizer.json").read_text())
        manifest["tokenizers"][name] = {
            "kind": kinds[name],
            "config": {k: v for k, v in json.loads((OUT / name / "tokenizer_config.json").read_text()).items() if k != "added_tokens_decoder"},
            "files": [f"{name}/tokenizer.json", f"{name}/tokenizer_config.json", f"{name}/expected.json", f"{name}/decode_expected.json"],
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "model_vocab_size": len(j["model"]["vocab"]),
            "n_merges": len(j["model"]["merges"]),
            "merges_format": "strings" if isinstance(j["model"]["merges"][0], str) else "pairs",
            "n_cases": len(recs),
            "n_decode_cases": len(drecs),
            "nopekit": "accept",
        }
        # round trip
        bad = [r["text"] for r in recs if r["decoded_skip"] != r["text"]]
        notes[f"{name}: decode_skip(encode(text)) != text"] = bad

    # HF conversion vs sentencepiece (same vocabulary)
    for name in ("spm_normalizer", "spm_metaspace"):
        notes[f"{name}: ids_split_special[1:] != sentencepiece encode"] = [
            r["text"] for r in records[name] if r["ids_split_special"][1:] != sp.encode(r["text"])
        ]
    notes["spm_metaspace: ids != spm_normalizer ids"] = [
        a["text"] for a, b in zip(records["spm_metaspace"], records["spm_normalizer"]) if a["ids"] != b["ids"]
    ]
    manifest["tokenizers"]["bytelevel_llama3"]["shortcut_tokens"] = {
        w: hf["bytelevel_llama3"].token_to_id("".join(byte_to_unicode()[b] for b in w.encode())) for w in LLAMA3_SHORTCUTS
    }
    # does ignore_merges matter for these strings?
    j = json.loads((OUT / "bytelevel_llama3" / "tokenizer.json").read_text())
    j["model"]["ignore_merges"] = False
    l3_merges = Tokenizer.from_str(json.dumps(j))
    notes["bytelevel_llama3: ids change with ignore_merges=false"] = [
        r["text"] for r in records["bytelevel_llama3"] if l3_merges.encode(r["text"]).ids != r["ids"]
    ]

    # the Llama 3 regex vs llama.cpp's adapted copy (both run by Oniguruma here)
    split_hf = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False)
    split_cpp = pre_tokenizers.Split(Regex(LLAMA_CPP_LLAMA3_PATTERN), behavior="isolated", invert=False)
    notes["bytelevel_llama3: Llama 3 regex != llama.cpp adapted regex"] = [
        s for s in test if split_hf.pre_tokenize_str(s) != split_cpp.pre_tokenize_str(s)
    ]

    # -- gguf_spm ---------------------------------------------------------------------
    tokens, scores, types = spm_vocab_arrays(sp)
    bos, eos, unk = sp.bos_id(), sp.eos_id(), sp.unk_id()

    def build_spm(w: gguf.GGUFWriter) -> None:
        add_llama_hparams(w, "nopekit tokenizer fixture (SPM)", len(tokens))
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(bos)
        w.add_eos_token_id(eos)
        w.add_unk_token_id(unk)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(True)
        w.add_remove_extra_whitespaces(False)

    write_gguf(OUT / "gguf_spm.gguf", build_spm)
    back = read_back_gguf(OUT / "gguf_spm.gguf")
    assert back["tokenizer.ggml.tokens"] == tokens and back["tokenizer.ggml.token_type"] == types
    port = LlamaCppSPM(tokens, scores, types, bos)
    hf_spm = hf["spm_normalizer"]
    spm_recs = []
    port_vs_sp = []
    for s in test:
        plain = sp.encode(s)
        if port.tokenize(s, add_special=False, parse_special=False) != plain:
            port_vs_sp.append(s)
        ids = port.tokenize(s, add_special=True, parse_special=True)
        spm_recs.append(
            {
                "text": s,
                "ids": ids,
                "ids_no_special": plain,
                "tokens": [tokens[i] for i in ids],
                "decoded": hf_spm.decode(ids, skip_special_tokens=False),
                "decoded_skip": hf_spm.decode(ids, skip_special_tokens=True),
                "ids_split_special": [bos] + plain,
                "sp_decoded": sp.decode(ids),
            }
        )
    notes["gguf_spm: llama.cpp port (parse_special=false) != sentencepiece"] = port_vs_sp
    notes["gguf_spm: ids (parse_special) != ids_split_special"] = [r["text"] for r in spm_recs if r["ids"] != r["ids_split_special"]]
    notes["gguf_spm: ids != spm_normalizer ids"] = [
        a["text"] for a, b in zip(spm_recs, records["spm_normalizer"]) if a["ids"] != b["ids"]
    ]
    notes["gguf_spm: sentencepiece decode(encode(text)) != text"] = [s for s in test if sp.decode(sp.encode(s)) != s]
    notes["gguf_spm: decoded_skip != sentencepiece decode"] = [r["text"] for r in spm_recs if r["decoded_skip"] != r["sp_decoded"]]
    dump_records(OUT / "gguf_spm.expected.json", spm_recs)
    spm_drecs = []
    for ids in decode_id_lists(hf_spm, "spm"):
        spm_drecs.append(
            {
                "ids": ids,
                "decoded": hf_spm.decode(ids, skip_special_tokens=False),
                "decoded_skip": hf_spm.decode(ids, skip_special_tokens=True),
                "sp_decoded": sp.decode(ids),
            }
        )
    dump_records(OUT / "gguf_spm.decode_expected.json", spm_drecs)
    manifest["tokenizers"]["gguf_spm"] = {
        "kind": "gguf-llama",
        "files": ["gguf_spm.gguf", "gguf_spm.model", "gguf_spm.expected.json", "gguf_spm.decode_expected.json"],
        "vocab_size": len(tokens),
        "n_cases": len(spm_recs),
        "n_decode_cases": len(spm_drecs),
        "same_vocab_as": ["spm_normalizer", "spm_metaspace"],
        "nopekit": "accept",
    }

    # -- gguf_bpe -----------------------------------------------------------------------
    l3 = hf["bytelevel_llama3"]
    btokens, btypes, bmerges = bpe_vocab_arrays(l3)

    def build_bpe(w: gguf.GGUFWriter) -> None:
        add_llama_hparams(w, "nopekit tokenizer fixture (BPE)", len(btokens))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        w.add_token_list(btokens)
        w.add_token_types(btypes)
        w.add_token_merges(bmerges)
        w.add_bos_token_id(l3.token_to_id("<|begin_of_text|>"))
        w.add_eos_token_id(l3.token_to_id("<|end_of_text|>"))
        w.add_eot_token_id(l3.token_to_id("<|eot_id|>"))
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)

    write_gguf(OUT / "gguf_bpe.gguf", build_bpe)
    back = read_back_gguf(OUT / "gguf_bpe.gguf")
    assert back["tokenizer.ggml.tokens"] == btokens and back["tokenizer.ggml.merges"] == bmerges
    shutil.copyfile(OUT / "bytelevel_llama3" / "expected.json", OUT / "gguf_bpe.expected.json")
    shutil.copyfile(OUT / "bytelevel_llama3" / "decode_expected.json", OUT / "gguf_bpe.decode_expected.json")
    manifest["tokenizers"]["gguf_bpe"] = {
        "kind": "gguf-gpt2/llama-bpe",
        "files": ["gguf_bpe.gguf", "gguf_bpe.expected.json", "gguf_bpe.decode_expected.json"],
        "vocab_size": len(btokens),
        "n_merges": len(bmerges),
        "n_cases": len(records["bytelevel_llama3"]),
        "same_vocab_as": ["bytelevel_llama3"],
        "nopekit": "accept",
    }

    manifest["notes"] = notes
    manifest["stress"] = stress_checks(sp, port, hf)
    manifest["sha256"] = {str(p.relative_to(OUT)): sha256(p) for p in sorted(OUT.rglob("*")) if p.is_file()}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    # -- summary ------------------------------------------------------------------------
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"corpus: {len(train)} training items, {len(test)} held-out strings")
    for name, m in manifest["tokenizers"].items():
        extra = f", {m['n_cases']} cases" if "n_cases" in m else ""
        extra += f", {m['n_merges']} merges" if "n_merges" in m else ""
        print(f"  {name:18s} {m['kind']:20s} vocab {m['vocab_size']}{extra} ({m['nopekit']})")
    for k, v in notes.items():
        print(f"  note: {k}: {len(v)}" + (f"  e.g. {v[:4]!r}" if v else ""))
    st = manifest["stress"]
    for k, v in st.items():
        if k not in ("n", "examples"):
            print(f"  stress ({st['n']} random strings): {k}: {v}")
    print(f"wrote {OUT.relative_to(REPO)} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Build the small synthetic multi-task data set and the T5 SentencePiece tokenizer used by the
embedded default job (`native train configs/test.json`).

Regenerate (from the repository root; no network, no GPU, a few seconds):

    /root/venvs/t5ref/bin/python configs/data/make_data.py            # data + tokenizer
    python3 configs/data/make_data.py --no-tokenizer                   # data only (stdlib only)

The data part uses only the Python standard library and is fully seeded (`--seed`, default 13);
the tokenizer part needs `sentencepiece` and `transformers` (the pins in
tests/fixtures/requirements.txt).  Reruns reproduce every file byte for byte.

Output, all under configs/data/:

    sentiment/{train,validation,test}.jsonl    {"sentence", "label": "0"|"1"}
    paraphrase/{train,validation,test}.jsonl   {"sentence1", "sentence2", "label": "0"|"1"}
    similarity/{train,validation,test}.jsonl   {"sentence1", "sentence2", "label": "0.0".."5.0"}
    tokenizer/                                 spiece.model + HF T5 tokenizer files

See README.md next to this script for the task definitions and baselines.
"""

import argparse
import collections
import json
import math
import os
import random
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# train / validation / test.  Larger than a first plan of 2000 / 1000 / 600: with that little data a
# tiny T5 trained from scratch memorizes the pair tasks instead of learning them (README.md).
SIZES = {
    "sentiment": (4000, 200, 200),
    "paraphrase": (2500, 200, 200),
    "similarity": (1200, 150, 150),
}
SPLITS = ("train", "validation", "test")
# How the model sees each task (the `template` of the custom task in configs/test.json).
TEMPLATES = {
    "sentiment": "sentence: {sentence}",
    "paraphrase": "sentence1: {sentence1} sentence2: {sentence2}",
    "similarity": "sentence1: {sentence1} sentence2: {sentence2}",
}

# ============================================================================================
# sentiment: one opinion (optionally negated) or two contrasting opinions joined by but/although


SENT_NOUNS = [
    "movie", "film", "book", "novel", "meal", "dinner", "hotel", "room", "service", "song",
    "album", "show", "game", "trip", "concert", "phone", "camera", "story", "plot", "ending",
    "cafe", "restaurant", "play", "class", "lecture", "tour", "museum", "beach", "pizza",
    "coffee", "soup", "sequel", "series", "podcast", "festival", "party", "wedding", "app",
    "laptop", "bike", "course", "band", "painting", "garden",
]
SENT_POS = [
    "good", "great", "excellent", "wonderful", "amazing", "lovely", "fun", "brilliant",
    "enjoyable", "pleasant", "charming", "delightful", "superb", "fantastic", "beautiful", "perfect",
    "nice", "awesome", "impressive", "touching", "clever", "funny", "cozy", "friendly", "elegant", "fresh",
]
SENT_NEG = [
    "bad", "awful", "terrible", "boring", "poor", "dull", "horrible", "disappointing",
    "weak", "ugly", "bland", "annoying", "painful", "mediocre", "dreadful", "messy",
    "slow", "rude", "noisy", "stale", "clumsy", "tedious", "awkward", "broken", "confusing", "overpriced",
]
SENT_INTENS = ["", "", "", "very", "really", "quite", "truly", "so", "rather", "extremely", "pretty"]
SENT_PRE = [
    "honestly", "overall", "to be fair", "in my opinion", "i think", "my friend said",
    "last night", "as expected", "all in all", "to be honest", "for me",
]
SENT_POST = [
    "last week", "on friday", "this time", "for the price", "at the end", "in the city",
    "with my family", "again", "yesterday", "this summer",
]

# plain: (template, negated?)  {i} = optional intensifier
SENT_PLAIN = [
    "the {n} was {i} {a}",
    "the {n} is {i} {a}",
    "i found the {n} {i} {a}",
    "it was a {i} {a} {n}",
    "what a {a} {n}",
    "we all thought the {n} was {i} {a}",
]
SENT_NEGATED = [
    "the {n} was not {a}",
    "the {n} was not {i} {a} at all",
    "the {n} is never {a}",
    "i did not find the {n} {a}",
    "it was not a {a} {n}",
    "nobody would call the {n} {a}",
    "the {n} was anything but {a}",
]


def _squash(text):
    return " ".join(text.split())


def _sent_clause(rng, templates, noun, adj):
    t = rng.choice(templates)
    return _squash(t.format(n=noun, a=adj, i=rng.choice(SENT_INTENS)))


def _sent_fillers(rng, core):
    r = rng.random()
    if r < 0.25:
        core = f"{rng.choice(SENT_PRE)}, {core}"
    elif r < 0.45:
        core = f"{core} {rng.choice(SENT_POST)}"
    return core + "."


def make_sentiment(rng):
    label = rng.randrange(2)  # the sentence's overall polarity: 1 positive, 0 negative
    kind = rng.random()
    if kind < 0.13:  # contrast: the clause after but / the main clause after although decides
        n1, n2 = rng.sample(SENT_NOUNS, 2)
        a_last = rng.choice(SENT_POS if label else SENT_NEG)
        a_first = rng.choice(SENT_NEG if label else SENT_POS)
        c1 = _sent_clause(rng, SENT_PLAIN[:3], n1, a_first)
        c2 = _sent_clause(rng, SENT_PLAIN[:3], n2, a_last)
        if rng.random() < 0.5:
            core = f"{c1} but {c2}"
        else:
            core = f"although {c1}, {c2}"
        return {"sentence": core + ".", "label": str(label)}, "contrast"
    if kind < 0.13 + 0.30:  # negation flips the adjective's polarity ("not bad" is positive)
        adj = rng.choice(SENT_NEG if label else SENT_POS)
        core = _sent_clause(rng, SENT_NEGATED, rng.choice(SENT_NOUNS), adj)
        return {"sentence": _sent_fillers(rng, core), "label": str(label)}, "negated"
    adj = rng.choice(SENT_POS if label else SENT_NEG)
    core = _sent_clause(rng, SENT_PLAIN, rng.choice(SENT_NOUNS), adj)
    return {"sentence": _sent_fillers(rng, core), "label": str(label)}, "plain"


# ============================================================================================
# paraphrase and similarity share one small lexicon (grouped words; the groups only matter for
# similarity): a tiny model learns to compare the two sentences of a pair only if it sees each
# word in many pairs, so the pair tasks use few words and many examples.

SUBJECTS = [["man", "woman", "boy", "girl"], ["teacher", "doctor", "farmer", "baker"]]
COLORS = [["red", "orange", "yellow"], ["blue", "green", "purple"], ["black", "white", "gray"]]
OBJECTS = [["apples", "pears", "plums"], ["balls", "kites", "dolls"], ["chairs", "tables", "desks"],
           ["hats", "coats", "boots"]]


def _flat(groups):
    return [w for g in groups for w in g]


# ============================================================================================
# paraphrase: a scene with key slots (subject, number, color, object) and free slots (verb, size).
# sentence2 = the same scene re-rendered (synonym swaps of the free slots, active or passive voice,
# which swaps the order of the subject and object phrases) -> "1", or with exactly one key slot
# changed and re-rendered the same random way -> "0".  (Fronted time phrases with multi-word
# synonyms and larger word lists were tried and dropped: a tiny T5 trained from scratch then only
# memorized the training pairs and stayed near chance on validation; see README.md.)

PARA_NUMBERS = ["two", "three", "four", "five", "six", "seven"]
# synonym groups: (past tense, past participle)
PARA_VERBS = [
    [("bought", "bought"), ("purchased", "purchased")],
    [("found", "found"), ("discovered", "discovered")],
    [("picked", "picked"), ("chose", "chosen"), ("selected", "selected")],
    [("fixed", "fixed"), ("repaired", "repaired")],
    [("washed", "washed"), ("cleaned", "cleaned")],
    [("sold", "sold")],
]
PARA_SIZES = [[""], [""], ["big", "large"], ["small", "little"]]
PARA_KEYS = ("subject", "number", "color", "object")
_PARA_POOLS = {"subject": _flat(SUBJECTS), "number": PARA_NUMBERS, "color": _flat(COLORS), "object": _flat(OBJECTS)}


def _para_render(rng, s):
    verb, pp = rng.choice(PARA_VERBS[s["verb"]])
    size = rng.choice(PARA_SIZES[s["size"]])
    np_ = _squash(f"{s['number']} {size} {s['color']} {s['object']}")
    if rng.random() < 0.5:
        return f"the {s['subject']} {verb} {np_}."
    return f"{np_} were {pp} by the {s['subject']}."


def _para_scene(rng):
    s = {k: rng.choice(_PARA_POOLS[k]) for k in PARA_KEYS}
    s.update(verb=rng.randrange(len(PARA_VERBS)), size=rng.randrange(len(PARA_SIZES)))
    return s


def make_paraphrase(rng):
    s1 = _para_scene(rng)
    label = rng.randrange(2)
    s2 = dict(s1)
    kind = "same"
    if label == 0:
        kind = rng.choice(PARA_KEYS)
        s2[kind] = rng.choice([v for v in _PARA_POOLS[kind] if v != s1[kind]])
    a = _para_render(rng, s1)
    for _ in range(100):
        b = _para_render(rng, s2)
        if b != a:
            break
    else:
        return None, None
    return {"sentence1": a, "sentence2": b, "label": str(label)}, kind


# ============================================================================================
# similarity: five slots; each slot scores 1.0 if both sentences use the same word, 0.4 if the
# words are different members of one group (boy/girl, red/orange, apples/plums), else 0.
# score = the sum, in [0, 5] on the 0.2 grid (e.g. 3 same + 2 related = 3.8).

SIM_SLOTS = {
    "subject": SUBJECTS,
    # (past tense, past participle)
    "verb": [
        [("pushed", "pushed"), ("pulled", "pulled"), ("moved", "moved")],
        [("carried", "carried"), ("held", "held"), ("lifted", "lifted")],
        [("watched", "watched"), ("painted", "painted")],
    ],
    "color": COLORS,
    "object": OBJECTS,
    "place": [["in the kitchen", "in the hall", "in the attic"], ["in the park", "in the garden", "in the yard"]],
}
SIM_SLOT_NAMES = list(SIM_SLOTS)
SIM_SAME, SIM_RELATED = 10, 4  # tenths of a point


def _sim_pick(rng, slot):
    g = rng.randrange(len(SIM_SLOTS[slot]))
    return g, rng.randrange(len(SIM_SLOTS[slot][g]))


def _sim_related(rng, slot, gi):
    g, i = gi
    return g, rng.choice([j for j in range(len(SIM_SLOTS[slot][g])) if j != i])


def _sim_other(rng, slot, gi):
    g, _ = gi
    g2 = rng.choice([h for h in range(len(SIM_SLOTS[slot])) if h != g])
    return g2, rng.randrange(len(SIM_SLOTS[slot][g2]))


def _sim_render(rng, picks):
    w = {k: SIM_SLOTS[k][g][i] for k, (g, i) in picks.items()}
    verb, pp = w["verb"]
    form = rng.randrange(3)
    if form == 0:
        text = f"the {w['subject']} {verb} the {w['color']} {w['object']} {w['place']}"
    elif form == 1:
        text = f"{w['place']}, the {w['subject']} {verb} the {w['color']} {w['object']}"
    else:
        text = f"the {w['color']} {w['object']} were {pp} by the {w['subject']} {w['place']}"
    return text + "."


def make_similarity(rng):
    p1 = {k: _sim_pick(rng, k) for k in SIM_SLOT_NAMES}
    n_same = rng.randrange(6)
    same = set(rng.sample(SIM_SLOT_NAMES, n_same))
    p2, tenths = {}, 0
    for k in SIM_SLOT_NAMES:
        if k in same:
            p2[k], tenths = p1[k], tenths + SIM_SAME
        elif rng.random() < 0.5:
            p2[k], tenths = _sim_related(rng, k, p1[k]), tenths + SIM_RELATED
        else:
            p2[k] = _sim_other(rng, k, p1[k])
    label = f"{tenths // 10}.{tenths % 10}"
    return {"sentence1": _sim_render(rng, p1), "sentence2": _sim_render(rng, p2), "label": label}, label


MAKERS = {"sentiment": make_sentiment, "paraphrase": make_paraphrase, "similarity": make_similarity}

# ============================================================================================
# data


def source_text(task, ex):
    return TEMPLATES[task].format(**ex)


def build_task(task, seed):
    """Generate train/validation/test with no source text shared between (or within) splits."""
    rng = random.Random(f"{seed}:{task}")
    seen = set()
    splits, kinds = {}, {}
    for split, n in zip(SPLITS, SIZES[task]):
        rows, ks = [], collections.Counter()
        while len(rows) < n:
            ex, kind = MAKERS[task](rng)
            if ex is None:
                continue
            key = source_text(task, ex)
            if key in seen:
                continue
            seen.add(key)
            rows.append(ex)
            ks[kind] += 1
        splits[split], kinds[split] = rows, ks
    return splits, kinds


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def majority(rows):
    c = collections.Counter(r["label"] for r in rows)
    lab, n = max(sorted(c.items()), key=lambda kv: kv[1])
    return lab, n / len(rows)


def _jaccard(a, b):
    wa, wb = (set(x.replace(",", " ").replace(".", " ").split()) for x in (a, b))
    return len(wa & wb) / len(wa | wb)


def describe(data, kinds):
    print("== data")
    for task, splits in data.items():
        print(f"-- {task}: " + ", ".join(f"{s} {len(splits[s])}" for s in SPLITS))
        for s in SPLITS:
            rows = splits[s]
            c = collections.Counter(r["label"] for r in rows)
            if task == "similarity":
                ys = [float(r["label"]) for r in rows]
                bins = collections.Counter(min(int(y), 4) for y in ys)
                overlap = [_jaccard(r["sentence1"], r["sentence2"]) for r in rows]
                print(f"   {s:10s} label mean {statistics.mean(ys):.3f} sd {statistics.pstdev(ys):.3f} "
                      f"distinct {len(c)}  bins [0,1) [1,2) [2,3) [3,4) [4,5]: "
                      + " ".join(str(bins[b]) for b in range(5))
                      + f"  pearson(word-overlap Jaccard) {statistics.correlation(overlap, ys):.3f}")
            else:
                lab, acc = majority(rows)
                print(f"   {s:10s} labels {dict(sorted(c.items()))}  majority '{lab}' acc {acc:.3f}  "
                      f"kinds {dict(sorted(kinds[task][s].items()))}")
        for r in splits["train"][:3]:
            print("   " + json.dumps(r, ensure_ascii=False))
    words = collections.Counter()
    for splits in data.values():
        for rows in splits.values():
            for r in rows:
                for k, v in r.items():
                    if k != "label":
                        words.update(v.replace(",", " ").replace(".", " ").split())
    n_words = max(len(v.split()) for splits in data.values() for rows in splits.values() for r in rows
                  for k, v in r.items() if k != "label")
    print(f"distinct words (all tasks, all splits): {len(words)}; "
          f"longest sentence: {n_words} words")


# ============================================================================================
# tokenizer (sentencepiece unigram + Hugging Face T5 files; same recipe as
# tests/fixtures/make_fixtures.py)

SP_VOCAB_SIZE = 600  # sentencepiece pieces incl. <pad> </s> <unk>; len(tokenizer) = this + 100
SP_SUBWORD_VOCAB_SIZE = 1000  # (soft limit) the trained subword model the fallback pieces come from
EXTRA_IDS = 100
TOKENIZER_FILES = ["tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"]
# A small user-defined normalization rule set instead of nmt_nfkc (whose precompiled charsmap is
# ~240 KB); sentencepiece still emits a precompiled_charsmap, so tokenizer.json gets a
# `Precompiled` normalizer as real T5 checkpoints do.
NORMALIZATION_RULES = (
    [("FB01", "66 69"), ("FB02", "66 6C")]  # ligatures fi fl
    + [("%X" % (0xFF21 + i), "%X" % (0x41 + i)) for i in range(26)]  # fullwidth A-Z
    + [("%X" % (0xFF41 + i), "%X" % (0x61 + i)) for i in range(26)]  # fullwidth a-z
    + [("%X" % (0xFF10 + i), "%X" % (0x30 + i)) for i in range(10)]  # fullwidth 0-9
    + [
        ("A0", "20"),  # no-break space
        ("3000", "20"),  # ideographic space
        ("9", "20"),  # tab
        ("A", "20"),  # newline
        ("2026", "2E 2E 2E"),  # ellipsis
        ("2019", "27"),  # right single quote
        ("201C", "22"),
        ("201D", "22"),
    ]
)
# every score string on the 0.1 grid (the data uses the 0.2 grid) plus the class labels
LABEL_STRINGS = ["0", "1"] + [f"{t // 10}.{t % 10}" for t in range(51)] + ["positive", "negative"]
EXTRA_TEXTS = ["positive negative", "0 1 2 3 4 5 6 7 8 9", "0.0 0.2 0.4 0.6 0.8 1.0 2.5 3.8 4.6 5.0"]
# General English for the subword fallback only (so text outside the tasks, e.g. typed into a demo,
# still splits into sensible pieces); its words do not become whole-word pieces.
GENERIC_TEXT = [
    "The Movie Was Great! Is it (really) good? Yes; no: maybe - 'ok' \"fine\" 10% 1,000 $5 A-B C/D",
    "Hello world. Thank you very much, please come again tomorrow and bring your friends along.",
    "What time does the next train leave? Where is the station, and how far is the airport from here?",
    "Machine learning models learn patterns from data; transformers use attention over every token.",
    "She walked quickly through the quiet streets while everyone else was sleeping in their houses.",
    "They were talking about music, sports, politics, weather, history, science and their holidays.",
    "Students should read each question carefully, write clear answers and check their spelling.",
    "The government announced new rules for companies, workers, families, children and older people.",
    "Doctors recommend drinking water, eating vegetables, sleeping enough and exercising regularly.",
    "Our neighbours built a wooden fence, planted roses and repaired the broken window last summer.",
    "Questions, answers, examples, sentences, paragraphs, documents, languages, words and letters.",
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June",
    "July August September October November December spring summer autumn winter morning evening",
    "one two three four five six seven eight nine ten eleven twelve hundred thousand million first",
    "happy sad angry tired hungry thirsty excited nervous surprised worried comfortable interesting",
    "running jumping swimming cooking reading writing singing dancing playing working thinking",
    "beautifully carefully slowly quickly loudly quietly happily easily nearly really finally usually",
    "computer keyboard mountain river ocean island country village kingdom animal flower forest",
]


def tokenizer_corpus(data):
    corpus = []
    for task, splits in data.items():
        for s in SPLITS:
            for r in splits[s]:
                corpus.append(source_text(task, r))
                corpus.append(r["label"])
    corpus += LABEL_STRINGS * 5 + EXTRA_TEXTS
    return corpus  # GENERIC_TEXT is added for the subword model only



WORD_PUNCT = ".,:;!?"
WORD_RE = re.compile(r"[A-Za-z0-9]+(?:\.[0-9]+)?")


def word_counts(corpus):
    """Whitespace words of the corpus as SentencePiece pieces ("\u2581word"), trailing
    punctuation split off as separate pieces, with their counts (the corpus is ASCII)."""
    counts = collections.Counter()
    for line in corpus:
        for tok in line.split():
            core = tok.rstrip(WORD_PUNCT)
            if not WORD_RE.fullmatch(core):
                continue  # odd tokens (brackets, quotes, ...) are left to the subword fallback
            counts["\u2581" + core] += 1
            for ch in tok[len(core):]:
                counts[ch] += 1
    return counts


def add_word_pieces(proto, corpus, sp_pb2):
    """Turn the trained subword model into a word-level unigram model with a subword fallback.

    On this small, repetitive corpus SentencePiece's unigram EM ends in a poor local optimum
    (e.g. "the" is always "\u2581" + "the", "two" is "\u2581t" + "wo") and it cannot reach more than
    ~455 pieces.  So every corpus word becomes one piece scored by its log relative frequency in
    the corpus (the maximum-likelihood unigram model over words), and the trained pieces are kept,
    shifted below the least frequent word, as the fallback for unseen words; every character of the
    corpus stays a piece.  Unigram Viterbi then segments every corpus word as one piece (checked
    below), and sentencepiece, T5Tokenizer and T5TokenizerFast still agree (they all run Viterbi on
    the same pieces and scores).
    """
    counts = word_counts(corpus)
    total = sum(counts.values())
    word_score = {p: math.log(c / total) for p, c in counts.items()}
    specials = [p for p in proto.pieces if p.type != sp_pb2.ModelProto.SentencePiece.NORMAL]
    trained = [p for p in proto.pieces if p.type == sp_pb2.ModelProto.SentencePiece.NORMAL]
    assert [p.piece for p in specials] == ["<pad>", "</s>", "<unk>"], [p.piece for p in specials]
    # fallback pieces sit below the rarest word by more than the most frequent piece's |score|, so
    # no split of a corpus word (word piece + fallback piece, or 2+ fallback pieces) can beat it
    top = max(p.score for p in trained)
    shift = min(word_score.values()) + max(word_score.values()) - 1.0 - top
    chars = {p.piece for p in trained if len(p.piece) == 1}
    fallback = sorted(((p.score + shift, p.piece) for p in trained if p.piece not in word_score),
                      key=lambda sp: (-sp[0], sp[1]))
    n_keep = SP_VOCAB_SIZE - len(specials) - len(word_score)
    required = [f for f in fallback if f[1] in chars]
    optional = [f for f in fallback if f[1] not in chars]
    assert n_keep >= len(required), f"SP_VOCAB_SIZE too small: need >= {SP_VOCAB_SIZE - n_keep + len(required)}"
    assert n_keep - len(required) <= len(optional), (
        f"SP_VOCAB_SIZE too large: at most {SP_VOCAB_SIZE - n_keep + len(required) + len(optional)}")
    keep = required + optional[: n_keep - len(required)]
    normal = [(s, p) for p, s in word_score.items()] + keep
    normal.sort(key=lambda sp: (-sp[0], sp[1]))
    del proto.pieces[:]
    for p in specials:
        proto.pieces.append(p)
    for score, piece in normal:
        proto.pieces.add(piece=piece, score=score, type=sp_pb2.ModelProto.SentencePiece.NORMAL)
    proto.trainer_spec.vocab_size = len(proto.pieces)
    assert len(proto.pieces) == SP_VOCAB_SIZE, len(proto.pieces)
    assert len({p.piece for p in proto.pieces}) == SP_VOCAB_SIZE, "duplicate pieces"
    print(f"== sentencepiece: {len(word_score)} corpus words/punctuation as pieces + "
          f"{len(keep)} subword/character fallback pieces ({len(required)} characters) + 3 specials")
    return counts


def build_tokenizer(data, out_dir):
    import io
    import shutil
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2
    import tokenizers
    import transformers
    from transformers import T5Tokenizer, T5TokenizerFast

    transformers.logging.set_verbosity_error()
    corpus = tokenizer_corpus(data)
    with tempfile.TemporaryDirectory() as tmp:
        tsv = os.path.join(tmp, "rules.tsv")
        with open(tsv, "w", encoding="utf-8") as f:
            for src, dst in NORMALIZATION_RULES:
                f.write(f"{src}\t{dst}\n")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus + GENERIC_TEXT),
            model_writer=buf,
            vocab_size=SP_SUBWORD_VOCAB_SIZE,
            hard_vocab_limit=False,  # as many pieces as the corpus supports, at most this many
            model_type="unigram",
            character_coverage=1.0,
            byte_fallback=False,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
            normalization_rule_tsv=tsv,
            add_dummy_prefix=True,
            remove_extra_whitespaces=True,
            split_digits=False,
            num_threads=1,
            seed_sentencepiece_size=1000000,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
        proto = sp_pb2.ModelProto()
        proto.ParseFromString(buf.getvalue())
        # The model records the (temporary) rule file's path; drop it so reruns are byte-identical.
        proto.normalizer_spec.ClearField("normalization_rule_tsv")
        add_word_pieces(proto, corpus, sp_pb2)
        sp_path = os.path.join(tmp, "spiece.model")
        with open(sp_path, "wb") as f:
            f.write(proto.SerializeToString(deterministic=True))

        slow = T5Tokenizer(sp_path, extra_ids=EXTRA_IDS, legacy=True, model_max_length=512)
        slow_dir = os.path.join(tmp, "slow")
        slow.save_pretrained(slow_dir)
        fast = T5TokenizerFast.from_pretrained(slow_dir, from_slow=True, legacy=True)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        fast.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        assert os.path.isfile(os.path.join(out_dir, name)), name
    # The slow tokenizer saves add_prefix_space=True; with that key present
    # T5TokenizerFast.from_pretrained ignores tokenizer.json and re-converts from spiece.model.
    # Real T5 checkpoints do not carry the key, so drop it (both classes default to prefixing).
    cfg_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.pop("add_prefix_space", None)
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert tempfile.gettempdir() not in json.dumps(cfg), "tokenizer_config.json mentions a temp path"
    # tokenizer.json: one line, sorted keys -> small and stable
    tj_path = os.path.join(out_dir, "tokenizer.json")
    with open(tj_path, encoding="utf-8") as f:
        tj = json.load(f)
    with open(tj_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(tj, ensure_ascii=False, separators=(",", ":")) + "\n")

    # ---- checks
    slow = T5Tokenizer.from_pretrained(out_dir, legacy=True)
    fast = T5TokenizerFast.from_pretrained(out_dir)
    raw = tokenizers.Tokenizer.from_file(tj_path)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out_dir, "spiece.model"))
    assert sp.get_piece_size() == SP_VOCAB_SIZE
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
    assert len(fast) == len(slow) == SP_VOCAB_SIZE + EXTRA_IDS, (len(fast), len(slow))
    assert fast.convert_tokens_to_ids("<extra_id_0>") == SP_VOCAB_SIZE + EXTRA_IDS - 1
    assert fast.convert_tokens_to_ids("<extra_id_99>") == SP_VOCAB_SIZE
    assert tj["pre_tokenizer"]["type"] == "Metaspace" and tj["pre_tokenizer"].get("prepend_scheme") == "always"

    sample = []
    for task, splits in data.items():
        for s in SPLITS:
            sample += [source_text(task, r) for r in splits[s][:60]]
            sample += [r["label"] for r in splits[s][:60]]
    sample += LABEL_STRINGS + EXTRA_TEXTS + GENERIC_TEXT + ["", "  two  spaces  ", "unseen wörds like zebra"]
    mismatches = []
    for text in sample:
        ids_fast = fast(text)["input_ids"]
        ids_slow = slow(text)["input_ids"]
        ids_sp = sp.encode(text) + [1]
        ids_raw = raw.encode(text).ids
        if not (ids_fast == ids_slow == ids_sp == ids_raw):
            mismatches.append((text, ids_fast, ids_slow, ids_sp, ids_raw))
    for m in mismatches:
        print("TOKENIZER MISMATCH:", m, file=sys.stderr)
    assert not mismatches, "fast / slow / sentencepiece / tokenizers disagree"

    # every target the model must emit decodes back to exactly itself (no <unk>, no spacing change)
    for text in LABEL_STRINGS + [r["label"] for sp_ in data.values() for rows in sp_.values() for r in rows]:
        for tok in (fast, slow):
            ids = tok(text)["input_ids"]
            assert tok.unk_token_id not in ids, (text, ids)
            back = tok.decode(ids, skip_special_tokens=True)
            assert back == text, (text, ids, back)
        assert raw.decode(raw.encode(text).ids, skip_special_tokens=True) == text, text
    # every corpus word is a single piece
    for piece in word_counts(tokenizer_corpus(data)):
        text = piece.lstrip("\u2581")
        ids = sp.encode(text) if piece.startswith("\u2581") else sp.encode("a" + text)[1:]
        assert len(ids) == 1, (piece, sp.encode(text, out_type=str))
    # and every data text has no <unk>
    for task, splits in data.items():
        for rows in splits.values():
            for r in rows:
                ids = sp.encode(source_text(task, r))
                assert sp.unk_id() not in ids, source_text(task, r)
    print(f"== tokenizer: {SP_VOCAB_SIZE} sentencepiece pieces, len(tokenizer) = {len(fast)}; "
          f"fast == slow == sentencepiece == tokenizers.Tokenizer on {len(sample)} texts; "
          f"{len(LABEL_STRINGS)} label strings round-trip")
    for text in ["0", "1", "3.8", "5.0", "positive negative"]:
        print(f"   {text!r:22s} -> {fast.convert_ids_to_tokens(fast(text)['input_ids'])}")
    return fast


def length_stats(data, tok):
    print("== token lengths (with </s>)")
    for task, splits in data.items():
        src = [len(tok(source_text(task, r))["input_ids"]) for rows in splits.values() for r in rows]
        tgt = [len(tok(r["label"])["input_ids"]) for rows in splits.values() for r in rows]
        print(f"   {task:11s} source max {max(src):3d} mean {statistics.mean(src):5.1f}   "
              f"target max {max(tgt)} mean {statistics.mean(tgt):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--no-tokenizer", action="store_true", help="write the data only (stdlib only)")
    args = ap.parse_args()

    data, kinds = {}, {}
    for task in SIZES:
        data[task], kinds[task] = build_task(task, args.seed)
        for s in SPLITS:
            write_jsonl(os.path.join(args.out, task, f"{s}.jsonl"), data[task][s])
    describe(data, kinds)
    if not args.no_tokenizer:
        tok = build_tokenizer(data, os.path.join(args.out, "tokenizer"))
        length_stats(data, tok)
    print("done")


if __name__ == "__main__":
    main()

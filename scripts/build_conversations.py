"""Build the conversational tune set (three-turn conversations) from SQuAD v1.1 dev *tune* articles.

Only the even articles (data[0::2]) are read; the held-out (odd) articles never are. Deterministic
(seeded), so a re-run writes the same file. Each conversation is three turns, each turn a real SQuAD
question, asked in chat as a follow-up would be, with its original wording kept as the standalone
rewrite:

- first:   the first question, unchanged (it names what the conversation is about);
- person:  a later question about the same person, the name replaced by he/him/his/she/her;
- thing:   a later question about the same thing or event (a named organisation, place, war,
           programme ...), the name replaced by it/its/they/them/their;
- ellipsis: a later question sharing the first one's frame, asked as its difference only
           ("How many people lived there in 1900?" -> "And in 1950?");
- answer:  a later question that names the previous turn's *answer*, the answer replaced by
           "there" (after a where-question), "that year" / "then" (after a when-question), or a
           pronoun (after a who-question);
- switch:  a question from another article, unchanged (a topic switch: no context needed).

Each turn's answer is a substring of its article (as `qa eval` writes it) that occurs there exactly
once: the SQuAD answer, widened word by word until unique (a few words at most), else the question
is not used.

    python scripts/build_conversations.py [--squad FILE] [--out scripts/data/conversations_tune.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.eval import load_json  # noqa: E402

CAP = r"(?:[A-Z][\w'\-\.]*|[A-Z]{2,})"
ENTITY = re.compile(rf"{CAP}(?:\s+(?:of|de|von|the|and|upon|on)?\s*{CAP})*")
QUESTION_START = {"what", "who", "whom", "whose", "when", "where", "which", "why", "how", "in", "on", "the", "a", "an",
                  "during", "after", "before", "to", "for", "from", "by", "at", "of", "according", "since", "along",
                  "besides", "other", "as", "is", "was", "did", "does", "do", "are", "were", "with", "about", "until"}
SUBJECT_BEFORE = {"did", "does", "do", "was", "is", "were", "are", "has", "have", "had", "can", "could", "would", "will",
                  "should", "might", "may", "must"}
PREPOSITIONS = {"in", "on", "at", "of", "to", "for", "from", "with", "by", "after", "before", "during", "about", "against",
                "between", "into", "over", "under", "than", "like", "and", "or", "did", "does", "as", "toward", "towards"}
FOLLOWERS = {"first", "last", "become", "become", "begin", "start", "die", "win", "lose", "play", "make", "take", "get", "go",
             "come", "do", "use", "believe", "want", "call", "consider", "say", "think", "write", "live", "have", "move",
             "leave", "join", "marry", "receive", "create", "build", "found", "end", "return", "hold", "spend", "teach",
             "study", "work", "run", "own", "sell", "buy", "launch", "air", "broadcast", "originally", "also", "still",
             "currently", "later", "eventually", "finally", "ever", "not", "never", "now", "most", "mainly", "mostly"}
PRONOUNS = re.compile(r"\b(he|she|him|his|her|it|its|they|them|their|this|that|these|those|there)\b", re.I)


def article_text(art: dict) -> str:
    """The article exactly as qa.eval.write_articles writes it (title line, then paragraphs)."""
    return "\n\n".join([art["title"].replace("_", " ")] + [p["context"] for p in art["paragraphs"]]) + "\n"


def unique_answer(text: str, ctx_offset: int, ans: dict, max_extra_words: int = 4) -> str | None:
    """The answer, widened by up to a few words on either side until it occurs once in `text`."""
    start = ctx_offset + ans["answer_start"]
    end = start + len(ans["text"])
    if text[start:end] != ans["text"]:
        return None
    for _ in range(max_extra_words + 1):
        span = text[start:end].strip()
        if span and text.count(span) == 1 and "\n" not in span:
            return span
        # widen: one word to the right, then one to the left (never across a paragraph break)
        m = re.match(r"\s*\S+", text[end:])
        if m and "\n" not in m.group(0) and not text[end - 1 : end] in ".!?":
            end += m.end()
        m = re.search(r"\S+\s*$", text[:start])
        if m and "\n" not in m.group(0) and not re.search(r"[.!?]\s*$", m.group(0)):
            start = m.start()
    return None


def entities(question: str) -> list[str]:
    out = []
    for m in ENTITY.finditer(question):
        ent = m.group(0).strip(" .")
        words = ent.split()
        while words and words[0].lower() in QUESTION_START:  # "What", "In" at the start are no names
            words = words[1:]
        ent = " ".join(words).strip(" .'")
        if len(ent) >= 3 and ent.lower() not in QUESTION_START and not ent.endswith("'s"):
            out.append(ent)
    return out


def is_person(ent: str, text: str, names: set[str]) -> str | None:
    """'he' or 'she' when `ent` is a person: it is (part of) the answer to a who-question of the
    article, never follows "in/to/from/of" (places do), and a following sentence opens with
    He/She; else None."""
    last = ent.split()[-1]
    if not any(last in n.split() for n in names) or re.search(rf"\b(in|to|from|at) (the )?{re.escape(ent)}\b(?!')", text):
        return None
    he = she = 0
    for m in re.finditer(rf"\b{re.escape(last)}\b[^.]*\.\s+(He|She|His|Her)\b", text):
        he += m.group(1) in ("He", "His")
        she += m.group(1) in ("She", "Her")
    words = ent.split()
    if any(w.isupper() and len(w) > 1 for w in words):
        return None  # an acronym: an organisation (ABC, ESPN), not a person
    full_name = len(words) >= 2 and not any(w in ("of", "and", "the", "de", "upon", "on") for w in words)
    if he + she == 0 and not full_name:
        return None
    return "she" if she > he else "he"


def replace_entity(question: str, ent: str, kind: str) -> str | None:
    """The question with `ent` replaced by a pronoun of `kind` ('he', 'she', 'it', 'they')."""
    hits = list(re.finditer(rf"(?<![\w-]){re.escape(ent)}(?![\w-])", question))
    if len(hits) != 1:
        return None
    i = hits[0].start()
    before = question[:i].rstrip()
    after = question[i + len(ent):]
    possessive = after.startswith("'s") or after.startswith("'")
    if possessive:
        after = after[2:] if after.startswith("'s") else after[1:]
    prev_word = before.split()[-1].lower() if before.split() else ""
    if before.lower().endswith(("the", "a", "an")):  # "the Apollo program" -> keep it simple: skip
        return None
    # A name used as a modifier ("the German empire", "the name Great Yuan") cannot become a
    # pronoun: the word before must be a verb, a preposition or nothing, the word after must not
    # be a plain noun.
    if prev_word and not (prev_word in SUBJECT_BEFORE or prev_word in PREPOSITIONS or prev_word.endswith("ed")
                          or prev_word in ("who", "what", "whom", "whose", "when", "where", "which", "why", "how")):
        return None
    next_word = after.split()[0].strip("?,.").lower() if after.split() else ""
    if not possessive and next_word and next_word[0].isalpha() and after.split()[0][0].islower() and not (
            next_word in SUBJECT_BEFORE or next_word in PREPOSITIONS or next_word.endswith("ed") or next_word in FOLLOWERS):
        return None
    forms = {"he": ("he", "him", "his"), "she": ("she", "her", "her"), "it": ("it", "it", "its"), "they": ("they", "them", "their")}[kind]
    if possessive:
        pro = forms[2]
    elif not before or prev_word in SUBJECT_BEFORE:
        pro = forms[0]
    else:
        pro = forms[1]
    if not before:
        pro = pro.capitalize()
    out = f"{before} {pro}{after}" if before else f"{pro}{after}"
    return re.sub(r"\s+", " ", out).replace(" ?", "?").strip()


def frame_difference(q1: str, q2: str) -> str | None:
    """When q2 repeats q1 but for a short span, that span ("in 1950"); else None."""
    a, b = q1.rstrip("?").split(), q2.rstrip("?").split()
    p = 0
    while p < min(len(a), len(b)) and a[p].lower() == b[p].lower():
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[-1 - s].lower() == b[-1 - s].lower():
        s += 1
    diff_a, diff_b = a[p: len(a) - s], b[p: len(b) - s]
    shared = p + s
    if not diff_a or not diff_b or len(diff_b) > 4 or shared < 4 or shared < 0.6 * len(b):
        return None
    head = diff_b[1:] if diff_b[0].lower() in PREPOSITIONS and len(diff_b) > 1 else diff_b
    head_a = diff_a[1:] if diff_a[0].lower() in PREPOSITIONS and len(diff_a) > 1 else diff_a
    slot = lambda w: w[0].isupper() or w[0].isdigit()  # noqa: E731 (a name or a number fills the slot)
    if not (all(slot(w) or w.lower() in ("of", "the", "and") for w in head) and slot(head[0]) and slot(head_a[0])):
        return None
    return " ".join(diff_b)


class Pool:
    """Every usable SQuAD question of the tune articles, with its unique answer substring."""

    def __init__(self, data: list) -> None:
        self.items = []
        self.texts = {}
        for art in data:
            title = art["title"].replace("_", " ")
            text = article_text(art)
            self.texts[title] = text
            offset = len(title) + 2
            for pi, p in enumerate(art["paragraphs"]):
                for qa in p["qas"]:
                    ans = unique_answer(text, offset, qa["answers"][0])
                    if ans:
                        self.items.append({"title": title, "paragraph": pi, "id": qa["id"], "question": " ".join(qa["question"].split()),
                                           "answer": ans, "raw_answer": qa["answers"][0]["text"]})
                offset += len(p["context"]) + 2
        self.by_title = collections.defaultdict(list)
        for it in self.items:
            self.by_title[it["title"]].append(it)


def turn(item: dict, kind: str, asked: str) -> dict:
    return {"kind": kind, "question": asked, "standalone": item["question"], "answer": item["answer"],
            "article": item["title"], "squad_id": item["id"]}


def build(data: list, rng: random.Random) -> list[dict]:
    pool = Pool(data)
    convs: list[dict] = []
    used_first: set[str] = set()

    def switch_turn(title: str) -> dict:
        while True:
            it = rng.choice(pool.items)
            if it["title"] != title and not PRONOUNS.search(it["question"]) and entities(it["question"]):
                return turn(it, "switch", it["question"])

    for title, items in pool.by_title.items():
        text = pool.texts[title]
        names = {it["raw_answer"] for it in items if it["question"].lower().startswith(("who ", "whom "))}
        order = items[:]
        rng.shuffle(order)
        # pronoun follow-ups: two questions naming the same entity
        by_entity = collections.defaultdict(list)
        for it in order:
            if PRONOUNS.search(it["question"]):
                continue  # already depends on something unsaid
            for ent in set(entities(it["question"])):
                by_entity[ent].append(it)
        for ent, its in sorted(by_entity.items()):
            if len(its) < 2 or its[0]["id"] in used_first:
                continue
            gender = is_person(ent, text, names)
            if not gender and any(ent.split()[-1] in n.split() for n in names):
                continue  # named in a who-answer but not clearly a person: neither "he" nor "it" is safe
            if re.search(rf"[\"“]{re.escape(ent)}|{re.escape(ent)}[\"”]", " ".join(i["question"] for i in its)):
                continue  # part of a quoted title
            kind = "person" if gender else "thing"
            pron = gender or ("they" if ent.endswith("s") and not ent.endswith("ss") else "it")
            first = its[0]
            follows = []
            for it in its[1:]:
                asked = replace_entity(it["question"], ent, pron)
                if asked and it["answer"] != first["answer"]:
                    follows.append(turn(it, kind, asked))
                if len(follows) == 2:
                    break
            if not follows:
                continue
            used_first.add(first["id"])
            third = follows[1] if len(follows) > 1 and rng.random() < 0.5 else switch_turn(title)
            convs.append({"turns": [turn(first, "first", first["question"]), follows[0], third]})
        # ellipsis: two questions sharing a frame
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                diff = frame_difference(a["question"], b["question"]) if a["answer"] != b["answer"] else None
                if diff and a["id"] not in used_first:
                    asked = f"And {diff}?" if not diff.lower().startswith(("what", "who", "when", "where", "how", "which", "why")) \
                        else f"And {diff[0].lower() + diff[1:]}?"
                    used_first.add(a["id"])
                    convs.append({"turns": [turn(a, "first", a["question"]), turn(b, "ellipsis", asked), switch_turn(title)]})
                    break
        # a reference to the previous answer
        for a in order:
            if a["id"] in used_first:
                continue
            wh = a["question"].split()[0].lower()
            raw = a["raw_answer"].strip(" .")
            if len(raw) < 3 or wh not in ("where", "when", "who"):
                continue
            for b in order:
                if b is a or b["answer"] == a["answer"] or b["question"].count(raw) != 1 or PRONOUNS.search(b["question"]):
                    continue
                q = b["question"]
                if wh == "where":
                    asked = re.sub(rf"\b(in|at|to|from|near) (the )?{re.escape(raw)}(?![\w-])", "there", q)
                elif wh == "when":
                    asked = re.sub(rf"\b(in|on|during|by) {re.escape(raw)}(?![\w-])", "then", q) if not re.fullmatch(r"\d{4}", raw) \
                        else re.sub(rf"\b(in|during|by) {re.escape(raw)}(?![\w-])", "that year", q)
                else:
                    gender = is_person(raw, text, names)
                    asked = replace_entity(q, raw, gender) if gender else None
                if asked and asked != q and raw not in asked:
                    used_first.add(a["id"])
                    convs.append({"turns": [turn(a, "first", a["question"]), turn(b, "answer", asked), switch_turn(title)]})
                    break
    return convs


def balance(convs: list[dict], rng: random.Random, per_kind: int) -> list[dict]:
    """At most `per_kind` conversations per second-turn kind, spread over the articles."""
    out = []
    by_kind = collections.defaultdict(list)
    for c in convs:
        by_kind[c["turns"][1]["kind"]].append(c)
    for kind, cs in sorted(by_kind.items()):
        rng.shuffle(cs)
        # round-robin over articles so that no article dominates a kind
        per_article = collections.defaultdict(list)
        for c in cs:
            per_article[c["turns"][0]["article"]].append(c)
        picked = []
        while len(picked) < per_kind and any(per_article.values()):
            for t in sorted(per_article):
                if per_article[t] and len(picked) < per_kind:
                    picked.append(per_article[t].pop())
        out += picked
    for i, c in enumerate(out):
        c["id"] = f"c{i:03d}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared/data/squad/dev-v1.1.json.gz")
    ap.add_argument("--out", type=Path, default=ROOT / "scripts/data/conversations_tune.json")
    ap.add_argument("--per-kind", type=int, default=50)
    args = ap.parse_args()
    data = load_json(args.squad)["data"][0::2]  # tune split only; never the odd (held-out) articles
    rng = random.Random(11)
    convs = balance(build(data, rng), rng, args.per_kind)
    kinds = collections.Counter(t["kind"] for c in convs for t in c["turns"])
    out = {"about": "three-turn conversations over the SQuAD v1.1 dev tune articles (data[0::2]); "
                    "built by scripts/build_conversations.py, see scripts/data/README.md",
           "squad": "dev-v1.1.json.gz", "split": "tune", "kinds": dict(sorted(kinds.items())), "conversations": convs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(convs)} conversations, turn kinds {dict(kinds)} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

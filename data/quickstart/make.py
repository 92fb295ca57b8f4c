"""Writes the quick start's small data set, built from templates written for
stilts (no sentence comes from any dataset). Deterministic; run from the repo
root: `python3 data/quickstart/make.py`.

- nli_train_en.tsv   English NLI pairs (premise, hypothesis, label)
- sentiment_en.tsv   English sentiment sentences (text, label): the intermediate task
- nli_eval.tsv       NLI pairs in six XNLI languages (lang, premise, hypothesis, label)
"""
import random

NAMES = ["Anna", "Omar", "Lena", "Tariq", "Mei", "Pablo", "Sara", "Ivan", "Nadia", "Kofi", "Elif", "Minh"]

# (lang, places, verbs): premise "{n} {verb} {place}", and the three hypotheses.
LANGS = {
    "en": dict(places=["the park", "the kitchen", "the library", "the market", "the school", "the garden"],
               acts=["is reading", "is cooking", "is singing", "is working", "is running", "is painting"],
               prem="{n} {a} in {p}.", ent="{n} is in {p}.", con="{n} is not in {p}.", neu="{n} is happy today."),
    "es": dict(places=["el parque", "la cocina", "la biblioteca", "el mercado", "la escuela", "el jardín"],
               acts=["está leyendo", "está cocinando", "está cantando", "está trabajando", "está corriendo", "está pintando"],
               prem="{n} {a} en {p}.", ent="{n} está en {p}.", con="{n} no está en {p}.", neu="{n} está feliz hoy."),
    "fr": dict(places=["le parc", "la cuisine", "la bibliothèque", "le marché", "l'école", "le jardin"],
               acts=["lit", "cuisine", "chante", "travaille", "court", "peint"],
               prem="{n} {a} dans {p}.", ent="{n} est dans {p}.", con="{n} n'est pas dans {p}.", neu="{n} est heureux aujourd'hui."),
    "de": dict(places=["dem Park", "der Küche", "der Bibliothek", "dem Markt", "der Schule", "dem Garten"],
               acts=["liest", "kocht", "singt", "arbeitet", "läuft", "malt"],
               prem="{n} {a} in {p}.", ent="{n} ist in {p}.", con="{n} ist nicht in {p}.", neu="{n} ist heute glücklich."),
    "tr": dict(places=["parkta", "mutfakta", "kütüphanede", "pazarda", "okulda", "bahçede"],
               acts=["kitap okuyor", "yemek yapıyor", "şarkı söylüyor", "çalışıyor", "koşuyor", "resim yapıyor"],
               prem="{n} {p} {a}.", ent="{n} {p}.", con="{n} {p} değil.", neu="{n} bugün mutlu."),
    "vi": dict(places=["công viên", "nhà bếp", "thư viện", "chợ", "trường học", "khu vườn"],
               acts=["đang đọc sách", "đang nấu ăn", "đang hát", "đang làm việc", "đang chạy", "đang vẽ"],
               prem="{n} {a} ở {p}.", ent="{n} ở {p}.", con="{n} không ở {p}.", neu="{n} hôm nay vui."),
}

def pairs(lang, rng, n):
    L = LANGS[lang]
    out = []
    for i in range(n):
        name = rng.choice(NAMES)
        k = rng.randrange(len(L["places"]))
        place, act = L["places"][k], rng.choice(L["acts"])
        premise = L["prem"].format(n=name, a=act, p=place)
        label = ["entailment", "neutral", "contradiction"][i % 3]
        if label == "entailment":
            hyp = L["ent"].format(n=name, p=place)
        elif label == "contradiction":
            hyp = L["con"].format(n=name, p=place)
        else:
            hyp = L["neu"].format(n=name)
        out.append((premise, hyp, label))
    return out

POS = ["a wonderful", "a delightful", "a brilliant", "a charming", "a moving", "an excellent"]
NEG = ["a boring", "a dreadful", "a clumsy", "a tedious", "a shallow", "an awful"]
THINGS = ["film", "book", "song", "play", "story", "show", "novel", "album"]

def main():
    rng = random.Random(2020)
    with open("data/quickstart/nli_train_en.tsv", "w") as f:
        for p, h, l in pairs("en", rng, 300):
            f.write(f"{p}\t{h}\t{l}\n")
    with open("data/quickstart/sentiment_en.tsv", "w") as f:
        for i in range(300):
            pos = i % 2 == 0
            adj = rng.choice(POS if pos else NEG)
            f.write(f"{rng.choice(NAMES)} thinks it is {adj} {rng.choice(THINGS)}.\t{'positive' if pos else 'negative'}\n")
    with open("data/quickstart/nli_eval.tsv", "w") as f:
        for lang in LANGS:
            for p, h, l in pairs(lang, random.Random(7), 60):
                f.write(f"{lang}\t{p}\t{h}\t{l}\n")

main()

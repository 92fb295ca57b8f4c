"""Equivalence of stilts and transformers + torch over seeds: reads the
JSON lines benches/fidelity/seeds.sh writes ({"side", "seed", "avg",
"by_lang"}), prints every seed's average on both sides, the mean and
standard deviation of each side, and the 90% Welch interval of the
difference of means (stilts - torch); equivalence at a margin of M points
(two one-sided tests at 5% each, TOST) holds when that interval lies inside
[-M, +M].

  python benches/fidelity/welch.py target/fidelity/seeds/seeds.jsonl [--margin 1.0] [--markdown]

Standard library only (Student's t from the regularized incomplete beta).
"""
import argparse
import json
import math


def betacf(a, b, x):
    # Lentz's continued fraction for the incomplete beta (Numerical Recipes).
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def betai(a, b, x):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * betacf(b, a, 1 - x) / b


def t_cdf(t, df):
    p = 0.5 * betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - p if t > 0 else p


def t_quantile(q, df):
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mean_sd(x):
    m = sum(x) / len(x)
    return m, math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("seeds")
    ap.add_argument("--margin", type=float, default=1.0)
    ap.add_argument("--markdown", action="store_true", help="also print the per-seed, per-language table")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.seeds) if l.strip()]
    side = {"stilts": {}, "torch": {}}
    for r in rows:
        side[r["side"]][r["seed"]] = r
    s = [side["stilts"][k]["avg"] for k in sorted(side["stilts"])]
    t = [side["torch"][k]["avg"] for k in sorted(side["torch"])]
    print("| seed | stilts | transformers + torch |")
    print("| ---: | ---: | ---: |")
    for k in sorted(set(side["stilts"]) | set(side["torch"])):
        f = lambda d: f"{d[k]['avg']:.2f}" if k in d else "—"
        print(f"| {k} | {f(side['stilts'])} | {f(side['torch'])} |")
    if len(s) < 2 or len(t) < 2:
        print("need at least 2 seeds a side")
        return
    (ms, ss), (mt, st) = mean_sd(s), mean_sd(t)
    vs, vt = ss * ss / len(s), st * st / len(t)
    se = math.sqrt(vs + vt)
    df = (vs + vt) ** 2 / (vs * vs / (len(s) - 1) + vt * vt / (len(t) - 1))
    q = t_quantile(0.95, df)
    d = ms - mt
    lo, hi = d - q * se, d + q * se
    print(f"| mean (sd) | {ms:.2f} ({ss:.2f}) | {mt:.2f} ({st:.2f}) |")
    p_two = 2 * (1 - t_cdf(abs(d) / se, df))
    inside = -a.margin < lo and hi < a.margin
    print()
    print(json.dumps({
        "seeds": [len(s), len(t)], "stilts_mean": round(ms, 3), "stilts_sd": round(ss, 3),
        "torch_mean": round(mt, 3), "torch_sd": round(st, 3), "difference": round(d, 3),
        "welch_df": round(df, 2), "ci90": [round(lo, 3), round(hi, 3)],
        "p_two_sided_difference": round(p_two, 4), "margin": a.margin,
        "equivalent_at_margin": inside}))
    if a.markdown:
        langs = sorted(next(iter(side["stilts"].values()))["by_lang"])
        for name in ("stilts", "torch"):
            seeds = sorted(side[name])
            print()
            print(f"{name}: | language | " + " | ".join(f"seed {k}" for k in seeds) + " |")
            print("| --- | " + " | ".join("---:" for _ in seeds) + " |")
            for l in langs:
                print(f"| {l} | " + " | ".join(f"{side[name][k]['by_lang'][l]:.1f}" for k in seeds) + " |")
            print("| **average** | " + " | ".join(f"**{side[name][k]['avg']:.2f}**" for k in seeds) + " |")


if __name__ == "__main__":
    main()

"""Idea mining (issue 11): which clustering method, what it costs, and the near-duplicate threshold.

Run in the action server's runtime from the repository root:

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/idea_clustering.py [--only quality|cost|online|duplicates]

Quality: Banking77 test utterances (3,080) are treated as ideas and their 77 categories as
the gold themes. Methods that are not told k have their one setting (distance threshold,
minimum cluster size) chosen on a seeded sample of 3,080 *training* utterances by ARI, then
are scored once on the test set, beside k-means given the true k = 77, in the same run, and
again on small stratified samples of the test set (3 and 10 utterances per category, the
size of themes in a young product's log) with the same setting. An
item a method leaves unclustered counts as a theme of its own for ARI and NMI (so leaving
things out is not free), and the share unclustered is reported too.

Cost: items are synthesized from the real MiniLM vectors of the 6,160 utterances above:
each synthetic item is a randomly drawn real vector plus Gaussian noise (sigma 0.02 per
dimension, cosine about 0.93 to its source), normalised, so the themes keep their shape.
Full re-clustering with the production code (analytics.ideas.cluster.cluster_vectors and
the shipped settings) at 10k, 50k and 100k items: seconds and peak memory (the process's
resident high-water mark, reset before each run through /proc/self/clear_refs, minus the
resident size at the start). Online: with 100k items clustered (each theme a row of the
service's own memory, analytics.ideas.themes._Memory), one new utterance is encoded (MiniLM,
one thread) and decided by the service's own step (analytics.ideas.themes.decide_now: mean cosine
to every theme, then the near-duplicate search within the chosen theme); p50/p95 over 200
utterances, encoding shown apart.

Duplicates: analytics/ideas/eval/duplicates.jsonl (labelled idea pairs) scored by cosine;
precision, recall and F1 per threshold, a curve in bench/results/idea_duplicates.png.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, List, Sequence, Tuple

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from analytics.ideas.cluster import UNCLUSTERED, ClusterSettings, cluster_vectors
from bench.machine import machine, machine_line
from knowledge_base.encoder import MiniLMEncoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77"
RESULTS = ROOT / "bench" / "results"
SEED = 7
SIZES = (10_000, 50_000, 100_000)
NOISE = 0.02
ONLINE_QUERIES = 200


def read_split(data: Path, name: str) -> Tuple[List[str], List[str]]:
    with (data / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["category"] for row in rows]


def singletons(labels: np.ndarray) -> np.ndarray:
    """Unclustered items as themes of their own, for ARI/NMI."""
    out = labels.copy()
    loose = np.flatnonzero(out == UNCLUSTERED)
    out[loose] = out.max(initial=-1) + 1 + np.arange(len(loose))
    return out


def score(gold: Sequence[str], labels: np.ndarray) -> Dict[str, float]:
    full = singletons(labels)
    clustered = labels != UNCLUSTERED
    return {
        "ari": float(adjusted_rand_score(gold, full)),
        "nmi": float(normalized_mutual_info_score(gold, full)),
        "unclustered": float(1.0 - clustered.mean()),
        "themes": int(len(set(labels[clustered].tolist()))),
    }


def kmeans(vectors: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=SEED).fit_predict(vectors).astype(np.int64)


def hdbscan(min_size: int, vectors: np.ndarray) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=min_size, copy=True).fit_predict(vectors).astype(np.int64)


def production(linkage: str, threshold: float, vectors: np.ndarray, exact_limit: int = 10_000) -> np.ndarray:
    """The production code path (analytics.ideas.cluster) with one setting changed."""
    return cluster_vectors(vectors, ClusterSettings(linkage=linkage, distance_threshold=threshold, exact_limit=exact_limit, seed=SEED))


# name -> (settings tried on the training sample, labels(setting, vectors))
CANDIDATES: Dict[str, Tuple[Sequence[Any], Callable[[Any, np.ndarray], np.ndarray]]] = {
    "agglomerative average linkage, cosine threshold": ((0.35, 0.4, 0.45, 0.5, 0.55), lambda t, v: production("average", t, v)),
    "agglomerative ward, distance threshold": ((2.0, 2.5, 3.0, 3.5), lambda t, v: production("ward", t, v)),
    "agglomerative complete linkage, cosine threshold": ((0.6, 0.7, 0.8), lambda t, v: production("complete", t, v)),
    "HDBSCAN (scikit-learn), min cluster size": ((3, 5, 10), hdbscan),
    "average linkage on half, the rest joins its nearest theme": ((0.4, 0.45, 0.5), lambda t, v: production("average", t, v, exact_limit=len(v) // 2)),
}
PER_CATEGORY = (3, 10)  # small sets: a theme then has 3 or 10 members, as in a young product's log


def stratified(gold: List[str], per: int) -> np.ndarray:
    rng = random.Random(SEED)
    rows: Dict[str, List[int]] = {}
    for row, name in enumerate(gold):
        rows.setdefault(name, []).append(row)
    return np.asarray(sorted(row for members in rows.values() for row in rng.sample(members, min(per, len(members)))))


def quality(test_vectors: np.ndarray, gold: List[str], tune_vectors: np.ndarray, tune_gold: List[str]) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    subsets = {per: stratified(gold, per) for per in PER_CATEGORY}

    def small(run: Callable[[np.ndarray], np.ndarray]) -> Dict[str, Any]:
        return {str(per): score([gold[i] for i in picked], run(test_vectors[picked])) for per, picked in subsets.items()}

    k = len(set(gold))
    started = time.perf_counter()
    labels = kmeans(test_vectors, k)
    rows.append({"method": f"k-means given the true k = {k} (baseline)", "setting": None, "seconds": time.perf_counter() - started, **score(gold, labels),
                 "small": small(lambda v: kmeans(v, k))})
    for name, (settings, run) in CANDIDATES.items():
        tuning = {str(setting): score(tune_gold, run(setting, tune_vectors))["ari"] for setting in settings}
        best = max(settings, key=lambda setting: tuning[str(setting)])
        started = time.perf_counter()
        labels = run(best, test_vectors)
        seconds = time.perf_counter() - started
        rows.append({"method": name, "setting": best, "tuning_ari": tuning, "seconds": seconds, **score(gold, labels), "small": small(lambda v: run(best, v))})
        print(f"  {name}: {rows[-1]['ari']:.3f} ARI", file=sys.stderr, flush=True)
    return rows


def cached_vectors(encoder: MiniLMEncoder, texts: List[str]) -> np.ndarray:
    """MiniLM vectors, kept under ENGAGE_CACHE keyed by the model's hash and the texts (encoding is most of a run)."""
    import hashlib

    key = hashlib.sha256(("\0".join([encoder.identity().weights, *texts])).encode()).hexdigest()[:16]
    path = Path(os.environ.get("ENGAGE_CACHE", Path.home() / ".cache" / "engage")) / "bench" / f"vectors-{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = encoder.encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def synthesize(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    items = base[rng.integers(0, len(base), n)] + rng.normal(0.0, NOISE, (n, base.shape[1])).astype(np.float32)
    return (items / np.linalg.norm(items, axis=1, keepdims=True)).astype(np.float32)


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured(run: Callable[[], Any]) -> Tuple[Any, float, float]:
    """(result, seconds, peak MiB above the resident size at the start)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    except OSError:
        pass
    before = _kb("VmRSS")
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    return result, seconds, max(0, _kb("VmHWM") - before) / 1024


def cost(base: np.ndarray, settings: ClusterSettings) -> List[Dict[str, Any]]:
    rows = []
    for n in SIZES:
        items = synthesize(base, n, np.random.default_rng(SEED))
        labels, seconds, peak = measured(lambda: cluster_vectors(items, settings))
        rows.append({"items": n, "seconds": seconds, "peak_mib": peak, "themes": int(labels.max()) + 1, "unclustered": float((labels == UNCLUSTERED).mean())})
        print(f"  {n}: {seconds:.1f} s, {peak:.0f} MiB", file=sys.stderr, flush=True)
    return rows


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def online(base: np.ndarray, settings: Any, texts: List[str], encoder: Any) -> Dict[str, Any]:
    """The service's own online step (analytics.ideas.themes.decide) with 100k kept items."""
    from analytics.ideas.memory import _Memory, decide_now

    items = synthesize(base, SIZES[-1], np.random.default_rng(SEED))
    labels = cluster_vectors(items, settings.cluster)
    memory = _Memory()
    for row, (vector, label) in enumerate(zip(items, labels.tolist())):
        memory.add(f"i{row}", vector, f"TH-{label}" if label != UNCLUSTERED else f"TH-single-{row}")
    encoder.encode(["warm up"])
    timings: Dict[str, List[float]] = {"encode": [], "decide": [], "total": []}
    outcomes: Dict[str, int] = {}
    for text in random.Random(SEED).sample(texts, ONLINE_QUERIES):
        t0 = time.perf_counter()
        vector = encoder.encode([text])[0]
        t1 = time.perf_counter()
        how, _, _ = decide_now(vector, memory, settings)
        t2 = time.perf_counter()
        outcomes[how] = outcomes.get(how, 0) + 1
        for name, value in (("encode", t1 - t0), ("decide", t2 - t1), ("total", t2 - t0)):
            timings[name].append(value * 1000)
    return {
        "items": SIZES[-1], "themes": len(memory.names), "encoder": type(encoder).__name__, "outcomes": outcomes,
        **{f"{name}_ms": {"p50": percentile(values, 50), "p95": percentile(values, 95)} for name, values in timings.items()},
    }


@contextlib.asynccontextmanager
async def private_redis(timeout: float) -> AsyncIterator[Any]:
    """A client of a redis-server of its own in a temporary folder, stopped afterwards."""
    import tempfile

    from analytics.redis_connect import connect
    from tests.conftest import RedisServer

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            client = connect(f"redis://127.0.0.1:{server.port}/0", timeout, decode_responses=True)
            try:
                yield client
            finally:
                await client.aclose()
        finally:
            server.stop()


def recluster_check(base: np.ndarray, settings: Any) -> Dict[str, Any]:
    """`ideas recluster` as the service applies it (ThemeStore, a themes_reclustered event) on a
    private redis-server holding 100k items: their themes come from a clustering with another
    seed (as the online themes drift from a full clustering); seconds and peak memory for the
    whole step (load, cluster, match ids, write what moved)."""
    import asyncio
    from dataclasses import replace

    from analytics.ideas.recluster import RECLUSTERS
    from analytics.ideas.areas import AreaMatcher, load_catalogue
    from analytics.ideas.labels import CtfidfLabeller
    from analytics.ideas.report import summaries
    from analytics.ideas.memory import _pack
    from analytics.ideas.themes import ITEMS, THEMES, VERSION, ThemeStore
    from analytics.records.store import RecordStore
    from analytics.schema import SOURCE_STAFF, THEMES_RECLUSTERED, LogEvent

    n = SIZES[-1]
    items = synthesize(base, n, np.random.default_rng(SEED))
    drifted = cluster_vectors(items, replace(settings.cluster, seed=SEED + 1, min_theme_size=1))

    async def run() -> Dict[str, Any]:
        async with private_redis(30.0) as client:
            themes: Dict[str, List[str]] = {}
            async with client.pipeline(transaction=False) as pipe:
                for row, (vector, label) in enumerate(zip(items, drifted.tolist())):
                    theme = f"TH-{label + 1}" if label != UNCLUSTERED else f"TH-{n + row}"
                    themes.setdefault(theme, []).append(f"e{row}")
                    item = {"event_id": f"e{row}", "entry_id": f"{row + 1}-0", "customer": f"C-{row % 5000:016x}", "channel": "socketio", "at": float(row),
                            "text": f"idea {row}", "kind": "idea", "space": "needs", "context": {}, "theme": theme, "how": "joined", "vector": _pack(vector)}
                    pipe.hset(ITEMS, f"e{row}", json.dumps(item, sort_keys=True))
                for theme, members in themes.items():
                    pipe.hset(THEMES, theme, json.dumps({"id": theme, "space": "needs", "status": "new", "history": [], "members": members, "created_at": 0.0}))
                pipe.set("engage:ideas:next", 2 * n)
                pipe.set(VERSION, 1)
                await pipe.execute()
            store = ThemeStore(client, object(), settings)  # type: ignore[arg-type]  (nothing to encode)
            event = LogEvent(THEMES_RECLUSTERED, "themes:needs", SOURCE_STAFF, "", 1.0, data={"space": "needs", "by": "bench"})
            loop = asyncio.get_running_loop()
            _, seconds, peak = await loop.run_in_executor(None, lambda: measured(lambda: asyncio.run_coroutine_threadsafe(store.apply_batch([("1-0", event)]), loop).result()))
            summary = json.loads(await client.hget(RECLUSTERS, event.event_id))
            # What `ideas themes` costs on the same 100k: every theme ranked, labelled, with areas and quotes.
            started = time.perf_counter()
            rows = await summaries(store, RecordStore(client), settings.demand, CtfidfLabeller(), AreaMatcher(load_catalogue()))
            report_seconds = time.perf_counter() - started
        return {"items": n, "seconds": seconds, "peak_mib": peak, "themes_before": summary["themes_before"], "themes_after": summary["themes_after"],
                "ids_kept": summary["kept"], "new": len(summary["new"]), "retired": len(summary["retired"]), "moved": summary["moved"],
                "themes_report_seconds": report_seconds, "themes_reported": len(rows)}

    return asyncio.run(run())


def duplicates(encoder: MiniLMEncoder, path: Path) -> Dict[str, Any]:
    pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    a = encoder.encode([pair["a"] for pair in pairs])
    b = encoder.encode([pair["b"] for pair in pairs])
    cosine = (a * b).sum(axis=1)
    truth = np.array([bool(pair["duplicate"]) for pair in pairs])
    curve = []
    for threshold in np.round(np.arange(0.40, 0.96, 0.025), 3):
        said = cosine >= threshold
        tp = int((said & truth).sum())
        precision = tp / int(said.sum()) if said.any() else 1.0
        recall = tp / int(truth.sum())
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        curve.append({"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1, "merged": int(said.sum())})
    worst = sorted(
        ({"a": p["a"], "b": p["b"], "duplicate": p["duplicate"], "cosine": float(c)} for p, c in zip(pairs, cosine)),
        key=lambda row: row["cosine"] if row["duplicate"] else -row["cosine"],
    )
    return {"pairs": len(pairs), "duplicates": int(truth.sum()), "curve": curve, "hardest": worst[:6]}


class BlankLabeller:
    """The alternative to the English pipeline: spaCy's blank English tokenizer, every 1- and
    2-gram of word tokens as a candidate, the same c-TF-IDF (no stop-word list either)."""

    def __init__(self) -> None:
        import spacy

        self._nlp = spacy.blank("en")

    def phrases(self, texts: Sequence[str]) -> List[List[str]]:
        out = []
        for doc in self._nlp.pipe(texts):
            words = [t.lower_ for t in doc if any(ch.isalnum() for ch in t.text)]
            out.append(sorted(set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}))
        return out


def _words(text: str) -> set:
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in text.lower().replace("_", " ").replace("-", " ").split()}


def labels_check(test_vectors: np.ndarray, texts: List[str], gold: List[str], settings: ClusterSettings) -> List[Dict[str, Any]]:
    """Themes of the production clustering of the test set, labelled both ways: how often the
    label shares a word with the name of the theme's majority category, and how long it took."""
    from collections import Counter

    from analytics.ideas.labels import CtfidfLabeller
    from analytics.ideas.nlp import english

    labels = cluster_vectors(test_vectors, settings)
    members = [[i for i in np.flatnonzero(labels == t)] for t in range(int(labels.max()) + 1)]
    themes = [[texts[i] for i in rows] for rows in members]
    majority = [Counter(gold[i] for i in rows).most_common(1)[0][0] for rows in members]
    rows = []
    for name, make in (("en_core_web_sm (noun chunks, verb + object, lemmas) + c-TF-IDF", lambda: CtfidfLabeller(english())),
                       ("blank English tokenizer, 1-2 grams + c-TF-IDF", lambda: _Blank(BlankLabeller()))):
        labeller = make()
        started = time.perf_counter()
        named = labeller.labels(themes, [t[0] for t in themes])
        seconds = time.perf_counter() - started
        hits = [bool(_words(label) & _words(category)) for label, category in zip(named, majority)]
        examples = [{"category": c, "label": l} for c, l in list(zip(majority, named))[:12]]
        rows.append({"labeller": name, "themes": len(themes), "label_shares_a_word_with_category": float(np.mean(hits)),
                     "mean_words": float(np.mean([len(l.split()) for l in named])), "seconds": seconds, "examples": examples})
        print(f"  {name}: {rows[-1]['label_shares_a_word_with_category']:.3f}", file=sys.stderr, flush=True)
    return rows


class _Blank:
    """CtfidfLabeller's scoring over BlankLabeller's candidates."""

    def __init__(self, source: BlankLabeller) -> None:
        from analytics.ideas.labels import CtfidfLabeller

        self._inner = CtfidfLabeller(nlp=object())
        self._inner.phrases = source.phrases  # type: ignore[method-assign]

    def labels(self, themes: List[List[str]], representatives: List[str]) -> List[str]:
        return self._inner.labels(themes, representatives)


THEME_EVENTS = 1000


def themes_check(texts: List[str], gold: List[str], settings: Any, encoder: MiniLMEncoder, test_vectors: np.ndarray) -> Dict[str, Any]:
    """The service's themes projection (analytics.ideas.themes.ThemeStore) on a private
    redis-server: the first 1,000 test utterances as idea events from 97 customers, in
    batches of 200 as the consumer reads them; then a reset and a replay (vectors cached).
    Online themes are scored against the categories beside the full clustering of the same."""
    from analytics.ideas.themes import ThemeStore
    from analytics.schema import IDEA, SOURCE_ACTION, LogEvent

    events = [(f"{i + 1}-0", LogEvent(IDEA, f"C-{i % 97:016x}", SOURCE_ACTION, "socketio", 1.0 + i, data={"summary": text}))
              for i, text in enumerate(texts[:THEME_EVENTS])]
    gold = gold[:THEME_EVENTS]

    async def run() -> Dict[str, Any]:
        async with private_redis(5.0) as client:
            store = ThemeStore(client, encoder, settings)

            async def apply_all() -> float:
                started = time.perf_counter()
                for start in range(0, len(events), 200):
                    await store.apply_batch(events[start:start + 200])
                return time.perf_counter() - started

            first = await apply_all()
            themes = await store.themes()
            await store.reset()
            again = await apply_all()
        theme_of = {member: theme["id"] for theme in themes for member in theme["members"]}
        online = [theme_of[event.event_id] for _, event in events]
        batch = cluster_vectors(test_vectors[:THEME_EVENTS], settings.cluster)
        return {"events": len(events), "first_pass_seconds": first, "replay_seconds": again, "themes": len(themes),
                "online": score(gold, np.asarray([int(t.split("-")[1]) for t in online])),
                "full_clustering": score(gold, batch)}

    import asyncio

    return asyncio.run(run())


def plot_duplicates(result: Dict[str, Any], chosen: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    figure, axis = plt.subplots(figsize=(6, 4))
    thresholds = [row["threshold"] for row in curve]
    for key in ("precision", "recall", "f1"):
        axis.plot(thresholds, [row[key] for row in curve], label=key)
    axis.axvline(chosen, color="grey", linestyle="--", label=f"chosen {chosen:g}")
    axis.set_xlabel("cosine threshold (MiniLM)")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"Near-duplicate ideas: {result['pairs']} labelled pairs")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--only", choices=["quality", "labels", "themes", "cost", "recluster", "online", "duplicates"])
    args = parser.parse_args(argv)
    from analytics.ideas.config import DEFAULT_CONFIG, load_settings

    settings = load_settings()
    encoder = MiniLMEncoder(threads=int(os.environ.get("ENGAGE_ENCODER_THREADS", "1")))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = {"machine": machine(), "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "settings": str(DEFAULT_CONFIG.relative_to(ROOT))}
    if args.only in (None, "duplicates"):
        print("duplicates", file=sys.stderr)
        report["duplicates"] = duplicates(encoder, ROOT / "analytics" / "ideas" / "eval" / "duplicates.jsonl")
        report["duplicates"]["chosen"] = settings.duplicate_similarity
        plot_duplicates(report["duplicates"], settings.duplicate_similarity, RESULTS / "idea_duplicates.png")
    if args.only != "duplicates":
        test_texts, gold = read_split(args.data, "test")
        train_texts, train_gold = read_split(args.data, "train")
        tune = random.Random(SEED).sample(range(len(train_texts)), len(test_texts))
        tune_texts, tune_gold = [train_texts[i] for i in tune], [train_gold[i] for i in tune]
        print(f"encoding {len(test_texts) + len(tune_texts)} utterances", file=sys.stderr, flush=True)
        test_vectors = cached_vectors(encoder, test_texts)
        tune_vectors = cached_vectors(encoder, tune_texts)
        base = np.vstack([test_vectors, tune_vectors])
        if args.only in (None, "quality"):
            print("quality", file=sys.stderr)
            report["quality"] = quality(test_vectors, gold, tune_vectors, tune_gold)
        if args.only in (None, "labels"):
            print("labels", file=sys.stderr)
            report["labels"] = labels_check(test_vectors, test_texts, gold, settings.cluster)
        if args.only in (None, "themes"):
            print("themes", file=sys.stderr)
            from analytics.ideas.themes import default_encoder

            report["themes"] = themes_check(test_texts, gold, settings, default_encoder(), test_vectors)
        if args.only in (None, "cost"):
            print("cost", file=sys.stderr)
            report["cost"] = cost(base, settings.cluster)
        if args.only in (None, "recluster"):
            print("recluster", file=sys.stderr)
            report["recluster"] = recluster_check(base, settings)
        if args.only in (None, "online"):
            print("online", file=sys.stderr)
            from analytics.ideas.themes import default_encoder

            report["online"] = online(base, settings, test_texts, default_encoder())
    name = "idea_clustering" + (f"_{args.only}" if args.only else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = render(report)
    (RESULTS / f"{name}.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


def render(report: Dict[str, Any]) -> str:
    lines = [f"Machine: {machine_line(report['machine'])}; {report['when']}", ""]
    if "quality" in report:
        lines += ["| method | setting (chosen on train) | ARI | NMI | unclustered | themes | seconds | ARI, 10 per category | ARI, 3 per category |", "|---|---|---|---|---|---|---|---|---|"]
        for row in report["quality"]:
            lines.append(f"| {row['method']} | {row['setting'] if row['setting'] is not None else '-'} | {row['ari']:.3f} | {row['nmi']:.3f} | {row['unclustered']:.1%} | {row['themes']} | {row['seconds']:.1f} | {row['small']['10']['ari']:.3f} | {row['small']['3']['ari']:.3f} |")
        lines.append("")
    if "labels" in report:
        lines += ["| labeller | themes | label shares a word with the category | words per label | seconds |", "|---|---|---|---|---|"]
        for row in report["labels"]:
            lines.append(f"| {row['labeller']} | {row['themes']} | {row['label_shares_a_word_with_category']:.1%} | {row['mean_words']:.1f} | {row['seconds']:.1f} |")
        lines.append("")
        for row in report["labels"]:
            lines.append(f"{row['labeller']}: " + "; ".join(f"{e['category']} -> {e['label']!r}" for e in row["examples"]))
        lines.append("")
    if "themes" in report:
        t = report["themes"]
        lines += [f"Themes projection, {t['events']:,} idea events: first pass {t['first_pass_seconds']:.1f} s (encoding), replay {t['replay_seconds']:.1f} s (cached vectors); "
                  f"{t['themes']} themes, ARI {t['online']['ari']:.3f} / NMI {t['online']['nmi']:.3f} against the categories "
                  f"(full clustering of the same: ARI {t['full_clustering']['ari']:.3f} / NMI {t['full_clustering']['nmi']:.3f}, {t['full_clustering']['themes']} themes)", ""]
    if "cost" in report:
        lines += ["| items | full re-clustering (s) | peak memory (MiB) | themes | unclustered |", "|---|---|---|---|---|"]
        for row in report["cost"]:
            lines.append(f"| {row['items']:,} | {row['seconds']:.1f} | {row['peak_mib']:.0f} | {row['themes']} | {row['unclustered']:.1%} |")
        lines.append("")
    if "recluster" in report:
        r = report["recluster"]
        lines += [f"`ideas recluster` applied by the service, {r['items']:,} items: {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB; "
                  f"{r['themes_before']} themes before, {r['themes_after']} after; {r['ids_kept']} ids kept, {r['new']} new, {r['retired']} retired; {r['moved']:,} items moved; "
                  f"then `ideas themes` on the same items: {r['themes_reported']} themes in {r['themes_report_seconds']:.1f} s", ""]
    if "online" in report:
        o = report["online"]
        lines += [f"Online, {o['items']:,} items in {o['themes']} themes ({ONLINE_QUERIES} new items, {o['encoder']}; {o['outcomes']}):", "", "| step | p50 ms | p95 ms |", "|---|---|---|"]
        for step in ("encode", "decide", "total"):
            lines.append(f"| {step.replace('_', ' ')} | {o[step + '_ms']['p50']:.2f} | {o[step + '_ms']['p95']:.2f} |")
        lines.append("")
    if "duplicates" in report:
        d = report["duplicates"]
        lines += [f"Near duplicates: {d['pairs']} labelled pairs ({d['duplicates']} duplicates); chosen threshold {d['chosen']:g}", "", "| cosine ≥ | precision | recall | F1 | merged |", "|---|---|---|---|---|"]
        for row in d["curve"]:
            lines.append(f"| {row['threshold']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['merged']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Compare NLU pipelines (count vectors + DIET vs MiniLM variants) on Banking77 and the project's test set.

Runs in the Rasa runtime from the repository root:

    PYTHONPATH=. .venvs/rasa/bin/python bench/nlu_compare.py

Trains every pipeline with Rasa's own training API, parses every test message
through `Agent.parse_message`, prints tables as it goes and writes
bench/results/nlu_pipelines.md (raw predictions go to results/nlu_compare/).
Fallback is simulated offline from the intent ranking with the exact rule of
Rasa's FallbackClassifier, so one trained model yields the whole threshold sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import hashlib
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from bench.machine import machine

ROOT = Path(__file__).resolve().parent.parent
BANKING77 = Path("/work/shared/data/banking77")
RESULTS_MD = ROOT / "bench" / "results" / "nlu_pipelines.md"
RAW_DIR = ROOT / "results" / "nlu_compare"
SEED = 42
OUT_OF_SCOPE = "out_of_scope"
AMBIGUITY_THRESHOLD = 0.1  # FallbackClassifier's default (the sweeps also show 0.0)
THRESHOLDS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
FINE_THRESHOLDS = [i / 100 for i in range(0, 100)]
AMBIGUITIES = (0.0, 0.05, 0.1)
EPOCHS = 100  # same for every DIET pipeline; config.yml's baseline value

_TOKENS = [{"name": "WhitespaceTokenizer"}]
_COUNT_VECTORS = [
    {"name": "RegexFeaturizer"},
    {"name": "LexicalSyntacticFeaturizer"},
    {"name": "CountVectorsFeaturizer"},
    {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
]
_MINILM = [{"name": "bot.nlu.minilm.MiniLMFeaturizer"}]
# Without DIET something else has to extract the project's `field` entity.
_ENTITIES = [{"name": "CRFEntityExtractor"}, {"name": "EntitySynonymMapper"}]


def _diet(epochs: int) -> Dict[str, Any]:
    return {
        "name": "DIETClassifier",
        "epochs": epochs,
        "constrain_similarities": True,
        "random_seed": SEED,
    }


def pipelines(epochs: int) -> Dict[str, Dict[str, Any]]:
    """Candidate pipelines, without FallbackClassifier (simulated afterwards)."""
    return {
        "A_countvec_diet": {
            "about": "config.yml baseline: count vectors (word + char_wb 1-4) + lexical + regex, DIET",
            "pipeline": _TOKENS + _COUNT_VECTORS + [_diet(epochs), {"name": "EntitySynonymMapper"}],
        },
        "B_minilm_countvec_diet": {
            "about": "A plus MiniLM sentence features, DIET",
            "pipeline": _TOKENS + _MINILM + _COUNT_VECTORS
            + [_diet(epochs), {"name": "EntitySynonymMapper"}],
        },
        "C_minilm_svm": {
            "about": "MiniLM sentence features only, SklearnIntentClassifier (linear SVM, C by CV); "
                     "CRFEntityExtractor for entities",
            "pipeline": _TOKENS + _MINILM + [{"name": "SklearnIntentClassifier"}] + _ENTITIES,
        },
        "D_minilm_logreg": {
            "about": "MiniLM sentence features only, LogisticRegressionClassifier (Rasa defaults); "
                     "CRFEntityExtractor for entities",
            "pipeline": _TOKENS + _MINILM + [{"name": "LogisticRegressionClassifier"}] + _ENTITIES,
        },
    }


Span = Tuple[str, int, int]  # entity type, start, end


@dataclass
class Example:
    text: str
    intent: str
    entities: List[Span] = field(default_factory=list)


@dataclass
class Prediction:
    gold: str
    intent: str
    confidence: float
    second: Optional[float]
    latency_ms: float
    gold_entities: List[Span] = field(default_factory=list)
    entities: List[Span] = field(default_factory=list)


@dataclass
class RunResult:
    experiment: str
    pipeline: str
    n_train: int
    n_test: int
    train_seconds: float
    load_seconds: float
    first_parse_ms: float
    predictions: List[Prediction] = field(default_factory=list)
    # 1-minute load average when parsing started: 2 shared cores make timings noisy.
    load_avg: float = float("nan")


# ---------------------------------------------------------------- data


def clean(text: str) -> str:
    return " ".join(text.split())


def load_banking77(split: str) -> List[Example]:
    with (BANKING77 / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        rows = [Example(clean(r["text"]), r["category"]) for r in csv.DictReader(handle)]
    return [r for r in rows if r.text]


def sample_per_intent(rows: Sequence[Example], k: int, seed: int, intents: Iterable[str]) -> List[Example]:
    wanted = set(intents)
    by_intent: Dict[str, List[Example]] = defaultdict(list)
    for row in rows:
        if row.intent in wanted:
            by_intent[row.intent].append(row)
    rng = random.Random(seed)
    out: List[Example] = []
    for intent in sorted(by_intent):
        pool = by_intent[intent]
        out.extend(rng.sample(pool, min(k, len(pool))))
    return out


def load_rasa_nlu(path: Path) -> List[Example]:
    """Intent examples from Rasa NLU files (plain text, entity markup removed)."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    out = []
    for m in data.intent_examples:
        text = m.get("text")
        if not (text and m.get("intent")):
            continue
        if clean(text) != text:
            raise ValueError(f"{path}: unexpected whitespace in {text!r} would shift entity offsets")
        spans = [(e["entity"], int(e["start"]), int(e["end"])) for e in m.get("entities") or []]
        out.append(Example(text, m.get("intent"), spans))
    return out


def write_json_nlu(examples: Sequence[Example], path: Path) -> None:
    # Rasa's JSON format: texts are taken literally (no [entity](markup) parsing).
    data = {
        "rasa_nlu_data": {
            "common_examples": [
                {
                    "text": e.text,
                    "intent": e.intent,
                    "entities": [
                        {"entity": t, "start": a, "end": b, "value": e.text[a:b]} for t, a, b in e.entities
                    ],
                }
                for e in examples
            ],
        }
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------- running


def train(pipeline: List[Dict[str, Any]], train_file: Path, workdir: Path, name: str) -> Tuple[str, float]:
    import yaml
    from rasa.model_training import train_nlu

    config = {"recipe": "default.v1", "language": "en", "pipeline": pipeline, "policies": []}
    config_path = workdir / f"{name}.config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    model = train_nlu(str(config_path), str(train_file), str(workdir / "models"), fixed_model_name=name)
    seconds = time.perf_counter() - started
    if not model:
        raise RuntimeError(f"training {name} produced no model")
    return model, seconds


async def _parse_all(agent: Any, tests: Sequence[Example], every: int) -> Tuple[float, List[Prediction]]:
    started = time.perf_counter()
    await agent.parse_message("warm up the graph")
    first_ms = (time.perf_counter() - started) * 1000
    out: List[Prediction] = []
    for index, example in enumerate(tests, 1):
        started = time.perf_counter()
        parsed = await agent.parse_message(example.text)
        elapsed_ms = (time.perf_counter() - started) * 1000
        ranking = parsed.get("intent_ranking") or []
        second = ranking[1]["confidence"] if len(ranking) >= 2 else None
        intent = parsed.get("intent") or {}
        out.append(
            Prediction(
                example.intent,
                intent.get("name") or "",
                float(intent.get("confidence") or 0.0),
                None if second is None else float(second),
                elapsed_ms,
                list(example.entities),
                [(e["entity"], int(e["start"]), int(e["end"])) for e in parsed.get("entities") or []],
            )
        )
        if index % every == 0:
            print(f"      parsed {index}/{len(tests)}", flush=True)
    return first_ms, out


def run(experiment: str, name: str, spec: Dict[str, Any], train_rows: Sequence[Example],
        tests: Sequence[Example], workdir: Path, train_path: Optional[Path] = None) -> RunResult:
    """Train one pipeline (on `train_path` if given, else on `train_rows`) and parse every test."""
    from rasa.core.agent import Agent

    run_dir = workdir / f"{experiment}-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if train_path is None:
        train_file = run_dir / "train.json"
        write_json_nlu(train_rows, train_file)
    else:
        train_file = train_path  # the project's own files, with synonyms and regexes
    print(f"  -> {experiment} / {name}: training on {len(train_rows)} examples", flush=True)
    model, train_seconds = train(spec["pipeline"], train_file, run_dir, name)
    print(f"     trained in {train_seconds:.1f} s; parsing {len(tests)} test messages", flush=True)
    started = time.perf_counter()
    agent = Agent.load(model)
    load_seconds = time.perf_counter() - started
    load_avg = os.getloadavg()[0]
    first_ms, predictions = asyncio.run(_parse_all(agent, tests, every=1000))
    result = RunResult(experiment, name, len(train_rows), len(tests), train_seconds, load_seconds,
                       first_ms, predictions, load_avg)
    summary = intent_metrics(predictions)
    lat = latency(predictions)
    print(
        f"     accuracy {summary['accuracy']:.4f}  macro-F1 {summary['macro_f1']:.4f}  "
        f"p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms",
        flush=True,
    )
    return result


def stratified_folds(rows: Sequence[Example], folds: int, seed: int) -> List[List[Example]]:
    by_intent: Dict[str, List[Example]] = defaultdict(list)
    for row in rows:
        by_intent[row.intent].append(row)
    rng = random.Random(seed)
    out: List[List[Example]] = [[] for _ in range(folds)]
    offset = 0
    for intent in sorted(by_intent):
        pool = list(by_intent[intent])
        rng.shuffle(pool)
        for i, row in enumerate(pool):
            out[(i + offset) % folds].append(row)
        offset += len(pool)  # spread the remainders over the folds
    return out


def run_cv(name: str, spec: Dict[str, Any], rows: Sequence[Example], folds: int, workdir: Path) -> RunResult:
    """Out-of-fold predictions on the training data: for choosing the fallback threshold without the test set."""
    parts = stratified_folds(rows, folds, SEED)
    total = RunResult("project_cv", name, len(rows), len(rows), 0.0, 0.0, 0.0)
    for index, held in enumerate(parts):
        train_rows = [r for j, part in enumerate(parts) if j != index for r in part]
        result = run(f"project_cv{index}", name, spec, train_rows, held, workdir)
        total.train_seconds += result.train_seconds
        total.load_seconds += result.load_seconds
        total.predictions.extend(result.predictions)
    total.first_parse_ms = float("nan")
    return total


def interleaved_latency(specs: Dict[str, Dict[str, Any]], chosen: Sequence[str], train_path: Path,
                        tests: Sequence[Example], workdir: Path, rounds: int) -> Dict[str, Any]:
    """Parse latency with all pipelines loaded and messages sent round-robin.

    Each message goes to every pipeline in turn, so load from other jobs on the
    shared cores hits all pipelines alike. DIET is trained for one epoch here:
    inference cost does not depend on how long the weights were trained.
    """
    from rasa.core.agent import Agent

    agents = {}
    for name in chosen:
        spec = json.loads(json.dumps(specs[name]))
        for component in spec["pipeline"]:
            if component["name"] == "DIETClassifier":
                component["epochs"] = 1
        run_dir = workdir / f"latency-{name}"
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"  -> latency / {name}: training (DIET 1 epoch)", flush=True)
        model, _ = train(spec["pipeline"], train_path, run_dir, name)
        agents[name] = Agent.load(model)

    async def measure() -> Dict[str, List[float]]:
        timings: Dict[str, List[float]] = {name: [] for name in agents}
        for agent in agents.values():
            await agent.parse_message("warm up the graph")
        for round_index in range(rounds):
            for example in tests:
                names = list(agents)
                if round_index % 2:
                    names.reverse()  # neither pipeline always goes first
                for name in names:
                    started = time.perf_counter()
                    await agents[name].parse_message(example.text)
                    timings[name].append((time.perf_counter() - started) * 1000)
            print(f"     round {round_index + 1}/{rounds} done", flush=True)
        return timings

    load_before = os.getloadavg()[0]
    timings = asyncio.run(measure())
    out: Dict[str, Any] = {"rounds": rounds, "messages": len(tests), "load_avg": load_before,
                           "pipelines": {}}
    for name, values in timings.items():
        values.sort()
        q = statistics.quantiles(values, n=100, method="inclusive")
        out["pipelines"][name] = {"p50": q[49], "p95": q[94], "mean": statistics.fmean(values),
                                  "n": len(values)}
        print(f"     {name}: p50 {q[49]:.1f} ms  p95 {q[94]:.1f} ms", flush=True)
    return out


# ---------------------------------------------------------------- metrics


def falls_back(p: Prediction, threshold: float, ambiguity: float = AMBIGUITY_THRESHOLD) -> bool:
    """Rasa 3.6 FallbackClassifier._should_fallback on (confidence, second confidence)."""
    if p.confidence < threshold:
        return True
    return p.second is not None and (p.confidence - p.second) < ambiguity


def macro_f1(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(1 for g, p in zip(golds, preds) if g == label and p == label)
        fp = sum(1 for g, p in zip(golds, preds) if g != label and p == label)
        fn = sum(1 for g, p in zip(golds, preds) if g == label and p != label)
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def intent_metrics(preds: Sequence[Prediction]) -> Dict[str, float]:
    """Accuracy and macro-F1 over the gold labels, before any fallback."""
    golds = [p.gold for p in preds]
    labels = sorted(set(golds))
    guessed = [p.intent for p in preds]
    accuracy = sum(1 for g, q in zip(golds, guessed) if g == q) / len(preds)
    return {"accuracy": accuracy, "macro_f1": macro_f1(golds, guessed, labels)}


def entity_metrics(preds: Sequence[Prediction]) -> Dict[str, float]:
    """Micro precision/recall/F1 over exact (type, start, end) spans."""
    tp = fp = fn = 0
    for p in preds:
        gold = {tuple(e) for e in p.gold_entities}
        got = {tuple(e) for e in p.entities}
        tp += len(gold & got)
        fp += len(got - gold)
        fn += len(gold - got)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1,
            "entity_gold": float(tp + fn)}


def latency(preds: Sequence[Prediction]) -> Dict[str, float]:
    values = sorted(p.latency_ms for p in preds)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "mean": statistics.fmean(values)}


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(score of a random positive > that of a random negative), ties counted half."""
    if not positive or not negative:
        return float("nan")
    ranked = sorted([(s, 1) for s in positive] + [(s, 0) for s in negative])
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def sweep_point(preds: Sequence[Prediction], is_oos: Any, threshold: float, ambiguity: float,
                oos_intents: Sequence[str] = ()) -> Dict[str, float]:
    """In-scope fallback rate / answered correctly / precision, and OOS handled, at one setting.

    An out-of-scope message counts as handled when it falls back or (project
    data) is classified as one of `oos_intents`.
    """
    inscope = [p for p in preds if not is_oos(p)]
    oos = [p for p in preds if is_oos(p)]
    fb_in = [falls_back(p, threshold, ambiguity) for p in inscope]
    answered = sum(1 for fb in fb_in if not fb)
    answered_correct = sum(1 for p, fb in zip(inscope, fb_in) if not fb and p.intent == p.gold)
    handled = sum(1 for p in oos if falls_back(p, threshold, ambiguity) or p.intent in oos_intents)
    nan = float("nan")
    return {
        "threshold": threshold,
        "ambiguity": ambiguity,
        "in_fallback": sum(fb_in) / len(inscope) if inscope else nan,
        "in_correct": answered_correct / len(inscope) if inscope else nan,
        "in_precision": answered_correct / answered if answered else nan,
        "oos_handled": handled / len(oos) if oos else nan,
    }


def oos_sweep(preds: Sequence[Prediction], is_oos: Any, ambiguity: float,
              oos_intents: Sequence[str] = (), thresholds: Sequence[float] = THRESHOLDS) -> List[Dict[str, float]]:
    return [sweep_point(preds, is_oos, t, ambiguity, oos_intents) for t in thresholds]


def oos_at_budget(preds: Sequence[Prediction], is_oos: Any, budget: float,
                  oos_intents: Sequence[str] = ()) -> Dict[str, float]:
    """Best OOS handling over (threshold, ambiguity) whose in-scope fallback stays within budget.

    Ties go to the setting that answers more in-scope messages correctly, then to
    the higher threshold: it costs nothing measurable here and abstains more on
    topics that no test message covers.
    """
    best: Optional[Dict[str, float]] = None
    for ambiguity in AMBIGUITIES:
        for point in oos_sweep(preds, is_oos, ambiguity, oos_intents, FINE_THRESHOLDS):
            if not point["in_fallback"] <= budget:
                continue
            key = (point["oos_handled"], point["in_correct"], point["threshold"])
            if best is None or key > (best["oos_handled"], best["in_correct"], best["threshold"]):
                best = point
    if best is None:
        nan = float("nan")
        return {"threshold": nan, "ambiguity": nan, "oos_handled": nan, "in_fallback": nan,
                "in_correct": nan, "in_precision": nan}
    return best


# ---------------------------------------------------------------- experiments


Experiment = Tuple[str, List[Example], List[Example], Dict[str, Any]]  # name, train, test, meta


def banking_experiments(ks: Sequence[int], oos_k: int, oos_held: int) -> List[Experiment]:
    train_rows = load_banking77("train")
    test_rows = load_banking77("test")
    intents = sorted({r.intent for r in train_rows})
    out = []
    for k in ks:
        out.append((f"banking77_k{k}", sample_per_intent(train_rows, k, SEED, intents), test_rows, {}))
    if oos_k:
        held = sorted(random.Random(SEED).sample(intents, oos_held))
        kept = [i for i in intents if i not in held]
        out.append((
            f"banking77_oos_k{oos_k}",
            sample_per_intent(train_rows, oos_k, SEED, kept),
            test_rows,
            {"held_out": held},
        ))
    return out


def project_experiment() -> Optional[Experiment]:
    train_dir, test_dir = ROOT / "nlu_data" / "nlu", ROOT / "nlu_data" / "test"
    if not train_dir.exists() or not test_dir.exists():
        print(f"  (project data missing: {train_dir} or {test_dir}; skipped)", flush=True)
        return None
    digest = hashlib.sha256()
    for path in sorted([*train_dir.rglob("*.yml"), *test_dir.rglob("*.yml")]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    # Runs are comparable only on the same data: the hash shows up in the report.
    return ("project", load_rasa_nlu(train_dir), load_rasa_nlu(test_dir),
            {"train_path": str(train_dir), "data_sha256": digest.hexdigest()[:12]})


# ---------------------------------------------------------------- report


def run_info() -> Dict[str, str]:
    info = machine()
    ram = f"{info['ram_bytes'] / 2**30:.1f} GiB" if info["ram_bytes"] else "unknown"
    import rasa
    import onnxruntime
    import tensorflow

    return {
        "nproc": str(info["cores"]),
        "cpu": info["cpu"] or "unknown",
        "ram": ram,
        "python": info["python"],
        "rasa": rasa.__version__,
        "tensorflow": tensorflow.__version__,
        "onnxruntime": onnxruntime.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def summarise(result: RunResult, meta: Dict[str, Any]) -> Dict[str, Any]:
    preds = result.predictions
    summary: Dict[str, Any] = {
        "experiment": result.experiment,
        "pipeline": result.pipeline,
        "n_train": result.n_train,
        "n_test": result.n_test,
        "train_seconds": result.train_seconds,
        "load_seconds": result.load_seconds,
        "first_parse_ms": result.first_parse_ms,
        "load_avg": result.load_avg,
        **{f"latency_{k}": v for k, v in latency(preds).items()},
    }
    held = set(meta.get("held_out", ()))
    oos_intents: Tuple[str, ...] = ()
    if held:
        is_oos = lambda p: p.gold in held  # noqa: E731
        inscope = [p for p in preds if p.gold not in held]
        summary.update({f"in_{k}": v for k, v in intent_metrics(inscope).items()})
        summary["auroc"] = auroc([p.confidence for p in inscope],
                                 [p.confidence for p in preds if p.gold in held])
    elif any(p.gold == OUT_OF_SCOPE for p in preds):
        is_oos = lambda p: p.gold == OUT_OF_SCOPE  # noqa: E731
        oos_intents = (OUT_OF_SCOPE,)
        summary.update(intent_metrics(preds))
        inscope = [p for p in preds if p.gold != OUT_OF_SCOPE]
        summary.update({f"in_{k}": v for k, v in intent_metrics(inscope).items()})
        n_oos = sum(1 for p in preds if p.gold == OUT_OF_SCOPE)
        summary["n_oos"] = n_oos
        summary.update(entity_metrics(preds))
        summary["oos_as_intent"] = sum(
            1 for p in preds if p.gold == OUT_OF_SCOPE and p.intent == OUT_OF_SCOPE
        ) / max(1, n_oos)
    else:
        is_oos = lambda p: False  # noqa: E731
        summary.update(intent_metrics(preds))
    summary["sweep"] = {str(a): oos_sweep(preds, is_oos, a, oos_intents) for a in (AMBIGUITY_THRESHOLD, 0.0)}
    for budget in (0.05, 0.10):
        summary[f"oos_at_{int(budget * 100)}"] = oos_at_budget(preds, is_oos, budget, oos_intents)
    return summary


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(summaries: List[Dict[str, Any]], specs: Dict[str, Dict[str, Any]], info: Dict[str, Any]) -> str:
    parts = [
        "# NLU pipeline comparison",
        "",
        "Generated by `bench/nlu_compare.py` (numbers below are measured, not edited). "
        "Decision and discussion: see the end of this file.",
        "",
        "## Machine and run",
        "",
        table(["key", "value"], sorted(info["machine"].items())),
        "",
        f"Run settings: DIET epochs as noted per experiment (equal for both DIET pipelines), seed {SEED}, "
        f"FallbackClassifier simulated with ambiguity_threshold {AMBIGUITY_THRESHOLD}, "
        "Latency = wall time of one "
        "`Agent.parse_message` (whole NLU graph, one message at a time, after one warm-up parse). "
        "Training time = `rasa.model_training.train_nlu` wall time with Rasa's cache disabled. "
        "2 cores shared with other jobs, so timings are noisy.",
        "",
        "## Pipelines",
        "",
        table(["name", "what"], [(n, s["about"]) for n, s in specs.items()]),
        "",
    ]
    by_exp: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for s in summaries:
        by_exp[s["experiment"]].append(s)
    for exp, rows in by_exp.items():
        meta = info["experiments"].get(exp, {})
        parts += [f"## {exp}", ""]
        if meta.get("about"):
            parts += [meta["about"], ""]
        common = ["train s", "load s", "p50 ms", "p95 ms", "first parse ms", "load avg"]
        timing = lambda r: (r["train_seconds"], r["load_seconds"], r["latency_p50"],  # noqa: E731
                            r["latency_p95"], r["first_parse_ms"], r["load_avg"])
        if meta.get("held_out"):
            parts += [table(["pipeline", "in-scope acc", "in-scope macro-F1",
                             "AUROC (confidence, in-scope vs held-out)"] + common,
                            [(r["pipeline"], r["in_accuracy"], r["in_macro_f1"], r["auroc"], *timing(r))
                             for r in rows]), ""]
        elif "oos_as_intent" in rows[0]:
            parts += [table(["pipeline", "accuracy", "macro-F1", "in-scope acc", "in-scope macro-F1",
                             f"OOS → out_of_scope, no fallback (n={rows[0]['n_oos']})",
                             f"entity P / R / F1 (gold spans {int(rows[0]['entity_gold'])})"] + common,
                            [(r["pipeline"], r["accuracy"], r["macro_f1"], r["in_accuracy"],
                              r["in_macro_f1"], r["oos_as_intent"],
                              f"{fmt(r['entity_precision'], 2)} / {fmt(r['entity_recall'], 2)} / "
                              f"{fmt(r['entity_f1'], 2)}", *timing(r)) for r in rows]), ""]
        else:
            parts += [table(["pipeline", "train n", "test n", "accuracy", "macro-F1"] + common,
                            [(r["pipeline"], r["n_train"], r["n_test"], r["accuracy"], r["macro_f1"],
                              *timing(r)) for r in rows]), ""]
        if not (meta.get("held_out") or "oos_as_intent" in rows[0]):
            continue
        chosen_rows = [r for r in rows if "at_cv_choice" in r]
        if chosen_rows:
            parts += [
                "At the fallback setting chosen by cross-validation on nlu_data/nlu (best out-of-scope "
                "handling with ≤5% in-scope fallback on out-of-fold predictions; see project_cv), "
                "measured on this test set:",
                "",
                table(["pipeline", "threshold", "ambiguity", "OOS handled", "in-scope fallback",
                       "in-scope answered correctly", "precision of answers"],
                      [(r["pipeline"], r["at_cv_choice"]["threshold"], r["at_cv_choice"]["ambiguity"],
                        r["at_cv_choice"]["oos_handled"], r["at_cv_choice"]["in_fallback"],
                        r["at_cv_choice"]["in_correct"], r["at_cv_choice"]["in_precision"])
                       for r in chosen_rows]),
                "",
            ]
        parts += [
            "Best fallback setting per in-scope fallback budget, searched on these very predictions "
            "(threshold 0.00–0.99 × ambiguity_threshold {0, 0.05, 0.1}; an oracle operating point "
            "for comparing pipelines, not a tuned setting): out-of-scope handled, with the "
            "in-scope messages still answered correctly.",
            "",
            table(["pipeline", "budget", "threshold", "ambiguity", "OOS handled",
                   "in-scope fallback", "in-scope answered correctly", "precision of answers"],
                  [(r["pipeline"], f"≤{b}%", r[f"oos_at_{b}"]["threshold"], r[f"oos_at_{b}"]["ambiguity"],
                    r[f"oos_at_{b}"]["oos_handled"], r[f"oos_at_{b}"]["in_fallback"],
                    r[f"oos_at_{b}"]["in_correct"], r[f"oos_at_{b}"]["in_precision"])
                   for b in (5, 10) for r in rows]),
            "",
        ]
        for ambiguity, sweeps in rows[0]["sweep"].items():
            parts += [f"Threshold sweep, ambiguity_threshold {ambiguity} (in-scope fallback / "
                      "in-scope answered correctly / out-of-scope handled):", ""]
            headers = ["threshold"] + [r["pipeline"] for r in rows]
            sweep_rows = []
            for i, t in enumerate(THRESHOLDS):
                cells: List[Any] = [f"{t:.2f}"]
                for r in rows:
                    point = r["sweep"][ambiguity][i]
                    cells.append(f"{fmt(point['in_fallback'], 2)} / {fmt(point['in_correct'], 2)} / "
                                 f"{fmt(point['oos_handled'], 2)}")
                sweep_rows.append(cells)
            parts += [table(headers, sweep_rows), ""]
    lat = info.get("latency")
    if lat:
        parts += [
            "## Parse latency, interleaved",
            "",
            f"All pipelines loaded at once, trained on nlu_data/nlu; each of the {lat['messages']} project "
            f"test messages sent to every pipeline in turn, {lat['rounds']} rounds (order reversed every "
            f"other round), so other jobs on the shared cores slow all pipelines alike. "
            f"1-minute load average at the start: {lat['load_avg']:.2f}.",
            "",
            table(["pipeline", "n", "p50 ms", "p95 ms", "mean ms"],
                  [(name, v["n"], v["p50"], v["p95"], v["mean"]) for name, v in lat["pipelines"].items()]),
            "",
        ]
    parts += ["## Decision", "", info.get("decision", "_(written after the run)_"), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------- main


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="", help="comma-separated subset of pipeline names")
    parser.add_argument("--ks", default="20,50", help="Banking77 examples per intent for the 77-intent runs")
    parser.add_argument("--oos-k", type=int, default=20, help="examples per intent for the held-out run (0: skip)")
    parser.add_argument("--oos-held", type=int, default=10, help="Banking77 intents held out")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--no-banking77", action="store_true")
    parser.add_argument("--no-project", action="store_true")
    parser.add_argument("--limit-test", type=int, default=0, help="smoke runs: first N test messages only")
    parser.add_argument("--cv-folds", type=int, default=0,
                        help="also cross-validate on nlu_data/nlu to choose the fallback threshold")
    parser.add_argument("--latency-rounds", type=int, default=0,
                        help="interleaved latency pass over the project test set (rounds); 0: skip")
    parser.add_argument("--latency-only", action="store_true", help="only the interleaved latency pass")
    parser.add_argument("--raw-dir", type=Path, default=RAW_DIR)
    parser.add_argument("--raw-name", default="runs.json",
                        help="raw results file in --raw-dir; the report merges every *.json there")
    parser.add_argument("--render-only", action="store_true", help="re-render the report from raw results")
    parser.add_argument("--out", type=Path, default=RESULTS_MD)
    args = parser.parse_args(argv)

    # Rasa's training cache would make later runs look faster than they are.
    os.environ["RASA_MAX_CACHE_SIZE"] = "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # otherwise every parse is logged to stdout

    specs = pipelines(args.epochs)
    chosen = [p for p in args.pipelines.split(",") if p] or list(specs)
    unknown = set(chosen) - set(specs)
    if unknown:
        parser.error(f"unknown pipelines {sorted(unknown)}; known: {', '.join(specs)}")
    args.raw_dir.mkdir(parents=True, exist_ok=True)
    raw_file = args.raw_dir / args.raw_name
    stored: Dict[str, Any] = json.loads(raw_file.read_text()) if raw_file.exists() else {"runs": {}, "info": {}}

    if not args.render_only:
        experiments = []
        if not args.no_banking77:
            ks = [int(k) for k in args.ks.split(",") if k]
            experiments += banking_experiments(ks, args.oos_k, args.oos_held)
        if not args.no_project:
            project = project_experiment()
            if project:
                experiments.append(project)
        with tempfile.TemporaryDirectory(prefix="engage-nlu-bench-") as tmp:
            for exp, train_rows, tests, meta in experiments:
                if args.limit_test:
                    tests = list(tests[: args.limit_test])
                about = f"train {len(train_rows)} examples / {len({r.intent for r in train_rows})} intents, " \
                        f"test {len(tests)}, DIET epochs {args.epochs}"
                if meta.get("held_out"):
                    about += f"; held out (never trained): {', '.join(meta['held_out'])}"
                if meta.get("data_sha256"):
                    about += f"; nlu_data sha256 {meta['data_sha256']}"
                if args.latency_only:
                    continue
                stored["info"].setdefault("experiments", {})[exp] = {**meta, "about": about}
                print(f"== {exp}: {about}", flush=True)
                for name in chosen:
                    train_path = Path(meta["train_path"]) if meta.get("train_path") else None
                    result = run(exp, name, specs[name], train_rows, tests, Path(tmp), train_path)
                    stored["runs"][f"{exp}/{name}"] = {
                        **{k: v for k, v in asdict(result).items() if k != "predictions"},
                        "predictions": [asdict(p) for p in result.predictions],
                        "meta": meta,
                    }
                    raw_file.write_text(json.dumps(stored))
            project = next((e for e in experiments if e[0] == "project"), None)
            if args.cv_folds and project and not args.latency_only:
                exp, train_rows = "project_cv", project[1]
                meta = {"cv_folds": args.cv_folds, "data_sha256": project[3]["data_sha256"]}
                about = (f"{args.cv_folds}-fold cross-validation on nlu_data/nlu ({len(train_rows)} examples), "
                         f"out-of-fold predictions; DIET epochs {args.epochs}; "
                         f"nlu_data sha256 {meta['data_sha256']}")
                stored["info"].setdefault("experiments", {})[exp] = {**meta, "about": about}
                print(f"== {exp}: {about}", flush=True)
                for name in chosen:
                    result = run_cv(name, specs[name], train_rows, args.cv_folds, Path(tmp))
                    stored["runs"][f"{exp}/{name}"] = {
                        **{k: v for k, v in asdict(result).items() if k != "predictions"},
                        "predictions": [asdict(p) for p in result.predictions],
                        "meta": meta,
                    }
                    raw_file.write_text(json.dumps(stored))
            if args.latency_rounds and project:
                print("== latency: interleaved over the project test set", flush=True)
                stored["latency"] = interleaved_latency(
                    specs, chosen, Path(project[3]["train_path"]),
                    project[2][: args.limit_test] if args.limit_test else project[2],
                    Path(tmp), args.latency_rounds)
                raw_file.write_text(json.dumps(stored))
        stored["info"]["machine"] = run_info()
        raw_file.write_text(json.dumps(stored))

    # Merge every raw file (runs made by separate invocations), newest last.
    merged: Dict[str, Any] = {"runs": {}, "info": {"experiments": {}}}
    for path in sorted(args.raw_dir.glob("*.json"), key=lambda p: p.stat().st_mtime):
        data = json.loads(path.read_text())
        merged["runs"].update(data.get("runs", {}))
        merged["info"]["experiments"].update(data.get("info", {}).get("experiments", {}))
        if "machine" in data.get("info", {}):
            merged["info"]["machine"] = data["info"]["machine"]
        if "latency" in data:
            merged["info"]["latency"] = data["latency"]
    stored = merged

    summaries = []
    predictions: Dict[str, List[Prediction]] = {}
    for key, run_data in stored["runs"].items():
        result = RunResult(**{k: v for k, v in run_data.items() if k not in ("predictions", "meta")})
        result.predictions = [Prediction(**p) for p in run_data["predictions"]]
        predictions[key] = result.predictions
        summaries.append(summarise(result, run_data.get("meta", {})))
    # The fallback setting chosen on out-of-fold predictions, applied to the test set.
    by_key = {f"{s['experiment']}/{s['pipeline']}": s for s in summaries}
    for key, summary in by_key.items():
        cv = by_key.get(key.replace("project/", "project_cv/", 1)) if key.startswith("project/") else None
        if cv is None or cv["oos_at_5"]["threshold"] != cv["oos_at_5"]["threshold"]:
            continue
        choice = cv["oos_at_5"]
        summary["at_cv_choice"] = sweep_point(
            predictions[key], lambda p: p.gold == OUT_OF_SCOPE, choice["threshold"], choice["ambiguity"],
            (OUT_OF_SCOPE,))
    order = {name: i for i, name in enumerate(specs)}
    summaries.sort(key=lambda s: (s["experiment"], order.get(s["pipeline"], 99)))
    info = dict(stored["info"])
    # The decision is written by hand under this heading; keep it across re-renders.
    if args.out.exists():
        previous = args.out.read_text(encoding="utf-8")
        marker = "\n## Decision\n"
        if marker in previous:
            info["decision"] = previous.split(marker, 1)[1].strip()
    report = render(summaries, {k: v for k, v in specs.items()}, info)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    print(f"\nwrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

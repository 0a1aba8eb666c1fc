"""Few examples per intent and a flood of out-of-scope messages: NLU pipelines side by side (issue 14).

Runs in the Rasa runtime from the repository root, every pipeline trained with Rasa's own API
and every test message parsed through `Agent.parse_message`:

    PYTHONPATH=. .venvs/rasa/bin/python bench/nlu_fewshot.py [--quick] [--skip-full rasa_default svm_before]

Experiments, all in one run:
- Banking77 few-shot with out-of-scope: the 27 intents in bench/data/banking77_oos_intents.json
  (drawn once with seed 77) are never trained; 5, 10 and 20 examples of each of the other 50
  (seeds 0, 1, 2); the full test set, where the held-out intents' messages should fall back.
- Banking77 at full data (all 77 intents, every training example).
- The project's own held-out set (nlu_data/test), trained on nlu_data/nlu, and again with the
  deterministic perturbations of bench/nlu_perturb.py (typos, no capitals, no punctuation, one word).

Pipelines: Rasa's default (`rasa init`: count vectors + DIET, FallbackClassifier 0.3), the
config.yml before issue 14 (MiniLM + SVM, FallbackClassifier 0.21), plain MiniLM nearest
neighbour (NeighbourIntentClassifier with mix 0), config.yml as it is (Engage), and Engage told a
tenth of the traffic is out of scope (engage_oos10). Reported: in-scope accuracy, out-of-scope
recall and MCC (out-of-scope as one more class), at the pipeline's own threshold and at the best
threshold on the test set (the ceiling no deployment gets), training
time and parse latency. Writes bench/results/nlu_fewshot.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import machine, machine_line  # noqa: E402
from bench.nlu_perturb import PERTURBATIONS  # noqa: E402

BANKING77 = ROOT.parent / "shared" / "data" / "banking77"
OOS_INTENTS = ROOT / "bench" / "data" / "banking77_oos_intents.json"
RESULTS = ROOT / "bench" / "results"
FALLBACK = "nlu_fallback"
OUT = "out_of_scope"  # the label every out-of-scope message and every fallback counts as
SHOTS = (5, 10, 20)
EXPERIMENTS = ("project", "few_shot", "full")
SEEDS = (0, 1, 2)
MINILM = {"name": "bot.nlu.minilm.MiniLMFeaturizer", "model_dir": str(ROOT / ".models" / "minilm-onnx")}


def pipelines() -> Dict[str, List[Dict[str, Any]]]:
    engage = yaml.safe_load((ROOT / "config.yml").read_text())["pipeline"]
    for component in engage:
        if component["name"] == MINILM["name"]:
            component.update(MINILM)
    rasa_default = yaml.safe_load(
        (Path(__import__("rasa").__file__).parent / "engine" / "recipes" / "config_files" / "default_config.yml").read_text()
    )["pipeline"]
    return {
        "rasa_default": rasa_default,
        # config.yml before issue 14: MiniLM + linear SVM, FallbackClassifier at 0.21, CRF for `field`.
        "svm_before": [{"name": "WhitespaceTokenizer"}, MINILM, {"name": "SklearnIntentClassifier"},
                       {"name": "CRFEntityExtractor"}, {"name": "EntitySynonymMapper"},
                       {"name": "FallbackClassifier", "threshold": 0.21, "ambiguity_threshold": 0.0}],
        "minilm_nn": [{"name": "WhitespaceTokenizer"}, MINILM, {"name": "bot.nlu.neighbours.NeighbourIntentClassifier", "mix": 0.0}],
        "engage": engage,  # config.yml as it is
        # The same, told a tenth of the traffic is out of scope (a mature bot; README "Understanding customers").
        "engage_oos10": [{**c, "expected_out_of_scope": 0.1} if c["name"].endswith("NeighbourIntentClassifier") else c for c in engage],
    }


@dataclass
class Parsed:
    truth: str  # OUT for an out-of-scope message
    final: str  # what the pipeline answered (OUT for a fallback)
    top: str  # its best real intent, fallback or not
    confidence: float  # that intent's confidence
    ms: float


def load_banking77(name: str) -> List[Tuple[str, str]]:
    with open(BANKING77 / f"{name}.csv", newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def write_nlu(examples: Sequence[Tuple[str, str]], path: Path) -> None:
    by_intent: Dict[str, List[str]] = {}
    for text, intent in examples:
        by_intent.setdefault(intent, []).append(text)
    path.write_text(json.dumps({"rasa_nlu_data": {"common_examples": [
        {"text": text, "intent": intent} for intent, texts in by_intent.items() for text in texts
    ]}}), encoding="utf-8")


def train(pipeline: List[Dict[str, Any]], data: Path, workdir: Path) -> Tuple[str, float]:
    from rasa.model_training import train_nlu

    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump({"recipe": "default.v1", "language": "en", "pipeline": pipeline}, sort_keys=False))
    started = time.perf_counter()
    model = train_nlu(str(config), str(data), str(workdir / "models"))
    if not model:
        raise RuntimeError(f"training in {workdir} produced no model")
    return model, time.perf_counter() - started


async def parse_all(agent: Any, tests: Sequence[Tuple[str, str]], in_scope: frozenset) -> List[Parsed]:
    await agent.parse_message("warm up")
    out: List[Parsed] = []
    for text, intent in tests:
        started = time.perf_counter()
        parsed = await agent.parse_message(text)
        ms = (time.perf_counter() - started) * 1000
        final = (parsed.get("intent") or {}).get("name") or FALLBACK
        real = [r for r in parsed.get("intent_ranking") or [] if r.get("name") != FALLBACK]
        top, confidence = (real[0]["name"], float(real[0]["confidence"])) if real else (FALLBACK, 0.0)
        truth = intent if intent in in_scope else OUT
        out.append(Parsed(truth, OUT if final in (FALLBACK, OUT) else final, OUT if top == OUT else top, confidence, ms))
    return out


def scores(parsed: Sequence[Parsed], predictions: Optional[Sequence[str]] = None) -> Dict[str, float]:
    from sklearn.metrics import matthews_corrcoef

    predicted = list(predictions) if predictions is not None else [p.final for p in parsed]
    truth = [p.truth for p in parsed]
    ins = [(t, y) for t, y in zip(truth, predicted) if t != OUT]
    outs = [y for t, y in zip(truth, predicted) if t == OUT]
    return {
        "accuracy": sum(t == y for t, y in zip(truth, predicted)) / len(truth),
        "mcc": matthews_corrcoef(truth, predicted),
        "in_scope_accuracy": sum(t == y for t, y in ins) / len(ins) if ins else float("nan"),
        "oos_recall": sum(y == OUT for y in outs) / len(outs) if outs else float("nan"),
    }


def best_threshold(parsed: Sequence[Parsed]) -> Tuple[float, Dict[str, float]]:
    """The test-set-optimal threshold on the best real intent's confidence (a ceiling, not a setting)."""
    candidates = sorted({round(p.confidence, 3) for p in parsed} | {0.0})
    step = max(1, len(candidates) // 200)
    best: Tuple[float, Dict[str, float]] = (0.0, {"mcc": -1.0})
    for threshold in candidates[::step]:
        result = scores(parsed, [p.top if p.confidence >= threshold else OUT for p in parsed])
        if result["mcc"] > best[1]["mcc"]:
            best = (threshold, result)
    return best


def run_one(pipeline: List[Dict[str, Any]], train_rows: Sequence[Tuple[str, str]], tests: Sequence[Tuple[str, str]],
            workdir: Path, data_file: Optional[Path] = None) -> Dict[str, Any]:
    from rasa.core.agent import Agent

    workdir.mkdir(parents=True, exist_ok=True)
    if data_file is None:
        data_file = workdir / "train.json"
        write_nlu(train_rows, data_file)
    model, seconds = train(pipeline, data_file, workdir)
    agent = Agent.load(model)
    in_scope = frozenset(intent for _, intent in train_rows)
    parsed = asyncio.run(parse_all(agent, tests, in_scope))
    threshold, at_best = best_threshold(parsed)
    latencies = sorted(p.ms for p in parsed)
    return {
        "train_s": seconds,
        "own": scores(parsed),
        "best": {**at_best, "threshold": threshold},
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "agent": agent,
    }


def few_shot_sets(train_rows: Sequence[Tuple[str, str]], held_out: frozenset, shots: int, seed: int) -> List[Tuple[str, str]]:
    rng = random.Random(seed)
    by_intent: Dict[str, List[Tuple[str, str]]] = {}
    for row in train_rows:
        if row[1] not in held_out:
            by_intent.setdefault(row[1], []).append(row)
    return [row for intent in sorted(by_intent) for row in rng.sample(by_intent[intent], shots)]


def project_rows(folder: str) -> List[Tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [(m.get("text"), m.get("intent")) for m in load_data(str(ROOT / "nlu_data" / folder)).intent_examples]


async def field_scores(agent: Any) -> Dict[str, float]:
    """Recall and precision of the `field` entity (what a correction names) on nlu_data/test's annotations."""
    from rasa.shared.nlu.training_data.loading import load_data

    expected = found = extracted = correct = 0
    for message in load_data(str(ROOT / "nlu_data" / "test")).intent_examples:
        spans = {(e["start"], e["end"]) for e in message.get("entities") or [] if e["entity"] == "field"}
        parsed = await agent.parse_message(message.get("text"))
        got = {(e["start"], e["end"]) for e in parsed.get("entities") or [] if e["entity"] == "field"}
        overlaps = lambda a, b: a[0] < b[1] and b[0] < a[1]  # noqa: E731
        expected += len(spans)
        found += sum(any(overlaps(s, g) for g in got) for s in spans)
        extracted += len(got)
        correct += sum(any(overlaps(g, s) for s in spans) for g in got)
    return {"recall": found / expected if expected else float("nan"), "precision": correct / extracted if extracted else float("nan"),
            "annotated": expected}


DEMAND = ROOT / "nlu_data" / "eval" / "demand_signals.yml"


async def demand_confusion(agent: Any) -> Dict[str, Any]:
    """Which intent each kind of demand signal (idea, praise, bug report, ...) gets, and how often the right one."""
    data = yaml.safe_load(DEMAND.read_text())
    confusion: Dict[str, Dict[str, int]] = {}
    right = total = 0
    for kind, messages in data["messages"].items():
        for text in messages:
            intent = ((await agent.parse_message(text)).get("intent") or {}).get("name") or FALLBACK
            confusion.setdefault(kind, {}).setdefault(intent, 0)
            confusion[kind][intent] += 1
            right += intent == data["intents"][kind]
            total += 1
    return {"accuracy": right / total, "confusion": confusion, "intents": data["intents"]}


def fmt(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, 5 and 20 shots, 600 test messages (a smoke run)")
    parser.add_argument("--skip-full", nargs="*", default=[], metavar="PIPELINE",
                        help="pipelines to leave out at Banking77 full data (rasa_default trains for an hour here, svm_before's grid search half)")
    parser.add_argument("--only", nargs="*", help="pipelines to run (default: all)")
    parser.add_argument("--experiments", nargs="*", choices=EXPERIMENTS, default=list(EXPERIMENTS),
                        help="which experiments (default: all); a subset writes nlu_fewshot_<names>.md")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS), help="few-shot seeds (default: 0 1 2)")
    parser.add_argument("--resume", nargs="*", default=[], type=Path, metavar="JSON",
                        help="results files of earlier runs (same code, same machine): their runs are kept and not run again")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    specs = {k: v for k, v in pipelines().items() if not args.only or k in args.only}
    held_out = frozenset(json.loads(OOS_INTENTS.read_text())["intents"])
    train_rows, test_rows = load_banking77("train"), load_banking77("test")
    seeds, shots = (SEEDS[:1], (5, 20)) if args.quick else (tuple(args.seeds), SHOTS)
    if args.quick:
        test_rows = random.Random(1).sample(test_rows, 600)
    results: Dict[str, Any] = {"machine": machine(), "few_shot": {}, "full": {}, "project": {}, "robustness": {}}
    for earlier in args.resume:
        resume(results, json.loads(earlier.read_text(encoding="utf-8")))
    with tempfile.TemporaryDirectory(prefix="engage-nlu-fewshot-") as tmp:
        os.environ["RASA_CACHE_DIRECTORY"] = str(Path(tmp) / "cache")  # every run trains from scratch
        # The quick experiments first, and the report rewritten after each, so a long run that is
        # stopped still leaves everything it measured.
        project_train, project_test = project_rows("nlu"), project_rows("test")
        for name, pipeline in specs.items() if "project" in args.experiments else ():
            if name in results["project"]:
                continue
            print(f"== nlu_data/test: {name}", flush=True)
            result = run_one(pipeline, project_train, project_test, Path(tmp) / f"project-{name}", ROOT / "nlu_data" / "nlu")
            agent = result.pop("agent")
            results["project"][name] = result
            results.setdefault("entities", {})[name] = asyncio.run(field_scores(agent))
            results.setdefault("demand", {})[name] = asyncio.run(demand_confusion(agent))
            in_scope = frozenset(i for _, i in project_train if i != OUT)
            for label, perturb in PERTURBATIONS.items():
                changed = [(perturb(text), intent) for text, intent in project_test]
                parsed = asyncio.run(parse_all(agent, changed, in_scope))
                results["robustness"].setdefault(name, {})[label] = scores(parsed)
        write_report(results, args)
        for seed in seeds if "few_shot" in args.experiments else ():  # every size for one seed before the next
            for k in shots:
                rows = few_shot_sets(train_rows, held_out, k, seed)
                for name, pipeline in specs.items():
                    done = results["few_shot"].setdefault(f"{k}", {}).setdefault(name, [])
                    if any(r["seed"] == seed for r in done):
                        continue
                    print(f"== banking77 {k}-shot seed {seed}: {name}", flush=True)
                    result = run_one(pipeline, rows, test_rows, Path(tmp) / f"b77-{k}-{seed}-{name}")
                    result.pop("agent")
                    done.append({**result, "seed": seed})
                    print(f"   own MCC {result['own']['mcc']:.3f}  best MCC {result['best']['mcc']:.3f}  trained {result['train_s']:.0f} s", flush=True)
                write_report(results, args)
        for name, pipeline in specs.items() if "full" in args.experiments else ():
            if name in args.skip_full or name in results["full"]:
                continue
            print(f"== banking77 full data: {name}", flush=True)
            result = run_one(pipeline, train_rows, test_rows, Path(tmp) / f"b77-full-{name}")
            result.pop("agent")
            results["full"][name] = result
            write_report(results, args)


def resume(results: Dict[str, Any], earlier: Dict[str, Any]) -> None:
    """Keep an earlier run's results (a few-shot run without a seed is the n-th seed of its list)."""
    for k, by_pipeline in earlier.get("few_shot", {}).items():
        for name, rows in by_pipeline.items():
            done = results["few_shot"].setdefault(k, {}).setdefault(name, [])
            for index, row in enumerate(rows):
                row.setdefault("seed", SEEDS[index])
                if all(r["seed"] != row["seed"] for r in done):
                    done.append(row)
    for key in ("full", "project", "robustness", "entities", "demand"):
        for name, value in earlier.get(key, {}).items():
            results.setdefault(key, {}).setdefault(name, value)


def write_report(results: Dict[str, Any], args: argparse.Namespace) -> None:
    lines = ["# NLU with few examples and out-of-scope traffic", "",
             "Generated by `bench/nlu_fewshot.py`" + (" --quick" if args.quick else "") + "; numbers are measured, not edited.", "",
             f"Machine: {machine_line(results['machine'])}", "",
             "## Banking77 few-shot, 27 intents held out as out-of-scope (mean over seeds)", "",
             "| examples per intent | pipeline | seeds run | MCC (own threshold) | in-scope acc | OOS recall | MCC (best threshold) | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    mean = lambda rows, key, sub: statistics.mean(r[key][sub] for r in rows)  # noqa: E731
    for k, by_pipeline in results["few_shot"].items():
        for name, rows in by_pipeline.items():
            lines.append(f"| {k} | {name} | {len(rows)} | {fmt(mean(rows, 'own', 'mcc'))} | {fmt(mean(rows, 'own', 'in_scope_accuracy'))} | "
                         f"{fmt(mean(rows, 'own', 'oos_recall'))} | {fmt(mean(rows, 'best', 'mcc'))} | {statistics.mean(r['train_s'] for r in rows):.0f} |")
    for title, key in (("Banking77 at full data (77 intents)", "full"), ("nlu_data/test (trained on nlu_data/nlu)", "project")):
        lines += ["", f"## {title}", "", "| pipeline | accuracy (own threshold; a fallback is right for an out-of-scope message) | MCC | OOS recall | train s | parse p50 ms | parse p95 ms |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in results[key].items():
            lines.append(f"| {name} | {fmt(r['own']['accuracy'])} | {fmt(r['own']['mcc'])} | {fmt(r['own']['oos_recall'])} | {r['train_s']:.0f} | "
                         f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
    lines += ["", "## Robustness on nlu_data/test: MCC, and the drop from clean text", "",
              "| pipeline | clean | " + " | ".join(PERTURBATIONS) + " |", "|---|---:|" + "---:|" * len(PERTURBATIONS)]
    for name, by_kind in results["robustness"].items():
        clean = results["project"][name]["own"]["mcc"]
        lines.append(f"| {name} | {fmt(clean)} | " + " | ".join(
            f"{fmt(by_kind[k]['mcc'])} ({by_kind[k]['mcc'] - clean:+.3f})" for k in PERTURBATIONS) + " |")
    lines += ["", "## The `field` entity behind corrections (nlu_data/test annotations)", "",
              "| pipeline | recall | precision |", "|---|---:|---:|"]
    for name, r in results.get("entities", {}).items():
        lines.append(f"| {name} | {fmt(r['recall'])} | {fmt(r['precision'])} |")
    for name, r in results.get("demand", {}).items():
        predicted = sorted({intent for row in r["confusion"].values() for intent in row})
        lines += ["", f"## Demand signals ({DEMAND.relative_to(ROOT)}): {name}, accuracy {r['accuracy']:.3f}", "",
                  "| kind (right intent) | " + " | ".join(predicted) + " |", "|---|" + "---:|" * len(predicted)]
        for kind, row in r["confusion"].items():
            lines.append(f"| {kind} ({r['intents'][kind]}) | " + " | ".join(str(row.get(i, 0)) for i in predicted) + " |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    suffix = ("_quick" if args.quick else "") + ("" if set(args.experiments) == set(EXPERIMENTS) else "_" + "_".join(args.experiments))
    (RESULTS / f"nlu_fewshot{suffix}.md").write_text(text, encoding="utf-8")
    (RESULTS / f"nlu_fewshot{suffix}.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
